"""Index jobs over HTTP on a real server: start to end, crawls, cancelling, queueing, errors, a second
writer, asks while a job writes, and --watch scheduling."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from site_server import LocalSite, page

from engine.config import DiscoverConfig
from engine.kb import KnowledgeBase
from engine.server.jobs import JobQueue, JobSpec

from .writing import LOCAL_CRAWL, WORDS, small_batches, store_config, writable_server, write_pages


def documents(served) -> int:  # noqa: ANN001 - Writable
    return served.client.get("/v1/status").json()["documents"]


def check_store(config) -> None:  # noqa: ANN001 - Config
    with KnowledgeBase(config) as kb:
        report = kb.check()
    assert report.ok, report.problems


def test_a_paths_job_runs_to_the_end_and_asks_find_its_passages_without_a_restart(tmp_path, text_encoder):
    pages = write_pages(tmp_path / "notes", 6)
    with KnowledgeBase(store_config(tmp_path), text_encoder=text_encoder) as kb:
        kb.index(["field notes"], [write_pages(tmp_path / "seed", 2, start=20)])  # the reader loads these vectors
    with writable_server(tmp_path, text_encoder) as served:
        question = {"q": "Observer 4 walked past the ember", "k": 3}
        assert not any(hit["url"].endswith("note-004.html") for hit in served.client.get("/v1/search", params=question).json()["passages"])

        response = served.client.post("/v1/index-jobs", json={"topics": ["field notes", " field  notes "], "paths": [str(pages)]})

        assert response.status_code == 202
        job = response.json()
        assert response.headers["location"] == f"/v1/jobs/{job['id']}"
        assert job["state"] in ("queued", "running") and job["report"] is None
        assert job["spec"] == {"topics": ["field notes"], "paths": [str(pages.resolve())], "crawl": False, "origin": "api"}
        done = served.wait(job["id"])
        assert done["state"] == "succeeded", done["error"]
        assert done["progress"]["done"] == done["progress"]["total"] == 6
        assert done["report"]["pages"] == {"added": 6} and done["report"]["chunks_added"] == 6
        assert done["started_at"] >= done["created_at"] and done["finished_at"] >= done["started_at"]
        # The reader sees the writer's commits, in its FAISS index too (a dense rank): no restart.
        assert documents(served) == 8
        [best, *_] = served.client.get("/v1/search", params=question).json()["passages"]
        assert best["url"].endswith("note-004.html") and best["retrieval"]["dense_rank"] == 0
        answer = served.client.post("/v1/ask", json={"question": "what was measured beside the dune at site 5", "max_images": 0})
        assert answer.status_code == 200
        assert any(source["url"].endswith("note-005.html") for source in answer.json()["sources"])


def test_a_crawl_job_indexes_the_pages_discovery_finds_on_the_site(tmp_path, text_encoder):
    with LocalSite() as site:
        coffee = site.add("/coffee.html", page("How coffee is roasted", "Green coffee beans are roasted in a drum until the Maillard reaction browns them.", "The first crack is heard when steam escapes the beans."))
        cats = site.add("/cats.html", page("Why cats purr", "Domestic cats purr when they are content, and when they are hurt.", "The purr comes from the muscles of the larynx."))
        sitemap = "".join(f"<url><loc>{u}</loc></url>" for u in (coffee, cats))
        site.add("/sitemap.xml", f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{sitemap}</urlset>', content_type="application/xml")
        discover = DiscoverConfig(providers="sitemaps", sitemap_urls=site.url("/sitemap.xml"), feeds_topic_filter=False)
        with writable_server(tmp_path, text_encoder, crawl=LOCAL_CRAWL, discover=discover) as served:
            response = served.client.post("/v1/index-jobs", json={"topics": ["coffee"], "crawl": True})
            assert response.status_code == 202 and response.json()["spec"]["crawl"] is True

            done = served.wait(response.json()["id"])

            assert done["state"] == "succeeded", done["error"]
            assert done["report"]["pages"].get("added") == 2, done["report"]
            assert [r.status for r in site.requests("/coffee.html")] == [200]
            hits = served.client.get("/v1/search", params={"q": "how are coffee beans roasted", "k": 1}).json()["passages"]
            assert hits[0]["url"] == coffee


def test_cancelling_a_running_job_stops_it_after_a_batch_and_leaves_the_store_consistent(tmp_path, text_encoder):
    pages = write_pages(tmp_path / "notes", 30)
    with writable_server(tmp_path, text_encoder, **small_batches()) as served:
        job = served.client.post("/v1/index-jobs", json={"topics": ["field notes"], "paths": [str(pages)]}).json()
        deadline = time.monotonic() + 60
        while (seen := served.client.get(f"/v1/jobs/{job['id']}").json())["progress"]["done"] < 2:
            assert seen["state"] in ("queued", "running") and time.monotonic() < deadline, seen
            time.sleep(0.02)

        response = served.client.delete(f"/v1/jobs/{job['id']}")

        assert response.status_code == 202
        assert response.json()["cancel_requested"] is True and response.json()["state"] == "running"
        done = served.wait(job["id"])
        assert done["state"] == "cancelled" and done["report"]["interrupted"] is True
        added = done["report"]["pages"]["added"]
        assert 2 <= added < 30
        assert documents(served) == added  # what was written is whole, and visible
        assert served.client.delete(f"/v1/jobs/{job['id']}").status_code == 409
    check_store(served.config)


def test_a_queued_job_waits_for_the_running_one_and_can_be_cancelled_before_it_starts(tmp_path, text_encoder):
    first = write_pages(tmp_path / "first", 4)
    second = write_pages(tmp_path / "second", 2, start=4)
    third = write_pages(tmp_path / "third", 2, start=6)
    with writable_server(tmp_path, text_encoder, **small_batches()) as served:
        post = lambda folder: served.client.post("/v1/index-jobs", json={"topics": ["notes"], "paths": [str(folder)]}).json()  # noqa: E731
        a, b, c = post(first), post(second), post(third)
        assert (b["state"], c["state"]) == ("queued", "queued")

        cancelled = served.client.delete(f"/v1/jobs/{c['id']}")

        assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
        a, b = served.wait(a["id"]), served.wait(b["id"])
        assert (a["state"], b["state"]) == ("succeeded", "succeeded")
        assert b["started_at"] >= a["finished_at"]  # one writer at a time, in order
        c = served.client.get(f"/v1/jobs/{c['id']}").json()
        assert c["state"] == "cancelled" and c["started_at"] is None and c["report"] is None
        assert documents(served) == 6  # the third job's pages were never indexed
        listed = served.client.get("/v1/jobs").json()["jobs"]
        assert [j["id"] for j in listed] == [c["id"], b["id"], a["id"]]  # newest first


@pytest.fixture(scope="module")
def idle(tmp_path_factory, text_encoder):
    """A server whose store nobody writes, for the error statuses."""
    with writable_server(tmp_path_factory.mktemp("idle"), text_encoder) as served:
        yield served


@pytest.mark.parametrize(
    "body, named",
    [
        ({"topics": ["x"], "paths": ["/no/such/folder"]}, "paths[0]: no such file or folder on the server: '/no/such/folder'"),
        ({"crawl": True}, "topics: a crawl needs at least one topic"),
        ({"topics": ["  "], "crawl": True}, "topics: a crawl needs at least one topic"),
        ({"topics": "coffee", "crawl": True}, "topics must be a list of strings, not 'coffee'"),
        ({"topics": ["coffee"]}, "paths: give the server-side files or folders"),
        ({"topics": ["coffee"], "crawl": "yes"}, "crawl must be true or false, not 'yes'"),
        ({"topics": ["coffee"], "crawl": True, "paths": ["."]}, "crawl and paths"),
        ({"topic": ["coffee"], "crawl": True}, "unknown field 'topic'"),
        ({"topics": ["coffee"], "paths": "."}, "paths must be a list of strings"),
        (["coffee"], "the request body must be a JSON object"),
    ],
)
def test_a_bad_job_is_a_400_naming_the_field_and_the_value(idle, body, named):
    response = idle.client.post("/v1/index-jobs", json=body)

    assert response.status_code == 400
    assert named in response.json()["detail"] and response.json()["error"] == "ConfigError"
    assert idle.client.get("/v1/jobs").json()["jobs"] == []


def test_a_body_that_is_not_json_is_a_400_and_another_media_type_a_415(idle):
    response = idle.client.post("/v1/index-jobs", content=b"{topics", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not JSON" in response.json()["detail"]
    response = idle.client.post("/v1/index-jobs", content=b"topics=x", headers={"content-type": "text/plain"})
    assert response.status_code == 415 and response.json()["error"] == "Unsupported Media Type"


@pytest.mark.parametrize("job_id", ["0123456789ab", "ffffffffffff"])
def test_an_unknown_job_is_a_404(idle, job_id):
    for response in (idle.client.get(f"/v1/jobs/{job_id}"), idle.client.delete(f"/v1/jobs/{job_id}")):
        assert response.status_code == 404
        assert response.json() == {"error": "Not Found", "detail": f"no job {job_id} here (a server remembers its last finished jobs until it restarts)"}


@pytest.mark.parametrize("job_id", ["xyz", "0123456789AB", "0123456789abc", "..%2F..%2Fetc", "%2e%2e"])
def test_a_malformed_job_id_is_refused_without_looking_it_up(idle, job_id):
    response = idle.client.get(f"/v1/jobs/{job_id}")
    assert response.status_code in (400, 404)
    body = response.json()
    assert set(body) == {"error", "detail"}
    if response.status_code == 400:
        assert "path parameter job_id" in body["detail"]


def hold_write_lock(root: Path) -> subprocess.Popen:
    """Another process that holds the store's write lock (as `engine index` does) until killed."""
    code = (
        "import sys, time\nfrom engine.store.store import Store\n"
        "store = Store(sys.argv[1]); store.acquire_write_lock(); print('locked', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_job_while_another_process_writes_the_store_is_a_409_naming_its_pid(idle, tmp_path):
    holder = hold_write_lock(idle.config.store.path)
    try:
        response = idle.client.post("/v1/index-jobs", json={"topics": ["x"], "paths": [str(tmp_path)]})
        assert response.status_code == 409
        assert f"being written by pid {holder.pid}" in response.json()["detail"]
        assert idle.client.get("/v1/jobs").json()["jobs"] == []
    finally:
        holder.kill()
        holder.wait()
    response = idle.client.post("/v1/index-jobs", json={"topics": ["x"], "paths": [str(tmp_path)]})
    assert response.status_code == 202
    assert idle.wait(response.json()["id"])["state"] == "succeeded"


def test_a_job_that_finds_another_writer_fails_with_its_reason(tmp_path, text_encoder):
    config = store_config(tmp_path)
    KnowledgeBase(config).close()  # the store exists
    holder = hold_write_lock(config.store.path)
    queue = JobQueue(config, lambda: (text_encoder, None))
    try:
        job = queue.submit(JobSpec(("notes",), (write_pages(tmp_path / "notes", 1),)))
        deadline = time.monotonic() + 30
        while not (job := queue.get(job.id)).finished:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert job.state == "failed"
        assert job.error == f"StoreError: the store {config.store.path} is being written by pid {holder.pid}; wait for it to finish"
    finally:
        queue.close()
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_asks_while_a_job_writes_all_succeed(tmp_path, text_encoder):
    pages = write_pages(tmp_path / "notes", 40)
    with writable_server(tmp_path, text_encoder, **small_batches()) as served:
        seed = served.client.post("/v1/index-jobs", json={"topics": ["notes"], "paths": [str(write_pages(tmp_path / "seed", 2, start=40))]})
        served.wait(seed.json()["id"])
        job = served.client.post("/v1/index-jobs", json={"topics": ["notes"], "paths": [str(pages)]}).json()
        statuses: list[tuple[int, str]] = []
        during: list[bool] = []

        def ask_repeatedly(n: int) -> None:
            import httpx

            with httpx.Client(base_url=served.url, timeout=120) as client:
                for i in range(50):
                    if i % 5 == n:
                        r = client.post("/v1/ask", json={"question": f"what was measured at site {i}", "max_images": 0})
                    else:
                        r = client.get("/v1/search", params={"q": f"Observer {i} walked past the {WORDS[i % len(WORDS)]}", "k": 1})
                    running = client.get(f"/v1/jobs/{job['id']}").json()["state"] == "running"
                    statuses.append((r.status_code, r.text if r.status_code != 200 else ""))
                    # A passage of this job's pages, found by its vector while the job still writes.
                    found = r.status_code == 200 and "passages" in r.json() and any(
                        p["url"].endswith(f"note-{i:03}.html") and p["retrieval"]["dense_rank"] is not None for p in r.json()["passages"]
                    )
                    during.append(running and found)

        threads = [threading.Thread(target=ask_repeatedly, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done = served.wait(job["id"])

        assert len(statuses) == 100
        assert [s for s in statuses if s[0] != 200] == []
        assert not any("database is locked" in text for _, text in statuses)
        assert any(during), "no search found the job's passages while it was writing"
        assert done["state"] == "succeeded" and documents(served) == 42


def test_watch_crawls_the_stored_topics_again_and_again_one_job_at_a_time(tmp_path, text_encoder):
    with LocalSite() as site:
        url = site.add("/coffee.html", page("How coffee is roasted", "Green coffee beans are roasted in a drum until they turn brown."))
        site.add("/sitemap.xml", f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>{url}</loc></url></urlset>', content_type="application/xml")
        discover = DiscoverConfig(providers="sitemaps", sitemap_urls=site.url("/sitemap.xml"), feeds_topic_filter=False)
        config = store_config(tmp_path)
        with KnowledgeBase(config, text_encoder=text_encoder) as kb:
            from indexer.write import ensure_topics

            ensure_topics(kb.store, ["coffee"])  # a stored topic, never crawled: due at once
        with writable_server(tmp_path, text_encoder, watch_every=1.0, crawl=LOCAL_CRAWL, discover=discover) as served:
            deadline = time.monotonic() + 60
            while len(watched := [j for j in served.client.get("/v1/jobs").json()["jobs"] if j["state"] == "succeeded"]) < 2:
                running = [j for j in served.client.get("/v1/jobs").json()["jobs"] if j["state"] in ("queued", "running")]
                assert len(running) <= 1, running  # never a second watch job while one is queued or running
                assert time.monotonic() < deadline, served.client.get("/v1/jobs").json()
                time.sleep(0.05)

            assert all(j["spec"]["origin"] == "watch" and j["spec"]["topics"] == ["coffee"] and j["spec"]["crawl"] for j in watched)
            first, second = sorted(watched, key=lambda j: j["started_at"])[:2]
            assert second["started_at"] >= first["finished_at"] + 1.0 - 0.05  # the interval after the last round
            assert first["report"]["pages"] == {"added": 1}
            assert second["report"]["pages"].get("added", 0) == 0  # the page is unchanged: nothing new
            statuses = [r.status for r in site.requests("/coffee.html")]
            assert statuses[:2] == [200, 304]  # the second round asked with the page's validators


@pytest.mark.parametrize(
    "args, message",
    [(["serve", "--every", "30m"], "--every goes with --watch"), (["serve", "--watch", "--every", "soon"], "is not a positive duration")],
)
def test_serve_checks_its_watch_interval_before_it_starts(tmp_path, args, message):
    from typer.testing import CliRunner

    from cli.app import app

    result = CliRunner().invoke(app, ["--store", str(tmp_path), *args])

    assert result.exit_code == 2 and message in result.output


def test_a_job_takes_urls_and_the_guard_still_refuses_loopback_unless_allowed(tmp_path, text_encoder):
    with LocalSite() as site:
        url = site.add("/notes.html", page("Field notes", *WORDS[:3]))
        with writable_server(tmp_path / "guarded", text_encoder) as served:
            job = served.client.post("/v1/index-jobs", json={"topics": ["field notes"], "paths": [f"  {url} "]}).json()
            assert job["spec"]["paths"] == [url]
            done = served.wait(job["id"])
            assert done["state"] == "succeeded" and done["report"]["pages"] == {"failed": 1}, done
            [failure] = done["report"]["failures"]
            assert "127.0.0.1 is a loopback address" in failure["reason"] and site.requests("/notes.html") == []
        with writable_server(tmp_path / "allowed", text_encoder, crawl=LOCAL_CRAWL) as served:
            done = served.wait(served.client.post("/v1/index-jobs", json={"topics": ["field notes"], "paths": [url]}).json()["id"])
            assert done["report"]["pages"] == {"added": 1}, done
