"""Crawling topics from a real local site into a store: frontier, re-crawls with conditional
GETs, gone pages, hostile servers, status, concurrent asks, --watch, and resuming after a stop
or a kill -9. Discovery is a tiny function of the test's own returning the site's URLs."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import make_config, store_counts
from site_server import (
    LocalSite,
    Route,
    drip,
    endless,
    fail_then,
    gzip_bomb,
    page,
    redirect_to,
)
from sqlalchemy import select
from typer.testing import CliRunner

from engine.config import CrawlConfig
from engine.kb import KnowledgeBase
from engine.store.schema import crawl_topics, crawl_urls, documents, sources
from indexer.discover.base import Candidate

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "pages"
COFFEE_JPG = (EXAMPLES / "coffee-roasting_files" / "coffee.jpg").read_bytes()
CAT_JPG = (EXAMPLES / "cat-behaviour_files" / "chelsea.jpg").read_bytes()
COINS_JPG = (EXAMPLES / "roman-coinage_files" / "coins.jpg").read_bytes()

ARTICLES = {
    "/coffee.html": page(
        "How coffee is roasted",
        "Green coffee beans are roasted in a drum at about two hundred degrees Celsius until they turn brown.",
        "During roasting the Maillard reaction and caramelisation create the aroma and the bitterness of coffee.",
        "The first crack is heard when steam escapes the beans; light roasts stop soon after it.",
        images=("/img/coffee.jpg",),
    ),
    "/espresso.html": page(
        "The chemistry of espresso",
        "Espresso is brewed by forcing hot water through finely ground coffee at nine bars of pressure.",
        "The crema on top of an espresso is an emulsion of oils and carbon dioxide from freshly roasted beans.",
        "Extraction time, grind size and water temperature decide whether a shot tastes sour or bitter.",
    ),
    "/cats.html": page(
        "Why cats purr",
        "Domestic cats purr when they are content, but also when they are hurt or giving birth.",
        "The purr comes from the muscles of the larynx twitching many times every second.",
        "Kittens purr while nursing, which may help the mother cat find and care for them.",
        images=("/img/cat.jpg",),
    ),
    "/coins.html": page(
        "Roman coinage",
        "The Roman denarius was a small silver coin minted for more than four centuries.",
        "Emperors put their portraits on coins, so that coins spread their image across the empire.",
        "Debasement of the silver content in the third century led to runaway inflation in Rome.",
        images=("/img/coins.jpg",),
    ),
}
TOPICS = ["coffee", "domestic cats", "ancient coins"]


@dataclass
class Found:
    """What the test's discovery returns (the shape of indexer.discover.run.DiscoveryResult)."""

    candidates: list[Candidate]
    failures: list = field(default_factory=list)


def discover_urls(*urls: str, images: tuple[Candidate, ...] = ()):
    async def discover(topic, client):
        return Found([Candidate(u, "page", "test", n) for n, u in enumerate(urls)] + list(images))

    return discover


def serve_articles(site: LocalSite, **route) -> list[str]:
    site.add("/img/coffee.jpg", COFFEE_JPG, content_type="image/jpeg")
    site.add("/img/cat.jpg", CAT_JPG, content_type="image/jpeg")
    site.add("/img/coins.jpg", COINS_JPG, content_type="image/jpeg")
    return [site.add(path, html, **route) for path, html in ARTICLES.items()]


LOCAL = {
    "allow_private_addresses": True, "per_host_interval_seconds": 0, "retry_backoff_seconds": 0.01,
    "connect_timeout_seconds": 2, "read_timeout_seconds": 1, "fetch_deadline_seconds": 3,
}


def crawl_kb(tmp_path: Path, text_encoder, crawl: dict | None = None, **index) -> KnowledgeBase:
    config = make_config(tmp_path, **index)
    return KnowledgeBase(config.replace(crawl=CrawlConfig(**{**LOCAL, **(crawl or {})})), text_encoder=text_encoder)


def frontier(kb: KnowledgeBase) -> dict[str, tuple]:
    """URL path -> (status, http status, last error)."""
    with kb.store.reading() as conn:
        rows = conn.execute(select(crawl_urls.c.url, crawl_urls.c.status, crawl_urls.c.http_status, crawl_urls.c.last_error))
        return {"/" + url.split("/", 3)[3]: (s, h, e) for url, s, h, e in rows}


@pytest.fixture
def site():
    with LocalSite() as server:
        server.add("/robots.txt", "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
        yield server


# -- a crawl, and crawling again -----------------------------------------------------------------


def test_crawl_stores_pages_with_their_images_and_records_each_url(tmp_path, text_encoder, site):
    urls = serve_articles(site)
    with crawl_kb(tmp_path, text_encoder) as kb:
        report = kb.index(TOPICS, discover=discover_urls(*urls))
        assert report.pages == {"added": 4}, report.to_dict()
        assert report.images["added"] == 3 and report.failures == []
        assert frontier(kb) == {p: ("fetched", 200, None) for p in ARTICLES}
        with kb.store.reading() as conn:
            stored = {url: (status, etag) for url, status, etag in conn.execute(select(sources.c.url, sources.c.http_status, sources.c.etag))}
        assert set(stored) == set(urls) and all(s == 200 and e for s, e in stored.values())
        answer = kb.ask("how is coffee roasted")
        assert any("roast" in s.text for s in answer.summary)
        assert any(i.src_url.endswith("/img/coffee.jpg") for i in answer.images)
    # Each page and image once, robots.txt once.
    assert sorted(r.path for r in site.requests()) == sorted(
        ["/robots.txt", *ARTICLES, "/img/coffee.jpg", "/img/cat.jpg", "/img/coins.jpg"]
    )


def test_a_recrawl_revalidates_changes_and_marks_gone_pages_without_deleting_them(tmp_path, text_encoder, site):
    urls = serve_articles(site)
    discover = discover_urls(*urls)
    with crawl_kb(tmp_path, text_encoder) as kb:
        kb.index(TOPICS, discover=discover)
        before = store_counts(kb)
        site.clear_log()

        again = kb.index(TOPICS, discover=discover)
        assert again.pages == {"not_modified": 4}, again.to_dict()
        assert store_counts(kb) == before, "an unchanged site must change nothing"
        assert all(r.status == 304 and "if-none-match" in r.headers for r in site.requests() if r.path in ARTICLES)
        assert not any(r.path.startswith("/img/") for r in site.requests()), "images of unchanged pages refetched"

        site.add("/espresso.html", ARTICLES["/espresso.html"].replace("nine bars", "nine or ten bars"))
        site.add("/cats.html", "gone", status=410, content_type="text/plain")
        third = kb.index(TOPICS, discover=discover)
        assert third.pages == {"not_modified": 2, "updated": 1, "gone": 1}, third.to_dict()
        assert [(f.origin, f.reason) for f in third.failures] == [(site.url("/cats.html"), "HTTP 410: Gone")]
        state = frontier(kb)
        assert state["/cats.html"] == ("gone", 410, "HTTP 410: Gone")
        assert state["/espresso.html"] == ("fetched", 200, None)
        with kb.store.reading() as conn:
            titles = set(conn.execute(select(documents.c.title)).scalars())
        assert "Why cats purr" in titles, "a gone page's document must stay"
        assert store_counts(kb)["documents"] == before["documents"]

        status = {t.name: t for t in kb.status().topics}
        cats = status["domestic cats"]
        assert cats.urls == {"gone": 1, "not_modified": 2, "fetched": 1}
        assert cats.errors == {"gone: HTTP 410": 1}
        assert cats.last_crawl is not None and cats.next_crawl is None  # no schedule without --watch
        assert cats.documents >= 1 and status["coffee"].images >= 1


def test_pages_that_discovery_drops_are_still_revalidated(tmp_path, text_encoder, site):
    urls = serve_articles(site)
    with crawl_kb(tmp_path, text_encoder) as kb:
        kb.index(["coffee"], discover=discover_urls(*urls))
        report = kb.index(["coffee"], discover=discover_urls(urls[0]))
        assert report.pages == {"not_modified": 4}


def test_image_candidates_are_stored_with_their_page(tmp_path, text_encoder, site):
    urls = serve_articles(site)
    extra = site.add("/img/extra.jpg", COINS_JPG, content_type="image/jpeg")
    images = (
        Candidate(extra, "image", "test", 0, title="A Roman denarius", page_url=site.url("/espresso.html")),
        Candidate(site.url("/img/lonely.jpg"), "image", "test", 1),
    )
    with crawl_kb(tmp_path, text_encoder) as kb:
        report = kb.index(["coffee"], discover=discover_urls(urls[1], images=images))
        assert report.pages == {"added": 1, "skipped": 1}
        answer_images = kb.ask("espresso crema", max_images=3).images
        assert any(i.src_url == extra for i in answer_images)
        state = frontier(kb)
        assert state["/img/extra.jpg"][0] == "fetched"
        assert state["/img/lonely.jpg"] == ("skipped", None, "an image without the page it appears on (nothing to cite it by)")


# -- safety and hostile servers ------------------------------------------------------------------


def test_a_crawl_refuses_private_addresses_by_default(tmp_path, text_encoder, site):
    urls = serve_articles(site)
    with crawl_kb(tmp_path, text_encoder, crawl={"allow_private_addresses": False}) as kb:
        report = kb.index(["coffee"], discover=discover_urls(*urls))
        assert report.pages == {"failed": 4}
        assert all("refused address: 127.0.0.1 is a loopback address" in f.reason for f in report.failures)
        assert store_counts(kb)["documents"] == 0
    assert site.requests() == []


def test_a_configured_search_service_on_loopback_is_reached_but_the_pages_it_names_are_guarded(tmp_path, text_encoder, site):
    """The user's own SearxNG on 127.0.0.1 answers discovery; the loopback pages it returns are refused, each
    with its reason, unless crawl.allow_private_addresses is on."""
    from engine.config import DiscoverConfig

    urls = serve_articles(site)
    site.add("/search", json.dumps({"results": [{"url": u, "title": "t", "content": "c"} for u in urls]}),
             content_type="application/json")
    discover = DiscoverConfig(providers="searxng-web", searxng_url=site.url("/"))
    with crawl_kb(tmp_path, text_encoder, crawl={"allow_private_addresses": False}) as kb:
        kb.config = kb.config.replace(discover=discover)
        report = kb.index(["coffee"])
    assert not [f for f in report.failures if f.kind == "discovery"], report.failures
    assert report.pages == {"failed": len(urls)}
    assert all("127.0.0.1 is a loopback address" in f.reason and "allow_private_addresses" in f.reason for f in report.failures)
    assert site.requests() and all(r.path.startswith("/search") for r in site.requests())  # no page was fetched


def test_a_provider_that_breaks_is_its_own_failure_line_with_its_cause():
    import asyncio

    import httpx

    from engine.config import DiscoverConfig
    from indexer.discover.run import discover_topic

    class Broken:
        name, limit = "broken", 5

        async def discover(self, topic, client, limit):
            raise KeyError("results")

    class Working:
        name, limit = "working", 5

        async def discover(self, topic, client, limit):
            return [Candidate("https://example.org/a", "page", "working", 0)]

    async def run():
        async with httpx.AsyncClient() as client:
            return await discover_topic("coffee", [Broken(), Working()], client, DiscoverConfig())

    result = asyncio.run(run())
    assert [c.url for c in result.candidates] == ["https://example.org/a"]
    (failure,) = result.failures
    assert failure.source == "broken" and failure.reason == "unexpected KeyError: 'results'"


HOSTILE = {
    "/slow.html": ("timeout: no data for 1 s", "failed"),
    "/drip.html": ("timeout: the response took over crawl.fetch_deadline_seconds = 3 s", "failed"),
    "/endless.html": ("too large: page body over the 200000-byte limit", "failed"),
    "/bomb.html": ("too large: page body over the 200000-byte limit after decompression", "failed"),
    "/loop.html": ("redirect loop: ", "failed"),
    "/png.html": ("not an HTML page: Content-Type image/png", "failed"),
    "/missing.html": ("HTTP 404: Not Found", "gone"),
    "/removed.html": ("HTTP 410: Gone", "gone"),
    "/throttled.html": ("HTTP 429: Too Many Requests (asks to retry after 3600 s", "failed"),
    "/error.html": ("HTTP 500: Internal Server Error (after 3 attempts)", "failed"),
    "/huge.html": ("too large: 300", "failed"),
    "/private/secret.html": ("robots.txt: disallowed for engine-crawler", "skipped"),
    "/empty.html": ("no main text found", "failed"),
}


def test_hostile_servers_fail_with_clear_reasons_and_lose_nothing(tmp_path, text_encoder, site):
    good = serve_articles(site)
    site.add("/slow.html", ARTICLES["/coffee.html"], delay=1.5)
    site.handle("/drip.html", drip(0.1))
    site.handle("/endless.html", endless())
    site.handle("/bomb.html", gzip_bomb(20_000_000))
    site.handle("/loop.html", redirect_to("/loop2.html"))
    site.handle("/loop2.html", redirect_to("/loop.html"))
    site.add("/png.html", (EXAMPLES / "space-shuttle-program_files" / "logo.png").read_bytes(), content_type="image/png")
    site.add("/removed.html", "gone", status=410, content_type="text/plain")
    site.handle("/throttled.html", fail_then(99, 429, Route(), retry_after="3600"))
    site.add("/error.html", "boom", status=500, content_type="text/plain")
    site.add("/huge.html", "<html><body><p>" + "words " * 50_000 + "</p></body></html>")
    site.add("/private/secret.html", ARTICLES["/cats.html"])
    site.add("/empty.html", "<html><body></body></html>")
    # Pages that are fine, with bad images, or text in a broken encoding.
    invalid_utf8 = ARTICLES["/espresso.html"].replace("Espresso", "Espresso \xff\xfe").encode("latin-1")
    site.add("/broken-encoding.html", invalid_utf8, content_type="text/html; charset=utf-8")
    site.add("/bad-images.html", page(
        "Roasting at home",
        "Coffee can be roasted at home in a pan, a popcorn popper or a small drum roaster over a gas flame.",
        "Home roasters listen for the first and second crack to judge how dark the roast has become.",
        "The beans are cooled quickly in a colander after the roast, and rest a day before brewing.",
        images=("/img/page.jpg", "/img/cut.jpg", "/img/gone.jpg"),
    ))
    site.add("/img/page.jpg", ARTICLES["/coffee.html"], content_type="image/jpeg")  # HTML behind an image URL
    site.add("/img/cut.jpg", COFFEE_JPG[: len(COFFEE_JPG) // 2], content_type="image/jpeg")  # truncated

    discover = discover_urls(*good)
    with crawl_kb(tmp_path, text_encoder, max_page_bytes=200_000) as kb:
        kb.index(TOPICS, discover=discover)
        before = store_counts(kb)
        hostile = [site.url(p) for p in HOSTILE] + [site.url("/broken-encoding.html"), site.url("/bad-images.html")]
        started = time.monotonic()
        report = kb.index(TOPICS, discover=discover_urls(*good, *hostile))
        took = time.monotonic() - started

        reasons = {f.origin: f.reason for f in report.failures if f.kind == "page"}
        for path, (reason, _) in HOSTILE.items():
            assert reasons.get(site.url(path), "").startswith(reason), (path, reasons.get(site.url(path)))
        state = frontier(kb)
        for path, (_, status) in HOSTILE.items():
            assert state[path][0] == status, (path, state[path])
        image_reasons = {f.origin.split(" ")[0]: f.reason for f in report.failures if f.kind == "image"}
        assert image_reasons[site.url("/img/page.jpg")] == "not an image: the URL serves HTML (Content-Type image/jpeg)"
        assert image_reasons[site.url("/img/cut.jpg")].startswith("damaged image: image file is truncated")
        assert image_reasons[site.url("/img/gone.jpg")] == "HTTP 404: Not Found"
        assert report.pages["added"] == 2 and report.pages["not_modified"] == 4, report.to_dict()
        after = store_counts(kb)
        assert after["documents"] == before["documents"] + 2 and after["images"] == before["images"]
        with kb.store.reading() as conn:
            text = conn.execute(select(documents.c.text).where(documents.c.title == "The chemistry of espresso")).scalar()
        assert "nine bars of pressure" in text  # the page with broken bytes is stored, its text intact
        # Every wait is bounded: retries, the drip deadline, the slow server's read timeout.
        assert took < 30, f"the hostile crawl took {took:.0f} s"
        errors = {t.name: t.errors for t in kb.status().topics}["coffee"]
        assert errors["gone: HTTP 404"] == 1 and errors["failed: timeout"] == 2 and errors["skipped: robots.txt"] == 1


# -- running beside readers, watching, stopping and resuming -------------------------------------


def many_articles(site: LocalSite, n: int, delay: float = 0.0) -> list[str]:
    subjects = ["roasting", "brewing", "grinding", "tasting", "storing", "growing", "harvesting", "blending"]
    urls = []
    for i in range(n):
        s = subjects[i % len(subjects)]
        urls.append(site.add(f"/many/{i}.html", page(
            f"Notes on coffee {s}, part {i}",
            f"Part {i} of our notes is about {s} coffee, written by reader number {i + 100}.",
            f"Many people ask how {s} changes the taste of a cup; note {i} collects answers from {i + 3} cafés.",
            f"The {s} of coffee beans differs between regions, and batch {i * 7} was {s} by hand.",
        ), delay=delay))
    return urls


@pytest.mark.slow
def test_ask_runs_while_a_crawl_writes_without_database_is_locked(tmp_path, text_encoder, site):
    from engine.encoders.text import TextEncoder

    urls = serve_articles(site)
    more = many_articles(site, 40, delay=0.05)
    reader_encoder = TextEncoder("all-MiniLM-L6-v2")  # its own model: tokenizers are not shared across threads
    errors: list[BaseException] = []
    answers = []
    crawling = threading.Event()

    with crawl_kb(tmp_path, text_encoder, docs_per_batch=2) as kb:
        kb.index(["coffee"], discover=discover_urls(*urls))

        def ask_repeatedly() -> None:
            try:
                with KnowledgeBase(kb.config, text_encoder=reader_encoder) as reader:
                    while crawling.is_set() or not answers:
                        answers.append(reader.ask("how is coffee roasted"))
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        crawling.set()
        reader = threading.Thread(target=ask_repeatedly)
        reader.start()
        try:
            report = kb.index(["coffee"], discover=discover_urls(*urls, *more))
        finally:
            crawling.clear()
            reader.join(timeout=120)
    assert not errors, f"ask failed while crawling: {errors[0]!r}"
    assert report.pages["added"] == 40
    assert len(answers) >= 3 and all(a.summary for a in answers)


def test_watch_recrawls_on_schedule_until_stopped(tmp_path, text_encoder, site):
    urls = serve_articles(site)
    stop = threading.Event()
    result = {}
    with crawl_kb(tmp_path, text_encoder) as kb:
        run = threading.Thread(
            target=lambda: result.update(report=kb.index(["coffee"], discover=discover_urls(*urls), watch=True,
                                                        every=1.0, stop_requested=stop))
        )
        run.start()
        def revalidations() -> list[int]:  # 304s served per article: one per re-crawl round reaching it
            return [len([r for r in site.requests(path) if r.status == 304]) for path in ARTICLES]

        deadline = time.monotonic() + 60
        while min(revalidations()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        run.join(timeout=30)
        assert not run.is_alive(), "--watch did not stop when asked"
        report = result["report"]
        assert report.interrupted
        # Every page was re-crawled twice; the first re-crawl round is recorded whole, the second may
        # have been stopped part-way (its responses served, their pages not yet written).
        assert min(revalidations()) >= 2
        assert report.pages["added"] == 4, report.to_dict()
        assert len(ARTICLES) <= report.pages["not_modified"] <= sum(revalidations()), report.to_dict()
        with kb.store.reading() as conn:
            last, following = conn.execute(select(crawl_topics.c.last_crawl_at, crawl_topics.c.next_crawl_at)).one()
        assert following == pytest.approx(last + 1.0)
        assert kb.status().topics[0].next_crawl == following


def test_a_stopped_crawl_resumes_without_refetching_what_was_committed(tmp_path, text_encoder, site):
    urls = many_articles(site, 12, delay=0.1)
    stop = threading.Event()
    result = {}
    with crawl_kb(tmp_path, text_encoder, crawl={"concurrency": 2, "per_host_concurrency": 1}, docs_per_batch=1) as kb:
        run = threading.Thread(
            target=lambda: result.update(report=kb.index(["coffee"], discover=discover_urls(*urls), stop_requested=stop))
        )
        run.start()
        deadline = time.monotonic() + 60
        while store_counts(kb)["documents"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        run.join(timeout=30)
        assert result["report"].interrupted
        with kb.store.reading() as conn:
            committed = set(conn.execute(select(sources.c.url)).scalars())
            unfinished = conn.execute(select(crawl_topics.c.last_crawl_at)).scalar()
        assert 3 <= len(committed) < 12 and unfinished is None
        site.clear_log()

        resumed = kb.index(["coffee"], discover=discover_urls(*urls))
        assert not resumed.interrupted
        fetched_again = {site.url(r.path) for r in site.requests() if r.path.startswith("/many/")}
        assert not fetched_again & committed, "pages committed before the stop were fetched again"
        assert resumed.pages["added"] == 12 - len(committed)
        counts = store_counts(kb)
        assert counts["documents"] == counts["sources"] == 12
        assert set(frontier(kb).values()) == {("fetched", 200, None)}


# -- kill -9 -------------------------------------------------------------------------------------

CRAWL_SCRIPT = """
import json, sys
from dataclasses import dataclass, field
from pathlib import Path
from engine.config import ClipConfig, Config, CrawlConfig, IndexConfig, StoreConfig
from engine.kb import KnowledgeBase
from indexer.discover.base import Candidate

store, urls = sys.argv[1], json.loads(sys.argv[2])

@dataclass
class Found:
    candidates: list
    failures: list = field(default_factory=list)

async def discover(topic, client):
    return Found([Candidate(u, "page", "test", n) for n, u in enumerate(urls)])

config = Config(
    store=StoreConfig(Path(store)), clip=ClipConfig(enabled=False), index=IndexConfig(docs_per_batch=1),
    crawl=CrawlConfig(allow_private_addresses=True, per_host_interval_seconds=0, concurrency=2),
)
with KnowledgeBase(config) as kb:
    report = kb.index(["coffee"], discover=discover)
print(json.dumps(report.to_dict()))
"""


def scalar(db: Path, sql: str):
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(sql).fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return None


@pytest.mark.slow
def test_a_crawl_killed_with_sigkill_resumes_without_refetching_or_duplicates(tmp_path, site):
    urls = many_articles(site, 16, delay=0.15)
    store = tmp_path / "store"
    db = store / "engine.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    env.update(HF_HUB_OFFLINE="1", ENGINE_CONFIG=str(tmp_path / "none.toml"), PYTHONPATH=str(REPO))
    (tmp_path / "none.toml").write_text("")
    command = [sys.executable, "-c", CRAWL_SCRIPT, str(store), json.dumps(urls)]

    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while (scalar(db, "SELECT count(*) FROM documents") or 0) < 4:
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no pages committed in time"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert scalar(db, "PRAGMA integrity_check") == "ok"
    committed = {row[0] for row in sqlite3.connect(db).execute("SELECT url FROM sources")}
    assert 4 <= len(committed) < 16
    site.clear_log()

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    report = json.loads(resumed.stdout.strip().splitlines()[-1])
    refetched = {site.url(r.path) for r in site.requests() if r.path.startswith("/many/")}
    assert not refetched & committed, "pages committed before the kill were fetched again"
    assert report["pages"] == {"added": 16 - len(committed)}
    assert scalar(db, "SELECT count(*) FROM documents") == scalar(db, "SELECT count(*) FROM sources") == 16
    assert scalar(db, "SELECT count(*) FROM crawl_urls WHERE status = 'fetched'") == 16
    assert scalar(db, "SELECT count(*) FROM crawl_topics WHERE last_crawl_at >= round_started_at") == 1


# -- the command line -----------------------------------------------------------------------------


def flat(output: str) -> str:
    """CLI output without rich's box drawing and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def test_index_command_checks_its_crawl_options(tmp_path):
    from cli.app import app

    runner = CliRunner()
    topics = tmp_path / "topics.txt"
    topics.write_text("coffee\n")
    store = str(tmp_path / "kb")
    result = runner.invoke(app, ["--store", store, "index", "--topics", str(topics), "--watch", "--every", "soon"])
    assert result.exit_code == 2 and "'soon' is not a positive duration such as 90s, 30m, 2h or 1d" in flat(result.output)
    result = runner.invoke(app, ["--store", store, "index", "--topics", str(topics), "--every", "30m"])
    assert result.exit_code == 2 and "--every goes with --watch" in flat(result.output)
    result = runner.invoke(app, ["--store", store, "index", "--topics", str(topics), "--watch", "--from", str(tmp_path)])
    assert result.exit_code == 2 and "ConfigError" in result.output and "does not go with --from" in flat(result.output)


def test_index_command_crawls_a_sitemap_site(tmp_path, site):
    from cli.app import app

    urls = serve_articles(site)
    entries = "".join(f"<url><loc>{u}</loc></url>" for u in urls)
    site.add("/sitemap.xml", f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>',
             content_type="application/xml")
    topics = tmp_path / "topics.txt"
    topics.write_text("coffee\n")
    env = {
        "ENGINE_DISCOVER_PROVIDERS": "sitemaps",
        "ENGINE_DISCOVER_SITEMAP_URLS": site.url("/sitemap.xml"),
        "ENGINE_DISCOVER_FEEDS_TOPIC_FILTER": "false",
        "ENGINE_CRAWL_ALLOW_PRIVATE_ADDRESSES": "true",
        "ENGINE_CRAWL_PER_HOST_INTERVAL_SECONDS": "0",
        "ENGINE_CLIP_ENABLED": "false",
    }
    store = tmp_path / "kb"
    result = CliRunner().invoke(app, ["--store", str(store), "index", "--topics", str(topics), "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pages"] == {"added": 4}
    result = CliRunner().invoke(app, ["--store", str(store), "status"], env=env)
    assert "coffee crawled URLs: 4 fetched" in result.stdout


@pytest.mark.slow
def test_ctrl_c_stops_watch_after_the_current_batch_and_records_the_run(tmp_path, site):
    urls = serve_articles(site)
    entries = "".join(f"<url><loc>{u}</loc></url>" for u in urls)
    site.add("/sitemap.xml", f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>',
             content_type="application/xml")
    topics = tmp_path / "topics.txt"
    topics.write_text("coffee\n")
    (tmp_path / "none.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    env.update(
        HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), ENGINE_CONFIG=str(tmp_path / "none.toml"),
        ENGINE_DISCOVER_PROVIDERS="sitemaps", ENGINE_DISCOVER_SITEMAP_URLS=site.url("/sitemap.xml"),
        ENGINE_DISCOVER_FEEDS_TOPIC_FILTER="false", ENGINE_CRAWL_ALLOW_PRIVATE_ADDRESSES="true",
        ENGINE_CRAWL_PER_HOST_INTERVAL_SECONDS="0", ENGINE_CLIP_ENABLED="false",
    )
    store = tmp_path / "kb"
    child = subprocess.Popen(
        [sys.executable, "-m", "cli", "--store", str(store), "index", "--topics", str(topics), "--watch", "--every", "1s"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while len([r for r in site.requests("/coffee.html") if r.status == 304]) < 1:
        assert child.poll() is None, child.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "no second round in time"
        time.sleep(0.1)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stderr[-2000:]
    assert "stopping after the current batch" in stderr and "run the same command again to resume" in stderr
    db = store / "engine.db"
    assert scalar(db, "SELECT status FROM runs ORDER BY id DESC LIMIT 1") == "interrupted"
    assert scalar(db, "SELECT count(*) FROM documents") == 4


@pytest.mark.slow
def test_real_article_pages_are_crawled_and_then_revalidated(tmp_path, text_encoder, site, shared_data):
    real = sorted((shared_data / "real-pages").glob("*.html"))
    urls = [site.add(f"/real/{p.name}", p.read_bytes()) for p in real]
    with crawl_kb(tmp_path, text_encoder) as kb:
        first = kb.index(["python programming", "climate"], discover=discover_urls(*urls))
        assert first.pages == {"added": len(real)}, first.to_dict()
        # Their images live on the real sites: unreachable here, each failure named, the pages stored.
        assert all(f.kind == "image" for f in first.failures)
        again = kb.index(["python programming", "climate"], discover=discover_urls(*urls))
        assert again.pages == {"not_modified": len(real)}
        assert store_counts(kb)["documents"] == len(real)
