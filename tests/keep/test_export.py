"""`engine export`: documents, chunks and images as JSON Lines (and the files), filtered by topic
and time, read without the write lock."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from cli.app import app
from engine.errors import InputError
from engine.keep.export import export_store
from engine.kb import KnowledgeBase
from engine.store.database import HEAD_REVISION
from engine.store.schema import documents, meta
from engine.store.store import Store
from tests.conftest import EXAMPLES, RANDOM_CLIP, make_config, store_counts

runner = CliRunner()
NO_CLIP = {"ENGINE_CLIP_ENABLED": "false"}
TOPICS = [t for t in (EXAMPLES / "topics.txt").read_text().splitlines() if t.strip()]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, text_encoder, clip_encoder):
    """The example pages indexed with random-weight CLIP (so images are stored), once for the module."""
    root = tmp_path_factory.mktemp("export-kb")
    with KnowledgeBase(make_config(root, RANDOM_CLIP), text_encoder=text_encoder, clip_encoder=clip_encoder) as kb:
        report = kb.index(TOPICS, [EXAMPLES / "pages"])
        assert report.images["added"] > 0
        yield kb


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def export_cli(store: Path, *args: str, env: dict | None = None):  # noqa: ANN201 - click Result
    return runner.invoke(app, ["--store", str(store), "export", *args], env={**NO_CLIP, **(env or {})})


def test_help_has_examples():
    result = runner.invoke(app, ["export", "--help"])
    assert result.exit_code == 0
    assert "Example: engine export" in result.output


def test_export_everything_matches_the_store(indexed, tmp_path):
    target = tmp_path / "out"
    result = export_cli(indexed.config.store.path, str(target), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    counts = store_counts(indexed)

    docs = read_jsonl(target / "documents.jsonl")
    chunk_rows = read_jsonl(target / "chunks.jsonl")
    image_rows = read_jsonl(target / "images.jsonl")
    assert len(docs) == counts["documents"] == summary["documents"]
    assert len(chunk_rows) == counts["chunks"] == summary["chunks"]
    assert len(image_rows) == counts["images"] == summary["images"] == summary["image_files"]

    # Each document's text round-trips exactly; metadata and sources come along.
    with indexed.store.reading() as conn:
        stored = {r.id: r for r in conn.execute(select(documents))}
    for doc in docs:
        row = stored[doc["id"]]
        assert doc["text"] == row.text
        assert doc["title"] == row.title and doc["language"] == row.language
        assert doc["url"].startswith("https://example.org/") and doc["sources"][0]["canonical_url"] == doc["url"]
        assert doc["created_at"].endswith("Z") and datetime.fromisoformat(doc["created_at"])
        assert doc["topics"] and all(t["name"] in TOPICS for t in doc["topics"])
    # Chunks belong to exported documents and are the stated slices of their text.
    texts = {d["id"]: d["text"] for d in docs}
    for chunk in chunk_rows:
        assert chunk["document_id"] in texts
        assert set(chunk) == {"id", "document_id", "position", "text", "start_char", "end_char"}
    # Image files are there, and their bytes are what the content hash says.
    for image in image_rows:
        data = (target / image["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == image["content_hash"]
        assert len(data) == image["byte_size"]
        assert image["documents"] and all(link["document_id"] in texts and link["src_url"] for link in image["documents"])
    assert len([p for p in (target / "images").rglob("*") if p.is_file()]) == len(image_rows)

    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["schema_revision"] == HEAD_REVISION
    assert manifest["counts"]["documents"] == len(docs) and manifest["counts"]["images"] == len(image_rows)
    assert manifest["filters"]["topic"] is None and manifest["vectors"] is False
    # Nothing left behind beside the export.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_no_images_writes_metadata_only(indexed, tmp_path):
    report = export_store(indexed.store, tmp_path / "out", images=False)
    assert report.images > 0 and report.image_files == 0
    assert not (tmp_path / "out" / "images").exists()
    assert all(r["file"] is None for r in read_jsonl(tmp_path / "out" / "images.jsonl"))


def _shared_document(kb) -> tuple[int, str, str, float]:
    """The document whose second-best topic scores highest: (id, best topic, second topic, that score)."""
    with kb.store.reading() as conn:
        rows = conn.execute(
            text(
                "SELECT td.document_id, t.name, td.score FROM topic_documents td JOIN topics t ON t.id = td.topic_id "
                "ORDER BY td.document_id, td.score DESC"
            )
        ).all()
    by_doc: dict[int, list] = {}
    for doc_id, name, score in rows:
        by_doc.setdefault(doc_id, []).append((name, score))
    doc_id, ranked = max(by_doc.items(), key=lambda kv: kv[1][1][1])
    return doc_id, ranked[0][0], ranked[1][0], ranked[1][1]


def test_topic_restricts_to_its_documents_and_a_shared_one_is_in_both(indexed, tmp_path):
    status = {t.name: t for t in indexed.status().topics}
    result = export_cli(indexed.config.store.path, str(tmp_path / "coffee"), "--topic", "coffee", "--json")
    assert result.exit_code == 0, result.output
    docs = read_jsonl(tmp_path / "coffee" / "documents.jsonl")
    assert len(docs) == status["coffee"].documents >= 2
    assert all(any(t["name"] == "coffee" for t in d["topics"]) for d in docs)
    ids = {d["id"] for d in docs}
    chunk_rows = read_jsonl(tmp_path / "coffee" / "chunks.jsonl")
    assert {c["document_id"] for c in chunk_rows} == ids and len(chunk_rows) == status["coffee"].chunks
    image_rows = read_jsonl(tmp_path / "coffee" / "images.jsonl")
    assert len(image_rows) == status["coffee"].images > 0
    assert all(link["document_id"] in ids for r in image_rows for link in r["documents"])
    assert json.loads((tmp_path / "coffee" / "manifest.json").read_text())["filters"]["topic"] == "coffee"

    # With the threshold at a document's second-best score, it belongs to two topics and is in both exports.
    doc_id, first, second, score = _shared_document(indexed)
    env = {"ENGINE_INDEX_TOPIC_MIN_SIMILARITY": repr(score)}
    for n, name in enumerate((first, second)):
        result = export_cli(indexed.config.store.path, str(tmp_path / f"shared{n}"), "--topic", name, env=env)
        assert result.exit_code == 0, result.output
        assert doc_id in {d["id"] for d in read_jsonl(tmp_path / f"shared{n}" / "documents.jsonl")}


def test_unknown_topic_lists_the_known_ones(indexed, tmp_path):
    result = export_cli(indexed.config.store.path, str(tmp_path / "out"), "--topic", "astrology")
    assert result.exit_code == 1
    assert "InputError" in result.output and "'astrology'" in result.output
    assert all(name in result.output for name in TOPICS)
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="coffee"):
        export_store(indexed.store, tmp_path / "lib", topic="astrology")


@pytest.mark.parametrize("since", ["yesterday", "2026-13-45", "7x", "2026", "-3d"])
def test_bad_since_is_refused(indexed, tmp_path, since):
    result = export_cli(indexed.config.store.path, str(tmp_path / "out"), "--since", since)
    assert result.exit_code == 2, result.output
    assert "ConfigError" in result.output and "--since" in result.output
    assert not (tmp_path / "out").exists()


def test_since_accepts_dates_times_and_durations():
    from cli.export_cmd import since_timestamp

    now = 1_800_000_000.0
    assert since_timestamp("7d", now) == now - 7 * 86400
    assert since_timestamp("12h", now) == now - 12 * 3600
    assert since_timestamp("2026-11-01") == datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()
    assert since_timestamp("2026-11-01T12:00") == datetime(2026, 11, 1, 12, tzinfo=timezone.utc).timestamp()
    assert since_timestamp("2026-11-01T12:00Z") == since_timestamp("2026-11-01T14:00+02:00")


def test_non_empty_target_is_refused_and_left_untouched(indexed, tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result = export_cli(indexed.config.store.path, str(target))
    assert result.exit_code == 1
    assert "InputError" in result.output and "not empty" in result.output and "out" in result.output
    assert [p.name for p in target.iterdir()] == ["notes.txt"] and (target / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # An empty folder that exists is fine.
    (tmp_path / "empty").mkdir()
    assert export_store(indexed.store, tmp_path / "empty").documents == store_counts(indexed)["documents"]


def _copy_pages(names: list[str], target: Path) -> Path:
    target.mkdir()
    for name in names:
        shutil.copy(EXAMPLES / "pages" / f"{name}.html", target)
        files = EXAMPLES / "pages" / f"{name}_files"
        if files.exists():
            shutil.copytree(files, target / files.name)
    return target


def test_since_keeps_only_documents_indexed_after_the_cutoff(tmp_path, text_encoder):
    first = _copy_pages(["coffee-roasting", "cat-senses"], tmp_path / "first")
    second = _copy_pages(["roman-coinage", "hubble-deep-fields"], tmp_path / "second")
    with KnowledgeBase(make_config(tmp_path), text_encoder=text_encoder) as kb:
        kb.index(TOPICS, [first])
        time.sleep(0.05)
        cutoff = time.time()
        time.sleep(0.05)
        kb.index(TOPICS, [second])
        store = kb.config.store.path
    stamp = datetime.fromtimestamp(cutoff, timezone.utc).isoformat()
    result = export_cli(store, str(tmp_path / "recent"), "--since", stamp, "--json")
    assert result.exit_code == 0, result.output
    docs = read_jsonl(tmp_path / "recent" / "documents.jsonl")
    assert sorted(d["url"].rsplit("/", 1)[1] for d in docs) == ["hubble-deep-fields.html", "roman-coinage.html"]
    assert all(datetime.fromisoformat(d["created_at"]).timestamp() >= int(cutoff) for d in docs)
    assert {c["document_id"] for c in read_jsonl(tmp_path / "recent" / "chunks.jsonl")} == {d["id"] for d in docs}
    assert json.loads(result.stdout)["filters"]["since"].startswith(stamp[:19])

    result = export_cli(store, str(tmp_path / "week"), "--since", "7d")
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(tmp_path / "week" / "documents.jsonl")) == 4
    result = export_cli(store, str(tmp_path / "future"), "--since", "2999-01-01")
    assert result.exit_code == 0, result.output
    assert read_jsonl(tmp_path / "future" / "documents.jsonl") == []


def test_export_runs_beside_a_writer_without_the_write_lock(indexed, tmp_path, monkeypatch):
    import engine.keep.export as export_module

    # Another process writes: export neither needs the lock nor waits for it.
    writer = Store(indexed.config.store.path)
    writer.acquire_write_lock()
    try:
        result = export_cli(indexed.config.store.path, str(tmp_path / "locked"))
        assert result.exit_code == 0, result.output
        assert len(read_jsonl(tmp_path / "locked" / "documents.jsonl")) == store_counts(indexed)["documents"]

        # A commit made mid-export goes through at once, and the export keeps its snapshot.
        real_write_chunks = export_module._write_chunks
        took = {}

        def write_meanwhile(*args, **kwargs):  # noqa: ANN002, ANN003
            started = time.monotonic()
            with writer.transaction() as conn:
                writer.set_meta(conn, "model.export-test", "written during the export")
            took["seconds"] = time.monotonic() - started
            return real_write_chunks(*args, **kwargs)

        monkeypatch.setattr(export_module, "_write_chunks", write_meanwhile)
        export_store(indexed.store, tmp_path / "during")
        assert took["seconds"] < 5
        assert "export-test" not in json.loads((tmp_path / "during" / "manifest.json").read_text())["models"]
    finally:
        with writer.transaction() as conn:
            conn.execute(meta.delete().where(meta.c.key == "model.export-test"))
        writer.close()
