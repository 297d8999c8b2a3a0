"""`engine forget`: by URL, prefix, document id, path, topic and --gone; dry runs; readers
catching up without a rebuild; and crash safety (a forget killed with SIGKILL at any point)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_config, store_counts
from sqlalchemy import select, text
from typer.testing import CliRunner

from engine.errors import ConfigError, InputError
from engine.keep.forget import Selection, forget
from engine.kb import KnowledgeBase
from engine.store.fulltext import matching
from engine.store.health import check_store
from engine.store.schema import (
    CLIP_IMAGE_SPACE,
    TEXT_SPACE,
    chunks,
    document_images,
    documents,
    embeddings,
    images,
    sources,
    topic_documents,
    topics,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
SHUTTLE = "https://example.org/space/shuttle-program.html"
HUBBLE = "https://example.org/space/hubble-deep-fields.html"
ROASTING = "https://example.org/coffee/how-coffee-is-roasted.html"
ESPRESSO = "https://example.org/coffee/espresso-chemistry.html"
CAT_BEHAVIOUR = "https://example.org/cats/cat-behaviour.html"
CAT_SENSES = "https://example.org/cats/cat-senses.html"
MIN_SIMILARITY = 0.25  # IndexConfig's default topic_min_similarity


# -- a store of the example corpus, indexed once and copied for each test -------------------------


@pytest.fixture(scope="module")
def indexed_store(tmp_path_factory, text_encoder) -> Path:
    root = tmp_path_factory.mktemp("forget-source")
    with KnowledgeBase(make_config(root), text_encoder=text_encoder) as kb:
        names = [t for t in (EXAMPLES / "topics.txt").read_text().splitlines() if t.strip()]
        report = kb.index(names, [EXAMPLES / "pages"])
        assert report.pages["added"] == 8, report.to_dict()
    return root / "store"


@pytest.fixture
def kb(tmp_path, indexed_store, text_encoder):
    shutil.copytree(indexed_store, tmp_path / "store")
    with KnowledgeBase(make_config(tmp_path), text_encoder=text_encoder) as base:
        yield base


def doc_id_of(kb: KnowledgeBase, url: str) -> int:
    with kb.store.reading() as conn:
        return conn.execute(select(sources.c.document_id).where(sources.c.url == url)).scalar_one()


def chunk_ids_of(kb: KnowledgeBase, doc_id: int) -> set[int]:
    with kb.store.reading() as conn:
        return set(conn.execute(select(chunks.c.id).where(chunks.c.document_id == doc_id)).scalars())


def image_paths_of(kb: KnowledgeBase, doc_id: int) -> dict[int, str]:
    with kb.store.reading() as conn:
        rows = conn.execute(
            select(images.c.id, images.c.path).join(document_images, document_images.c.image_id == images.c.id)
            .where(document_images.c.document_id == doc_id)
        )
        return dict(rows.all())


def unique_words(kb: KnowledgeBase, doc_id: int, n: int = 3) -> list[str]:
    """Words the full-text index finds in this document's passages and in no other's."""
    own = chunk_ids_of(kb, doc_id)
    with kb.store.reading() as conn:
        body = conn.execute(select(documents.c.text).where(documents.c.id == doc_id)).scalar_one()
        found = []
        for word in sorted(set(re.findall(r"[a-z]{7,}", body.lower()))):
            hits = set(conn.execute(text("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH :w"), {"w": f'"{word}"'}).scalars())
            if hits and hits <= own:
                found.append(word)
            if len(found) == n:
                break
    assert found, f"document {doc_id} has no word of its own to search for"
    return found


def assert_consistent(kb: KnowledgeBase) -> None:
    """`engine check` accepts the store, and the FTS index agrees with the chunks table."""
    report = check_store(kb.store)
    assert report.ok, report.to_dict()
    assert report.foreign_key_violations == 0
    with kb.store.transaction() as conn:
        conn.execute(text("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)"))
        indexed = conn.execute(text("SELECT count(*) FROM chunks_fts")).scalar()
        assert indexed == conn.execute(select(chunks.c.id)).all().__len__()


def assert_forgotten(kb: KnowledgeBase, doc_id: int, url: str, words: list[str], chunk_ids: set[int]) -> None:
    with kb.store.reading() as conn:
        assert conn.execute(select(documents.c.id).where(documents.c.id == doc_id)).first() is None
        assert conn.execute(select(sources.c.id).where(sources.c.document_id == doc_id)).first() is None
        assert conn.execute(select(topic_documents.c.topic_id).where(topic_documents.c.document_id == doc_id)).first() is None
        assert conn.execute(select(chunks.c.id).where(chunks.c.id.in_(chunk_ids))).first() is None
        assert conn.execute(select(embeddings.c.item_id).where(embeddings.c.item_id.in_(chunk_ids), embeddings.c.space != CLIP_IMAGE_SPACE)).first() is None
        for word in words:
            assert matching(conn, word, 100) == 0, f"full-text search still finds {word!r}"
    hits = kb.search(" ".join(words), k=20)
    assert doc_id not in {p.document_id for p in hits.passages}
    assert not set(chunk_ids) & {p.chunk_id for p in hits.passages}
    answer = kb.ask(" ".join(words), min_score="off")
    assert url not in {s.url for s in answer.sources}, answer.to_dict()["sources"]
    assert doc_id not in {s.document_id for s in answer.sources}
    index = kb.store.index(TEXT_SPACE, kb.text_encoder.dim)
    assert not set(chunk_ids) & set(index.ids().tolist()), "FAISS still holds the forgotten passages"


# -- selecting and forgetting ----------------------------------------------------------------------


def test_forget_by_url_removes_rows_vectors_fts_entries_and_image_files(kb):
    doc_id = doc_id_of(kb, SHUTTLE)
    own_chunks = chunk_ids_of(kb, doc_id)
    words = unique_words(kb, doc_id)
    files = image_paths_of(kb, doc_id)
    assert len(files) == 2, files  # the astronaut and the rocket, shown by no other page
    assert all((kb.store.root / p).exists() for p in files.values())
    assert doc_id in {p.document_id for p in kb.search(" ".join(words), k=20).passages}
    before = store_counts(kb)

    report = forget(kb.store, Selection.parse([SHUTTLE]), MIN_SIMILARITY)

    assert [(d.id, d.url) for d in report.plan.documents] == [(doc_id, SHUTTLE)]
    assert report.plan.documents[0].chunks == len(own_chunks)
    assert {i.id for i in report.plan.images} == set(files)
    assert report.files_deleted == 2
    after = store_counts(kb)
    assert after["documents"] == before["documents"] - 1 and after["sources"] == before["sources"] - 1
    assert after["chunks"] == before["chunks"] - len(own_chunks)
    assert after["images"] == before["images"] - 2 and after["links"] == before["links"] - 2
    assert after["text_vectors"] == before["text_vectors"] - len(own_chunks)
    assert not any((kb.store.root / p).exists() for p in files.values()), "image files of forgotten images remain"
    with kb.store.reading() as conn:
        assert conn.execute(select(embeddings.c.item_id).where(
            embeddings.c.space == CLIP_IMAGE_SPACE, embeddings.c.item_id.in_(list(files))
        )).first() is None
    assert_forgotten(kb, doc_id, SHUTTLE, words, own_chunks)
    assert_consistent(kb)


def test_forget_by_prefix_takes_every_page_under_it(kb):
    coins = {doc_id_of(kb, u) for u in ("https://example.org/coins/coins-of-ancient-greece.html", "https://example.org/coins/roman-coinage.html")}
    shared = {p for d in coins for p in image_paths_of(kb, d).values()}
    assert len(shared) == 1  # the coin photo both coin pages show
    report = forget(kb.store, Selection.parse(["https://example.org/coins/*"]), MIN_SIMILARITY)
    assert {d.id for d in report.plan.documents} == coins
    assert not any((kb.store.root / p).exists() for p in shared), "the coin photo is shown by no page now"
    # --prefix reads a URL without * the same way.
    report = forget(kb.store, Selection.parse(["https://example.org/cats/"], prefix=True), MIN_SIMILARITY)
    assert len(report.plan.documents) == 2
    with kb.store.reading() as conn:
        left = set(conn.execute(select(sources.c.url)).scalars())
    assert not any("/coins/" in u or "/cats/" in u for u in left) and len(left) == 4
    assert_consistent(kb)


def test_forget_by_document_id_keeps_images_another_page_shows(kb):
    roasting, espresso = doc_id_of(kb, ROASTING), doc_id_of(kb, ESPRESSO)
    shared = image_paths_of(kb, roasting)
    assert shared and set(shared) <= set(image_paths_of(kb, espresso)), "the coffee photo is on both coffee pages"
    words, own = unique_words(kb, roasting), chunk_ids_of(kb, roasting)

    report = forget(kb.store, Selection.parse([str(roasting)]), MIN_SIMILARITY)

    assert [d.id for d in report.plan.documents] == [roasting] and report.plan.images == ()
    assert all((kb.store.root / p).exists() for p in shared.values()), "a shared image's file was deleted"
    assert set(image_paths_of(kb, espresso)) == set(shared)
    assert_forgotten(kb, roasting, ROASTING, words, own)
    assert_consistent(kb)


def test_forget_by_indexed_path_and_file_url(kb):
    hubble = doc_id_of(kb, HUBBLE)
    report = forget(kb.store, Selection.parse([str(EXAMPLES / "pages" / "hubble-deep-fields.html")]), MIN_SIMILARITY)
    assert [d.id for d in report.plan.documents] == [hubble]
    # A page without a saved-from stamp is stored under its file:// URL, and forgotten by it.
    page = kb.config.store.path.parent / "note.html"
    page.write_text(
        "<html><head><title>Field note</title></head><body><article><h1>Herons of the estuary</h1>"
        "<p>The grey heron waited motionless in the reeds of the estuary at dawn, watching the shallow water.</p>"
        "<p>When a small fish came close, the heron struck with its long neck faster than the eye could follow.</p>"
        "<p>Later in the morning a flock of curlews landed on the mudflats and probed the mud for worms.</p>"
        "<p>By noon the tide had turned and the birds moved to the salt marsh further up the river.</p>"
        "</article></body></html>"
    )
    kb.index([], [page])
    uri = page.resolve().as_uri()
    report = forget(kb.store, Selection.parse([uri]), MIN_SIMILARITY)
    assert [d.url for d in report.plan.documents] == [uri]
    assert_consistent(kb)


def test_a_document_also_stored_from_another_url_stays_until_that_one_goes_too(kb, tmp_path):
    mirror = "https://mirror.example/hubble.html"
    folder = tmp_path / "mirror"
    folder.mkdir()
    shutil.copytree(EXAMPLES / "pages" / "hubble-deep-fields_files", folder / "hubble-deep-fields_files")
    html = (EXAMPLES / "pages" / "hubble-deep-fields.html").read_text(encoding="utf-8")
    html = re.sub(r"saved from url=\(\d+\)\S+", f"saved from url=({len(mirror):04d}){mirror}", html)
    (folder / "hubble-deep-fields.html").write_text(html, encoding="utf-8")
    kb.index([], [folder])
    doc_id = doc_id_of(kb, HUBBLE)
    assert doc_id_of(kb, mirror) == doc_id, "the same text from two URLs is one document"

    report = forget(kb.store, Selection.parse([HUBBLE]), MIN_SIMILARITY)

    assert report.plan.documents == () and report.plan.sources == (HUBBLE,)
    assert [(k.id, k.still_at) for k in report.plan.kept] == [(doc_id, (mirror,))]
    assert doc_id_of(kb, mirror) == doc_id
    report = forget(kb.store, Selection.parse([mirror]), MIN_SIMILARITY)
    assert [d.id for d in report.plan.documents] == [doc_id] and report.plan.kept == ()
    assert len(report.plan.images) == 1
    assert_consistent(kb)


def test_forget_a_topic_keeps_documents_another_topic_holds(kb):
    with kb.store.reading() as conn:
        cats_topic = conn.execute(select(topics.c.id).where(topics.c.name == "domestic cats")).scalar_one()
        coffee_topic = conn.execute(select(topics.c.id).where(topics.c.name == "coffee")).scalar_one()
    behaviour, senses = doc_id_of(kb, CAT_BEHAVIOUR), doc_id_of(kb, CAT_SENSES)
    with kb.store.transaction() as conn:
        # Both cat pages are the cats topic's; cat-senses is also held by "coffee" (a test-made link).
        for doc in (behaviour, senses):
            conn.execute(topic_documents.update().where(
                topic_documents.c.document_id == doc, topic_documents.c.topic_id == cats_topic).values(score=0.9))
            conn.execute(topic_documents.update().where(
                topic_documents.c.document_id == doc, topic_documents.c.topic_id != cats_topic).values(score=0.0))
        conn.execute(topic_documents.update().where(
            topic_documents.c.document_id == senses, topic_documents.c.topic_id == coffee_topic).values(score=0.8))
        only_cats = set(conn.execute(text(
            "SELECT document_id FROM topic_documents WHERE topic_id = :t AND score >= :m AND document_id NOT IN "
            "(SELECT document_id FROM topic_documents WHERE topic_id != :t AND score >= :m)"
        ), {"t": cats_topic, "m": MIN_SIMILARITY}).scalars())
    assert behaviour in only_cats and senses not in only_cats
    chelsea = image_paths_of(kb, behaviour)
    assert chelsea  # the cat photo, shared with cat-senses

    dry = forget(kb.store, Selection.parse(topics=["domestic cats"]), MIN_SIMILARITY, dry_run=True)
    report = forget(kb.store, Selection.parse(topics=["domestic cats"]), MIN_SIMILARITY)

    assert report.plan.to_dict() == dry.plan.to_dict()
    assert {d.id for d in report.plan.documents} == only_cats
    assert report.plan.topics == ("domestic cats",)
    with kb.store.reading() as conn:
        assert conn.execute(select(topics.c.id).where(topics.c.name == "domestic cats")).first() is None
        assert conn.execute(select(documents.c.id).where(documents.c.id == senses)).first() is not None
    assert all((kb.store.root / p).exists() for p in chelsea.values()), "cat-senses still shows the cat photo"
    assert "domestic cats" not in {t.name for t in kb.status().topics}
    assert_consistent(kb)


def test_dry_run_changes_nothing_and_lists_exactly_what_the_run_removes(kb):
    before = store_counts(kb)
    files_before = sorted(p for p in (kb.store.root / "images").rglob("*") if p.is_file())
    selection = Selection.parse([SHUTTLE, str(doc_id_of(kb, ROASTING)), "https://example.org/coins/*"])

    dry = forget(kb.store, selection, MIN_SIMILARITY, dry_run=True)

    assert dry.dry_run and dry.files_deleted == 0
    assert store_counts(kb) == before
    assert sorted(p for p in (kb.store.root / "images").rglob("*") if p.is_file()) == files_before
    real = forget(kb.store, selection, MIN_SIMILARITY)
    assert real.plan.to_dict() == dry.plan.to_dict()
    after = store_counts(kb)
    assert before["documents"] - after["documents"] == len(dry.plan.documents) == 4
    assert before["chunks"] - after["chunks"] == len(dry.plan.chunk_ids)
    assert before["images"] - after["images"] == len(dry.plan.images)
    assert before["sources"] - after["sources"] == len(dry.plan.sources)
    gone_files = {kb.store.root / i.path for i in dry.plan.images}
    assert set(files_before) - set(p for p in (kb.store.root / "images").rglob("*") if p.is_file()) == gone_files
    assert_consistent(kb)


def test_unknown_selectors_are_input_errors_and_nothing_changes(kb):
    before = store_counts(kb)
    with pytest.raises(InputError, match="no stored page has this URL"):
        forget(kb.store, Selection.parse([SHUTTLE, "https://example.org/nowhere.html"]), MIN_SIMILARITY)
    with pytest.raises(InputError, match="no such document"):
        forget(kb.store, Selection.parse(["99999"]), MIN_SIMILARITY)
    with pytest.raises(InputError, match="no such topic"):
        forget(kb.store, Selection.parse(topics=["knitting"]), MIN_SIMILARITY)
    with pytest.raises(InputError, match="starts with"):
        forget(kb.store, Selection.parse(["https://elsewhere.example/*"]), MIN_SIMILARITY)
    with pytest.raises(ConfigError, match="nothing to forget"):
        forget(kb.store, Selection.parse([]), MIN_SIMILARITY)
    assert store_counts(kb) == before


def test_a_reader_opened_before_sees_the_forget_without_a_rebuild(kb, tmp_path, text_encoder):
    doc_id = doc_id_of(kb, SHUTTLE)
    words, own = unique_words(kb, doc_id), chunk_ids_of(kb, doc_id)
    with KnowledgeBase(make_config(tmp_path), text_encoder=text_encoder) as reader:
        first = reader.ask(" ".join(words), min_score="off")
        assert doc_id in {s.document_id for s in first.sources}
        index = reader.store.index(TEXT_SPACE, text_encoder.dim)
        file_before = index.file
        assert own <= set(index.ids().tolist())

        forget(kb.store, Selection.parse([SHUTTLE]), MIN_SIMILARITY)

        again = reader.ask(" ".join(words), min_score="off")
        assert doc_id not in {s.document_id for s in again.sources}
        caught_up = reader.store.index(TEXT_SPACE, text_encoder.dim)
        assert caught_up is index and caught_up.file == file_before, "the reader rebuilt or reloaded its index"
        assert not own & set(caught_up.ids().tolist())


# -- --gone after the crawl finds pages removed ------------------------------------------------------


def test_forget_gone_takes_pages_that_answered_404_or_410(tmp_path, text_encoder):
    from site_server import LocalSite
    from test_crawl import ARTICLES, TOPICS, crawl_kb, discover_urls, frontier, serve_articles

    with LocalSite() as site, crawl_kb(tmp_path, text_encoder) as kb:
        site.add("/robots.txt", "User-agent: *\n", content_type="text/plain")
        urls = serve_articles(site)
        discover = discover_urls(*urls)
        kb.index(TOPICS, discover=discover)
        assert forget(kb.store, Selection(gone=True), MIN_SIMILARITY).plan.documents == ()

        site.add("/cats.html", "gone", status=410, content_type="text/plain")
        site.add("/coins.html", "missing", status=404, content_type="text/plain")
        kb.index(TOPICS, discover=discover)
        state = frontier(kb)
        assert state["/cats.html"][:2] == ("gone", 410) and state["/coins.html"][:2] == ("gone", 404)
        cats, coins = doc_id_of(kb, site.url("/cats.html")), doc_id_of(kb, site.url("/coins.html"))
        cat_files = image_paths_of(kb, cats)
        before = store_counts(kb)

        dry = forget(kb.store, Selection(gone=True), MIN_SIMILARITY, dry_run=True)
        assert store_counts(kb) == before
        report = forget(kb.store, Selection(gone=True), MIN_SIMILARITY)

        assert report.plan.to_dict() == dry.plan.to_dict()
        assert {d.id for d in report.plan.documents} == {cats, coins}
        assert set(report.plan.crawl_urls) >= {site.url("/cats.html"), site.url("/coins.html")}
        assert store_counts(kb)["documents"] == before["documents"] - 2
        assert cat_files and not any((kb.store.root / p).exists() for p in cat_files.values())
        left = frontier(kb)
        assert "/cats.html" not in left and "/coins.html" not in left
        assert "/img/cat.jpg" not in left, "the forgotten page's image candidates stay in the frontier"
        assert left["/coffee.html"][0] == "not_modified"  # the other pages stay in the frontier
        answer = kb.ask("why do cats purr", min_score="off")
        assert site.url("/cats.html") not in {s.url for s in answer.sources}
        assert_consistent(kb)

        # The pages stay gone: the next crawl finds them 410/404 again and stores nothing.
        kb.index(TOPICS, discover=discover)
        assert store_counts(kb)["documents"] == before["documents"] - 2
        assert len(ARTICLES) == 4


# -- the command line -------------------------------------------------------------------------------


def run_cli(kb: KnowledgeBase, *args: str):
    from cli.app import app

    return CliRunner().invoke(app, ["--store", str(kb.config.store.path), "forget", *args])


def test_cli_forget_dry_run_json_then_real_run(kb):
    import json

    from cli.app import app

    help_text = CliRunner().invoke(app, ["forget", "--help"]).output
    assert "Example: engine forget" in help_text and "--dry-run" in help_text and "--json" in help_text
    before = store_counts(kb)
    dry = run_cli(kb, SHUTTLE, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.output)
    assert planned["dry_run"] is True and [d["url"] for d in planned["documents"]] == [SHUTTLE]
    assert store_counts(kb) == before

    done = run_cli(kb, SHUTTLE)
    assert done.exit_code == 0, done.output
    assert "forgot document" in done.output and SHUTTLE in done.output
    assert store_counts(kb)["documents"] == before["documents"] - 1

    missing = run_cli(kb, SHUTTLE)
    assert missing.exit_code == 1 and "InputError" in missing.output and "no stored page has this URL" in missing.output
    nothing = run_cli(kb)
    assert nothing.exit_code == 2 and "nothing to forget" in nothing.output


def test_cli_refuses_while_another_process_writes(kb):
    from engine.store.store import Store

    with Store(kb.config.store.path) as other:
        other.acquire_write_lock()
        result = run_cli(kb, SHUTTLE)
    assert result.exit_code == 1 and "StoreError" in result.output and "being written" in result.output
    assert store_counts(kb)["documents"] == 8


# -- crash safety ----------------------------------------------------------------------------------


def test_killed_between_commit_and_file_deletion_leaves_harmless_files_swept_next_time(kb, monkeypatch):
    """The window a kill can hit after the commit: rows gone, files still there."""
    import engine.keep.forget as forget_module

    doc_id = doc_id_of(kb, SHUTTLE)
    files = image_paths_of(kb, doc_id)
    assert files  # the shuttle page's own images

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # stands for SIGKILL: nothing after the commit runs

    monkeypatch.setattr(forget_module, "_after_commit", killed)
    with pytest.raises(KeyboardInterrupt):
        forget(kb.store, Selection.parse([SHUTTLE]), MIN_SIMILARITY)
    monkeypatch.undo()
    assert store_counts(kb)["documents"] == 7, "the forget was committed before the kill"
    assert all((kb.store.root / p).exists() for p in files.values())
    report = check_store(kb.store)
    assert report.ok and set(report.unreferenced_image_files) == set(files.values()), report.to_dict()

    dry = forget(kb.store, Selection.parse([HUBBLE]), MIN_SIMILARITY, dry_run=True)
    assert set(dry.plan.orphan_files) == set(files.values())
    # The rerun finds the page forgotten already, and sweeps the files all the same.
    with pytest.raises(InputError):
        forget(kb.store, Selection.parse([SHUTTLE]), MIN_SIMILARITY)
    assert not any((kb.store.root / p).exists() for p in files.values())
    assert check_store(kb.store).unreferenced_image_files == []
    assert_consistent(kb)


def build_big_store(root: Path, n_docs: int, chunks_per_doc: int, dim: int = 384) -> None:
    """A store of synthetic documents (rows, FTS, vectors, shared and own images), written directly."""
    from engine.store.store import Store

    rng = np.random.default_rng(7)
    now = time.time()
    with Store(root) as store:
        store.acquire_write_lock()
        store.bind_model((TEXT_SPACE,), "test-model", dim)
        shared = []
        with store.transaction() as conn:
            for n in range(n_docs):
                doc_id = conn.execute(documents.insert().values(
                    content_hash=f"doc{n}", title=f"Document {n}", text=f"body {n}", created_at=now)).inserted_primary_key[0]
                conn.execute(sources.insert().values(
                    canonical_url=f"https://big.example/d/{n}.html", url=f"https://big.example/d/{n}.html",
                    origin="test", document_id=doc_id, updated_at=now))
                ids = [conn.execute(chunks.insert().values(
                    document_id=doc_id, position=p, text=f"passage {p} of document {n} word{n}x{p}",
                    start_char=0, end_char=10, n_tokens=8)).inserted_primary_key[0] for p in range(chunks_per_doc)]
                store.put_vectors(conn, TEXT_SPACE, ids, rng.standard_normal((len(ids), dim)).astype(np.float32))
                own = (f"own{n}",)
                wanted = own + ((f"shared{n % 5}",) if n % 2 else ())
                for key in wanted:
                    image_id = conn.execute(select(images.c.id).where(images.c.content_hash == key)).scalar()
                    if image_id is None:
                        path = store.image_relpath(key.rjust(8, "0"), "png")
                        store.write_image_file(path, key.encode() * 10)
                        image_id = conn.execute(images.insert().values(
                            content_hash=key, width=10, height=10, format="png", byte_size=50, path=path, created_at=now)).inserted_primary_key[0]
                        shared.append(image_id)
                    conn.execute(document_images.insert().values(document_id=doc_id, image_id=image_id, src_url=f"{key}.png"))
        store.apply_committed()
        store.rebuild_index(TEXT_SPACE, dim)


def big_counts(db: Path) -> tuple[int, int, int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("documents", "chunks", "images", "embeddings"))
    finally:
        conn.close()


def cli_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    config = tmp / "engine-config.toml"
    config.write_text("# defaults only\n")
    env.update(ENGINE_CONFIG=str(config), ENGINE_CLIP_ENABLED="false", HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return env


def forget_cmd(store: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from cli.app import main; sys.argv[0] = 'engine'; main()",
            "--store", str(store), "forget", *args]


@pytest.mark.slow
def test_forget_killed_with_sigkill_at_any_point_leaves_a_consistent_store(tmp_path):
    pristine = tmp_path / "pristine"
    build_big_store(pristine, n_docs=1500, chunks_per_doc=8)
    db_name = "engine.db"
    start = big_counts(pristine / db_name)
    env = cli_env(tmp_path)
    selector = "https://big.example/d/1*"  # documents 1, 10-19, 100-199, 1000-1499: 611 of them

    # A clean run: what a finished forget leaves, and how long one takes.
    clean = tmp_path / "clean"
    shutil.copytree(pristine, clean)
    t0 = time.monotonic()
    done = subprocess.run(forget_cmd(clean, selector, "--json"), env=env, capture_output=True, text=True, timeout=300)
    took = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    end = big_counts(clean / db_name)
    assert end[0] == start[0] - 611 and end[2] < start[2]
    clean_files = sorted(p.relative_to(clean) for p in (clean / "images").rglob("*") if p.is_file())

    outcomes = set()
    # Kills spread over the run (imports, planning, the transaction, after the commit), and one
    # the moment the commit is visible (file deletion and the index refresh still to come).
    delays = [took * f for f in (0.3, 0.55, 0.7, 0.8, 0.9, 0.97)] + [None]
    for n, delay in enumerate(delays):
        store = tmp_path / f"run{n}"
        shutil.copytree(pristine, store)
        proc = subprocess.Popen(forget_cmd(store, selector), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if delay is not None:
            time.sleep(delay)
        else:
            deadline = time.monotonic() + 300
            while big_counts(store / db_name)[0] == start[0] and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)

        state = big_counts(store / db_name)
        assert state in (start, end), f"kill {n} left a partial forget: {state}, expected {start} or {end}"
        if proc.returncode == -signal.SIGKILL:  # a run that finished before the kill proves nothing
            outcomes.add("before commit" if state == start else "after commit")
        from engine.store.store import Store

        with Store(store) as opened:
            report = check_store(opened)
        assert report.ok, (n, report.to_dict())

        again = subprocess.run(forget_cmd(store, selector), env=env, capture_output=True, text=True, timeout=300)
        if state == start:
            assert again.returncode == 0, again.stderr
        else:  # already forgotten: said so, and the leftover files were swept
            assert again.returncode == 1 and "no stored page's URL starts with this" in again.stderr, again.stderr
        assert big_counts(store / db_name) == end
        assert sorted(p.relative_to(store) for p in (store / "images").rglob("*") if p.is_file()) == clean_files
        with Store(store) as opened:
            report = check_store(opened)
        assert report.ok and report.unreferenced_image_files == [], report.to_dict()
    assert "after commit" in outcomes, "no kill landed after the commit; the test did not test that window"
