"""`engine index --executor ray` on a real (local) Ray instance: the same store as the local executor."""

from __future__ import annotations

import io
import shutil
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from engine.config import Config, RayConfig
from engine.errors import ConfigError
from engine.kb import KnowledgeBase
from engine.store.schema import TEXT_SPACE, chunks, documents, embeddings, failures, sources
from indexer.distributed.cluster import Resources
from indexer.distributed.executor import embed_actors
from tests.conftest import RANDOM_CLIP, make_config, store_counts
from tests.test_crawl import ARTICLES, TOPICS, crawl_kb, discover_urls, frontier, serve_articles, site  # noqa: F401 - site is a fixture

QUESTIONS = ["how is coffee roasted", "why do cats purr", "what did the space shuttle do"]


def corpus(tmp_path, examples_dir):
    """The example pages plus a page with a damaged image: a failure both executors must record."""
    pages = tmp_path / "pages"
    shutil.copytree(examples_dir / "pages", pages)
    (pages / "broken_files").mkdir()
    (pages / "broken_files" / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = io.BytesIO()
    Image.new("RGB", (96, 64), (200, 120, 40)).save(good, "JPEG")
    (pages / "broken_files" / "good.jpg").write_bytes(good.getvalue())
    (pages / "broken.html").write_text(
        "<html><head><title>Kiln drying of timber</title></head><body><article><h1>Kiln drying of timber</h1>"
        "<p>Freshly sawn timber holds a lot of water, and kiln drying removes it under controlled heat and humidity.</p>"
        "<p>Drying too fast makes boards crack and warp, so kiln schedules raise the temperature step by step.</p>"
        '<img src="broken_files/photo.jpg" alt="a kiln"><img src="broken_files/good.jpg" alt="stacked boards">'
        "</article></body></html>"
    )
    return pages


def index_with(executor: str, root, pages, text_encoder, clip_encoder=None, **index) -> tuple[KnowledgeBase, object]:
    config = make_config(root, replace(RANDOM_CLIP, runtime="torch") if clip_encoder else None, **index)
    kb = KnowledgeBase(config, text_encoder=text_encoder, clip_encoder=clip_encoder)
    topics = ["coffee", "space flight", "timber"]
    return kb, kb.index(topics, [pages], executor=executor)


def vectors_by_text(kb: KnowledgeBase, space: str) -> dict[str, np.ndarray]:
    with kb.store.reading() as conn:
        rows = conn.execute(
            select(chunks.c.text, embeddings.c.vector).join(embeddings, embeddings.c.item_id == chunks.c.id).where(embeddings.c.space == space)
        ).all()
    return {text: np.frombuffer(vector, np.float32) for text, vector in rows}


def test_ray_indexes_a_folder_into_the_same_store_as_the_local_executor(tmp_path, examples_dir, text_encoder, clip_encoder, local_ray):
    pages = corpus(tmp_path, examples_dir)
    local, local_report = index_with("local", tmp_path / "local", pages, text_encoder, clip_encoder)
    distributed, ray_report = index_with("ray", tmp_path / "ray", pages, text_encoder, clip_encoder)
    with local, distributed:
        assert ray_report.pages == local_report.pages == {"added": 9}
        assert ray_report.chunks_added == local_report.chunks_added
        assert ray_report.images == local_report.images and ray_report.images["failed"] == 1
        assert [(f.kind, f.origin) for f in ray_report.failures] == [(f.kind, f.origin) for f in local_report.failures]
        assert ray_report.clip_used and not ray_report.interrupted
        assert store_counts(distributed) == store_counts(local)
        with distributed.store.reading() as conn:
            assert conn.execute(select(failures.c.input)).scalars().all() == [f.origin for f in local_report.failures]
        # The actors computed the same vectors (same models, seeded random CLIP weights).
        mine, theirs = vectors_by_text(distributed, TEXT_SPACE), vectors_by_text(local, TEXT_SPACE)
        assert mine.keys() == theirs.keys()
        assert max(float(np.abs(mine[t] - theirs[t]).max()) for t in mine) < 1e-4
        assert store_counts(distributed)["embeddings"] > store_counts(distributed)["text_vectors"]  # CLIP vectors too
        for question in QUESTIONS:
            a, b = distributed.ask(question), local.ask(question)
            assert [s.url for s in a.sources] == [s.url for s in b.sources]
            assert [s.text for s in a.summary] == [s.text for s in b.summary]


def test_a_second_ray_run_skips_what_is_stored(tmp_path, examples_dir, text_encoder, local_ray):
    pages = corpus(tmp_path, examples_dir)
    kb, first = index_with("ray", tmp_path, pages, text_encoder)
    kb.close()
    kb, again = index_with("ray", tmp_path, pages, text_encoder)
    with kb:
        assert first.pages == {"added": 9}
        assert again.pages == {"unchanged": 9}
        assert again.chunks_added == 0
        with kb.store.reading() as conn:
            assert len(conn.execute(select(documents.c.id)).all()) == 9


def test_ray_crawls_a_local_site_like_the_local_executor(tmp_path, text_encoder, site, local_ray):
    urls = serve_articles(site)
    reports, frontiers, stored = {}, {}, {}
    for executor in ("local", "ray"):
        with crawl_kb(tmp_path / executor, text_encoder) as kb:
            reports[executor] = kb.index(TOPICS, discover=discover_urls(*urls), executor=executor).to_dict()
            frontiers[executor] = frontier(kb)
            with kb.store.reading() as conn:
                stored[executor] = sorted(conn.execute(select(sources.c.url, sources.c.http_status, sources.c.etag)).all())
    for report in reports.values():
        report.pop("seconds")
    assert reports["ray"] == reports["local"]
    assert reports["ray"]["pages"] == {"added": 4} and reports["ray"]["images"]["added"] == 3
    assert frontiers["ray"] == frontiers["local"] == {p: ("fetched", 200, None) for p in ARTICLES}
    assert stored["ray"] == stored["local"]


def test_the_actor_pool_is_sized_by_the_cluster_and_refuses_to_starve_preparation():
    config = Config()
    assert embed_actors(config, Resources(cpus=2, gpus=0)) == (1, 1.0, 0.0)
    assert embed_actors(config, Resources(cpus=16, gpus=0)) == (15, 1.0, 0.0)
    assert embed_actors(config, Resources(cpus=64, gpus=4)) == (4, 1.0, 1.0)  # one per GPU
    two = config.replace(ray=RayConfig(embed_actors=2))
    with pytest.raises(ConfigError, match=r"ray.embed_actors = 2 .* 2 CPUs"):
        embed_actors(two, Resources(cpus=2, gpus=0))
    assert embed_actors(two, Resources(cpus=3, gpus=0)) == (2, 1.0, 0.0)
    with pytest.raises(ConfigError, match="ray.actor_cpus"):
        RayConfig(actor_cpus=0)


def test_an_unknown_executor_is_refused_before_anything_is_written(tmp_path, examples_dir, text_encoder):
    with KnowledgeBase(make_config(tmp_path), text_encoder=text_encoder) as kb:
        with pytest.raises(ConfigError, match="executor must be one of local, ray"):
            kb.index(["coffee"], [examples_dir / "pages"], executor="spark")
        with kb.store.reading() as conn:
            assert conn.execute(select(documents.c.id)).all() == []


def test_a_stopped_ray_run_commits_whole_pages_and_the_next_run_finishes(tmp_path, examples_dir, text_encoder, local_ray):
    import threading

    pages = corpus(tmp_path, examples_dir)
    stop = threading.Event()
    config = make_config(tmp_path, docs_per_batch=1)
    with KnowledgeBase(config, text_encoder=text_encoder) as kb:
        first = kb.index(["coffee"], [pages], executor="ray", stop_requested=stop, on_progress=lambda p: stop.set())
        assert first.interrupted
        stopped_at = sum(first.pages.values())
        assert 1 <= stopped_at < 9
        with kb.store.reading() as conn:
            assert len(conn.execute(select(documents.c.id)).all()) == first.pages["added"]
        assert kb.check().problems == []
        again = kb.index(["coffee"], [pages], executor="ray")
        assert not again.interrupted
        assert again.pages["added"] == 9 - first.pages["added"] and again.pages.get("unchanged", 0) == first.pages["added"]
        assert store_counts(kb)["documents"] == 9


def test_each_page_is_written_while_the_producer_waits_for_it(tmp_path, examples_dir, text_encoder, local_ray, monkeypatch):
    """A producer that pauses (a crawl between fetches) must not leave its last pages in the cluster."""
    import sqlite3
    import time

    from indexer.pipeline import LocalInputs

    produce = LocalInputs.produce
    waited: list[float] = []

    def documents(db) -> int:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM documents").fetchone()[0]

    def one_at_a_time(self, store, config, emit, stop) -> None:
        db = store.root / "engine.db"

        def emit_and_wait(item) -> None:
            before = documents(db)
            emit(item)
            started = time.monotonic()
            while documents(db) == before and time.monotonic() - started < 120:
                time.sleep(0.05)
            waited.append(time.monotonic() - started)

        produce(self, store, config, emit_and_wait, stop)

    monkeypatch.setattr(LocalInputs, "produce", one_at_a_time)
    with KnowledgeBase(make_config(tmp_path), text_encoder=text_encoder) as kb:
        report = kb.index(["coffee"], [examples_dir / "pages"], executor="ray")
    assert report.pages == {"added": 8}
    # The first wait includes the cluster starting (workers, models); after it, each page is written
    # within seconds, not when the next one is sent.
    assert len(waited) == 8 and max(waited[1:]) < 15, waited
