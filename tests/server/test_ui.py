"""The web UI against a real server: answers rendered server-side, the status and index pages, escaping, headers."""

from __future__ import annotations

import dataclasses
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import lxml.html
import pytest
from PIL import Image

from engine.config import Config, StoreConfig
from engine.kb import KnowledgeBase
from engine.server.app import create_app
from engine.server.security import Access
from engine.server.ui.render import CSP

from tests.conftest import RANDOM_CLIP, make_config
from tests.server.conftest import TOPICS, ServerThread

QUESTION = "how is coffee roasted"
HOSTILE_TOPIC = "zanzibar lacquer pottery"
HOSTILE_QUESTION = "how is zanzibar lacquer pottery glazed"
# What a stored page must never get to run: each payload appears in the page's title, text, alt or URL.
PAYLOADS = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>", 'href="javascript:')
# The answer page's own markup mentions none of these, so any occurrence in it is page-derived.
HOSTILE_PAGE = """<!-- saved from url=(0019)javascript:alert(1) -->
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title><script>alert(1)</script> Zanzibar lacquer pottery</title></head>
<body><article>
<h1>Zanzibar lacquer pottery &lt;img src=x onerror=alert(1)&gt;</h1>
<p>Zanzibar lacquer pottery is glazed with layers of tree resin lacquer that potters brush onto the fired clay
and polish with sand. &lt;script&gt;alert(1)&lt;/script&gt; Each lacquer layer of the pottery dries for a week
before the next is brushed on, so a glazed Zanzibar pot takes months. <a href="javascript:alert(1)">Read more</a></p>
<figure><img src="pot.png" alt="&lt;script&gt;alert(1)&lt;/script&gt; a lacquered Zanzibar pot &lt;img src=x onerror=alert(1)&gt;">
<figcaption>&lt;img src=x onerror=alert(1)&gt; A Zanzibar pot glazed with resin lacquer.</figcaption></figure>
<p>Lacquer pottery from Zanzibar is traded along the coast, and collectors value the deep red glaze of old pots.</p>
</article></body></html>
"""


def write_hostile_page(folder: Path) -> Path:
    """A saved page whose title, text, alt text, caption and URL carry script payloads, with its image."""
    folder.mkdir(parents=True)
    (folder / "zanzibar-pottery.html").write_text(HOSTILE_PAGE, encoding="utf-8")
    Image.radial_gradient("L").convert("RGB").resize((240, 180)).save(folder / "pot.png")
    return folder


def store_script_url(kb) -> None:  # noqa: ANN001 - KnowledgeBase
    """Give the hostile page a javascript: source URL. Indexing no longer stores one (a saved-from
    stamp must be http(s)), but a store written before, or by another tool, may hold it: the UI must
    still show it as text, never as a link."""
    from sqlalchemy import update

    from engine.store.schema import sources

    with kb.store.transaction() as conn:
        changed = conn.execute(update(sources).where(sources.c.url.like("%zanzibar-pottery.html")).values(url="javascript:alert(1)"))
    assert changed.rowcount == 1


@dataclass(frozen=True)
class Site:
    url: str
    client: httpx.Client
    app: object  # the FastAPI app, whose access settings a test may change

    def page(self, path: str, **params: str | int) -> tuple[httpx.Response, lxml.html.HtmlElement]:
        response = self.client.get(path, params=params)
        return response, lxml.html.fromstring(response.text)


@pytest.fixture(scope="module")
def site(tmp_path_factory, text_encoder, clip_encoder, examples_dir):
    """A server over the example pages and the hostile page, with random-weight CLIP so images are scored."""
    root = tmp_path_factory.mktemp("ui")
    config = make_config(root, RANDOM_CLIP)
    hostile = write_hostile_page(root / "hostile")
    with KnowledgeBase(config, text_encoder=text_encoder, clip_encoder=clip_encoder) as kb:
        kb.index([*TOPICS, HOSTILE_TOPIC], [examples_dir / "pages", hostile])
        store_script_url(kb)
        app = create_app(config, kb, Access(token=None, loopback=True))
        with ServerThread(app) as server, httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60) as client:
            deadline = time.monotonic() + 60
            while client.get("/v1/status").status_code == 503:
                assert time.monotonic() < deadline, "the knowledge base did not load"
                time.sleep(0.05)
            yield Site(str(client.base_url), client, app)


def texts(tree: lxml.html.HtmlElement, selector: str) -> list[str]:
    return [" ".join(e.text_content().split()) for e in tree.cssselect(selector)]


def test_the_answer_page_shows_the_cited_summary_with_its_sources_and_images(site):
    response, tree = site.page("/", q=QUESTION, max_images=3)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    answer = site.client.post("/v1/ask", json={"question": QUESTION, "max_images": 3}).json()
    sentences = tree.cssselect("li.sentence")
    assert [s.cssselect("p")[0].text_content().split("[")[0].strip() for s in sentences] == [s["text"] for s in answer["summary"]]
    for sentence, item in zip(sentences, answer["summary"]):
        assert [a.get("href") for a in sentence.cssselect("a.cite")] == [f"#source-{n}" for n in item["citations"]]
    for source in answer["sources"]:
        (entry,) = tree.cssselect(f"#source-{source['number']}")
        assert source["title"] in entry.text_content() and entry.cssselect("a")[0].get("href") == source["url"]
    assert answer["images"], "random-weight CLIP still scores the example images"
    for image in answer["images"]:
        (img,) = tree.cssselect(f'img[src="/v1/images/{image["image_id"]}?size=thumb"]')
        assert img.getparent().get("href") == f"/v1/images/{image['image_id']}"
        # Beside the sentence it illustrates, with its score parts behind a <details>.
        holder = next(a for a in img.iterancestors() if a.get("id") or "gallery" in a.get("class", ""))
        assert holder.get("id") == (None if image["sentence"] is None else f"s{image['sentence'] + 1}")
        assert "alignment" in " ".join(texts(next(a for a in img.iterancestors() if a.tag == "figure"), "details"))
        thumb = site.client.get(img.get("src"))
        assert thumb.status_code == 200 and thumb.headers["content-type"].startswith("image/")
    assert not any("/store/" in (img.get("src") or "") for img in tree.cssselect("img"))  # never file paths


def test_the_controls_keep_their_values_and_shape_the_answer(site):
    response, tree = site.page("/", q=QUESTION, style="brief", max_sentences=2, max_images=1)
    assert response.status_code == 200
    assert tree.cssselect("input[name=q]")[0].get("value") == QUESTION
    assert [o.get("value") for o in tree.cssselect("select[name=style] option[selected]")] == ["brief"]
    assert tree.cssselect("input[name=max_sentences]")[0].get("value") == "2"
    assert tree.cssselect("input[name=max_images]")[0].get("value") == "1"
    assert 1 <= len(tree.cssselect("li.sentence")) <= 2 and len(tree.cssselect("figure img")) <= 1


def test_the_paragraph_style_is_one_paragraph_with_a_gallery(site):
    response, tree = site.page("/", q=QUESTION, style="paragraph")
    assert response.status_code == 200
    assert tree.cssselect("p.paragraph a.cite") and not tree.cssselect("li.sentence")


def test_the_question_box_alone_needs_no_knowledge_base(site):
    response, tree = site.page("/")
    assert response.status_code == 200
    assert tree.cssselect("form.ask input[name=q]") and not tree.cssselect("article.answer")


def test_nothing_relevant_is_explained_with_what_to_try(site):
    question = "best chocolate cake recipe"
    response, tree = site.page("/", q=question)
    assert response.status_code == 200
    answer = site.client.post("/v1/ask", json={"question": question}).json()
    assert answer["relevance"]["nothing_relevant"]
    (nothing,) = tree.cssselect("section.nothing")
    said = " ".join(nothing.text_content().split())
    assert "Nothing relevant is stored for this question." in said
    assert all(notice in said for notice in answer["notices"])  # why: the evidence decision's reason
    assert any(a.get("href").startswith("/index?topics=") for a in nothing.cssselect("a"))  # what to try
    assert not tree.cssselect("li.sentence")


@pytest.mark.parametrize(
    ("params", "named"),
    [({"max_images": "-1"}, "max_images"), ({"max_sentences": "two"}, "max_sentences"), ({"style": "haiku"}, "style")],
)
def test_a_bad_parameter_is_a_400_page_that_names_it(site, params, named):
    response, tree = site.page("/", q=QUESTION, **params)
    assert response.status_code == 400 and response.headers["content-type"].startswith("text/html")
    (error,) = texts(tree, ".error")
    assert named in error and "Traceback" not in response.text
    assert tree.cssselect("input[name=q]")[0].get("value") == QUESTION  # the form is still there to fix it


def test_every_ui_page_sends_the_security_headers(site):
    job = site.client.post("/v1/index-jobs", json={"topics": ["coffee"], "paths": [str(Path(__file__))]}).json()
    for path in ("/", f"/?q={QUESTION}", "/?q=x&max_images=-1", "/status", "/index", f"/jobs/{job['id']}", "/jobs/nope"):
        response = site.client.get(path)
        assert response.headers["content-security-policy"] == CSP, path
        assert "script-src" not in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "same-origin", path  # see SECURITY_HEADERS
        assert "<script" not in response.text, path  # no JavaScript: every page works with it off


def test_stored_page_text_is_escaped_and_script_urls_are_not_links(site):
    response, tree = site.page("/", q=HOSTILE_QUESTION)
    assert response.status_code == 200
    answer = site.client.post("/v1/ask", json={"question": HOSTILE_QUESTION}).json()
    (source,) = [s for s in answer["sources"] if s["url"] == "javascript:alert(1)"]
    assert "<img src=x onerror=alert(1)>" in source["title"]  # the payload reached the answer...
    for payload in PAYLOADS:
        assert payload not in response.text  # ...and the page shows it only as text
    assert "&lt;img src=x onerror=alert(1)&gt;" in response.text
    assert not tree.cssselect("script") and not tree.cssselect("[onerror]")
    hrefs = [a.get("href") for a in tree.cssselect("a")]
    assert not any(h.lower().startswith("javascript") for h in hrefs)
    entry = tree.cssselect(f"#source-{source['number']}")[0]
    assert "javascript:alert(1)" in entry.text_content() and not entry.cssselect("a")


def test_the_status_page_shows_what_v1_status_returns(site):
    response, tree = site.page("/status")
    assert response.status_code == 200
    status = site.client.get("/v1/status").json()
    rows = {row[0]: row[1:4] for row in (texts(tr, "td") for tr in tree.cssselect("table.topics tbody tr"))}
    assert rows == {t["name"]: [str(t["documents"]), str(t["chunks"]), str(t["images"])] for t in status["topics"]}
    said = " ".join(tree.text_content().split())
    assert f"{status['documents']} documents from {status['sources']} sources" in said
    indexes = {row[0]: row[1:] for row in (texts(tr, "td") for tr in tree.cssselect("table.indexes tbody tr"))}
    assert indexes["text"][:2] == ["flat (Flat)", str(status["indexes"]["text"]["vectors"])]
    assert indexes["text"][2] == "exact"  # a small store's index is exact


def test_the_index_page_offers_a_crawl_and_an_upload_with_its_size_limit(site):
    response, tree = site.page("/index", topics="cake recipes")
    assert response.status_code == 200
    (crawl, upload) = tree.cssselect("form.index")
    assert crawl.get("method") == "post" and crawl.get("action") == "/index"
    assert upload.get("enctype") == "multipart/form-data" and upload.cssselect("input[type=file][name=files]")
    assert crawl.cssselect("textarea[name=topics]")[0].text_content() == "cake recipes"
    assert "100 MB at most" in upload.text_content()  # serve.max_upload_bytes
    assert not tree.cssselect("input[name=token]")  # no token configured


def test_an_upload_through_the_form_becomes_a_job_whose_page_follows_it(site, tmp_path):
    page = tmp_path / "saved.html"
    page.write_text(HOSTILE_PAGE.replace("Zanzibar", "Quillon"), encoding="utf-8")
    files = {"files": ("saved.html", page.read_bytes(), "text/html")}
    response = site.client.post("/index", data={"kind": "upload", "topics": "quillon pottery"}, files=files)
    assert response.status_code == 303 and response.headers["location"].startswith("/jobs/")
    job_id = response.headers["location"].rsplit("/", 1)[1]
    job = wait_for(site, job_id, ("succeeded", "failed", "cancelled"))
    assert job["state"] == "succeeded" and job["spec"]["origin"] == "upload"
    response, tree = site.page(f"/jobs/{job_id}")
    assert not tree.cssselect('meta[http-equiv="refresh"]')  # finished: it stops reloading
    assert texts(tree, "h1 .state") == ["succeeded"]
    assert "1 added" in " ".join(texts(tree, "table.outcome td"))
    assert site.client.post(f"/jobs/{job_id}/cancel").status_code == 409  # already finished
    _, index = site.page("/index")
    assert job_id in texts(index, "table.jobs a")


@contextmanager
def jobs_held(site: Site) -> Iterator[None]:
    """Jobs wait while this holds the reader: a job's worker takes the reader's models before it writes."""
    with site.app.state.warm.use():
        yield


def wait_for(site: Site, job_id: str, states: tuple[str, ...]) -> dict:
    deadline = time.monotonic() + 60
    while (job := site.client.get(f"/v1/jobs/{job_id}").json())["state"] not in states:
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def test_a_running_job_page_reloads_itself_and_can_be_cancelled(site, examples_dir):
    with jobs_held(site):
        job = site.client.post("/v1/index-jobs", json={"topics": ["coffee"], "paths": [str(examples_dir / "pages")]}).json()
        wait_for(site, job["id"], ("running",))
        _, tree = site.page(f"/jobs/{job['id']}")
        assert tree.cssselect('meta[http-equiv="refresh"]') and tree.cssselect("progress")
        assert texts(tree, "h1 .state") == ["running"]
        response = site.client.post(tree.cssselect("form")[-1].get("action"))  # the cancel button's form
        assert response.status_code == 303 and response.headers["location"] == f"/jobs/{job['id']}"
        _, tree = site.page(f"/jobs/{job['id']}")
        assert "Stopping after the batch being written" in tree.text_content()
        assert not tree.cssselect("button.danger")  # asked once
    assert wait_for(site, job["id"], ("succeeded", "failed", "cancelled"))["state"] == "cancelled"
    _, tree = site.page(f"/jobs/{job['id']}")
    assert texts(tree, "h1 .state") == ["cancelled"] and not tree.cssselect('meta[http-equiv="refresh"]')


@pytest.fixture
def token_required(site):
    """The served app needs the token "s3cret" to write, for one test."""
    open_access = site.app.state.access
    site.app.state.access = Access(token="s3cret", loopback=True)
    yield
    site.app.state.access = open_access


def test_a_form_post_without_the_configured_token_is_refused(site, token_required):
    _, tree = site.page("/index")
    assert len(tree.cssselect("input[type=password][name=token]")) == 2  # one per form
    before = len(site.client.get("/v1/jobs").json()["jobs"])
    crawl = {"kind": "crawl", "topics": "coffee"}
    response = site.client.post("/index", data=crawl)
    assert response.status_code == 401 and "token" in texts(lxml.html.fromstring(response.text), ".error")[0]
    assert site.client.post("/index", data={**crawl, "token": "wrong"}).status_code == 403
    assert len(site.client.get("/v1/jobs").json()["jobs"]) == before  # nothing was started
    with jobs_held(site):
        response = site.client.post("/index", data={**crawl, "token": "s3cret"})
        assert response.status_code == 303
        job_id = response.headers["location"].rsplit("/", 1)[1]
        _, tree = site.page(f"/jobs/{job_id}")
        assert tree.cssselect("form input[type=password][name=token]")  # cancelling needs it too
        assert site.client.post(f"/jobs/{job_id}/cancel").status_code == 401
        assert site.client.post(f"/jobs/{job_id}/cancel", data={"token": "s3cret"}).status_code == 303
    wait_for(site, job_id, ("succeeded", "failed", "cancelled"))


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}])
def test_a_cross_site_form_post_is_refused(site, headers):
    before = len(site.client.get("/v1/jobs").json()["jobs"])
    response = site.client.post("/index", data={"kind": "crawl", "topics": "coffee"}, headers=headers)
    assert response.status_code == 403 and "cross-site" in texts(lxml.html.fromstring(response.text), ".error")[0]
    assert len(site.client.get("/v1/jobs").json()["jobs"]) == before


@pytest.fixture
def small_uploads(site):
    """The served app takes uploads of at most 1000 bytes, for one test."""
    jobs = site.app.state.jobs
    config = jobs.config
    jobs.config = dataclasses.replace(config, serve=dataclasses.replace(config.serve, max_upload_bytes=1000))
    yield
    jobs.config = config


def test_an_upload_over_the_size_limit_is_a_413_page_that_shows_the_limit(site, small_uploads):
    _, tree = site.page("/index")
    assert "1 kB at most" in " ".join(texts(tree, "form.index label"))
    files = {"files": ("big.html", b"<html><body>" + b"x" * 5000 + b"</body></html>", "text/html")}
    response = site.client.post("/index", data={"kind": "upload"}, files=files)
    assert response.status_code == 413
    assert "serve.max_upload_bytes" in texts(lxml.html.fromstring(response.text), ".error")[0]


def test_an_upload_that_is_not_a_page_is_a_400_page(site):
    files = {"files": ("notes.txt", b"just text", "text/plain")}
    response = site.client.post("/index", data={"kind": "upload"}, files=files)
    assert response.status_code == 400 and "notes.txt" in texts(lxml.html.fromstring(response.text), ".error")[0]


def test_docs_serve_swagger_ui_from_this_server(site):
    response = site.client.get("/docs")
    assert response.status_code == 200
    tree = lxml.html.fromstring(response.text)
    loaded = [e.get("src") or e.get("href") for e in tree.cssselect("script[src], link[href]")]
    assert loaded and all(url.startswith("/docs/assets/") for url in loaded)  # no CDN
    for url in loaded:
        assert site.client.get(url).status_code == 200
    policy = response.headers["content-security-policy"]
    assert "http" not in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert site.client.get("/docs/assets/index.html").status_code == 404  # only the files /docs uses


class LoadingKnowledgeBase:
    """A knowledge base whose warm-up ask waits until ``loaded`` is set."""

    def __init__(self, root: Path):
        self.config = Config(store=StoreConfig(path=root))
        self.loaded = threading.Event()

    def ask(self, request, **options):  # noqa: ANN001, ANN003, ANN201 - KnowledgeBase.ask's signature
        self.loaded.wait(30)


def test_pages_say_503_while_the_knowledge_base_loads_and_reload_themselves(tmp_path):
    kb = LoadingKnowledgeBase(tmp_path)
    try:
        with ServerThread(create_app(kb.config, kb, Access(token=None, loopback=True))) as server:
            with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                assert client.get("/").status_code == 200  # the question box needs no model
                for path in (f"/?q={QUESTION}", "/status"):
                    response = client.get(path)
                    assert response.status_code == 503 and response.headers["retry-after"]
                    tree = lxml.html.fromstring(response.text)
                    assert "loading" in texts(tree, ".error")[0]
                    assert tree.cssselect('meta[http-equiv="refresh"]')
                    assert response.headers["content-security-policy"] == CSP
            kb.loaded.set()
    finally:
        kb.loaded.set()


def test_only_what_is_new_since_the_last_ask(site):
    question = "how was the roman denarius debased"
    response, tree = site.page("/", q=question, new="1")
    assert response.status_code == 200
    assert tree.cssselect("input[name=new][checked]")  # the choice stays in the form (and the shared URL)
    assert tree.cssselect("p.new-since")[0].text_content().startswith("New to you: first asked now")
    assert tree.cssselect("ol.sources li, .sources li")  # the first time, the whole store answers
    response, tree = site.page("/", q=question, new="1")
    assert "Nothing new since" in tree.cssselect("p.empty")[0].text_content()
    assert not tree.cssselect("p.new-since")
