"""The fetcher against real local servers: SSRF guard, robots.txt, politeness, retries,
conditional GET, limits, redirects, timeouts, content types. Each failure must come back as
a FetchError naming the URL with a clear reason, within the configured time limits."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import time
import zlib
from pathlib import Path

import pytest
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

from engine.config import CrawlConfig
from engine.errors import FetchError, InputError
from indexer.fetch import netguard
from indexer.fetch.body import BadEncoding, BodyTooLarge, BoundedDecoder
from indexer.fetch.fetcher import Fetcher
from indexer.fetch.netguard import address_problem
from indexer.fetch.urls import page_url_problem
from indexer.images import load_image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "pages"
JPEG = (EXAMPLES / "coffee-roasting_files" / "coffee.jpg").read_bytes()
ARTICLE = page("Roasting coffee", "Green coffee beans are roasted at about two hundred degrees. " * 10)
MB = 1_000_000

# Fast and permissive for a local server: no politeness gap, tiny backoff, short timeouts.
LOCAL = CrawlConfig(
    allow_private_addresses=True,
    per_host_interval_seconds=0,
    retry_backoff_seconds=0.01,
    connect_timeout_seconds=2,
    read_timeout_seconds=1,
    fetch_deadline_seconds=3,
)


def fetch(config: CrawlConfig, url: str, kind: str = "page", resolver=None, **validators):
    """One fetch through a fresh Fetcher; returns the FetchResult or the FetchError."""

    async def go():
        kwargs = {"resolver": resolver} if resolver else {}
        async with Fetcher(config, MB, MB, **kwargs) as fetcher:
            try:
                if kind == "image":
                    return await fetcher.fetch_image(url)
                return await fetcher.fetch_page(url, **validators)
            except FetchError as exc:
                return exc

    return asyncio.run(go())


def failure(config: CrawlConfig, url: str, kind: str = "page", **kwargs) -> FetchError:
    result = fetch(config, url, kind, **kwargs)
    assert isinstance(result, FetchError), f"{url} was fetched, but should have failed"
    assert result.source == url
    return result


@pytest.fixture
def site():
    with LocalSite() as server:
        server.add("/robots.txt", "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
        yield server


# -- the SSRF guard ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata endpoints live here
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not a globally routable"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6 is judged as the IPv4 address
        ("::ffff:10.0.0.1", "private"),
    ],
)
def test_internal_addresses_are_classified(address, why):
    problem = address_problem(address)
    assert problem is not None and why in problem


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert address_problem(address) is None


def test_private_addresses_are_refused_by_default(site):
    url = site.add("/a.html", ARTICLE)
    error = failure(CrawlConfig(), url)
    assert "refused address: 127.0.0.1 is a loopback address" in error.reason
    assert "crawl.allow_private_addresses" in error.reason  # says how to allow an intranet
    assert site.requests() == [], "nothing may reach the server, robots.txt included"


def test_a_name_is_checked_after_resolution(site):
    site.add("/a.html", ARTICLE)
    url = site.url("/a.html").replace("127.0.0.1", "localhost")
    error = failure(CrawlConfig(), url)
    assert "refused address" in error.reason and "localhost resolves to it" in error.reason
    assert site.requests() == []


def test_allowed_private_addresses_are_fetched(site):
    url = site.add("/a.html", ARTICLE)
    result = fetch(LOCAL, url)
    assert result.status == 200 and b"Roasting coffee" in result.content


def _pretend_127_0_0_1_is_public(monkeypatch):
    """The test server must live on loopback; let the guard see 127.0.0.1 as a public host."""
    real = netguard.address_problem
    monkeypatch.setattr(netguard, "address_problem", lambda a: None if a == "127.0.0.1" else real(a))


def test_a_redirect_from_a_public_host_to_an_internal_one_is_refused(site, monkeypatch):
    _pretend_127_0_0_1_is_public(monkeypatch)
    port = site.base.rsplit(":", 1)[1]
    names = {"public.test": ["127.0.0.1"], "intranet.test": ["127.0.0.2"]}

    async def resolver(host, _port):
        return names[host]

    site.add("/admin", "secret")
    site.handle("/to-name", redirect_to(f"http://intranet.test:{port}/admin"))
    site.handle("/to-ip", redirect_to(f"http://127.0.0.2:{port}/admin", status=301))
    guarded = CrawlConfig(per_host_interval_seconds=0, respect_robots=False)

    for path, via in (("/to-name", "intranet.test resolves to it"), ("/to-ip", "")):
        url = f"http://public.test:{port}{path}"
        error = failure(guarded, url, resolver=resolver)
        assert "refused address: 127.0.0.2 is a loopback address" in error.reason, error.reason
        assert via in error.reason
        assert "redirected" not in error.reason or "/admin" in error.reason
    assert [r.path for r in site.requests()] == ["/to-name", "/to-ip"], "the internal URL was reached"


def test_every_connection_is_checked_so_dns_rebinding_fails(site, monkeypatch):
    _pretend_127_0_0_1_is_public(monkeypatch)
    port = site.base.rsplit(":", 1)[1]
    answers = iter([["127.0.0.1"], ["127.0.0.2"]])  # public at first, internal on the next lookup

    async def rebinding(host, _port):
        return next(answers)

    site.add("/a.html", ARTICLE, headers={"Connection": "close"})  # so the second fetch reconnects
    config = CrawlConfig(per_host_interval_seconds=0, respect_robots=False)

    async def twice():
        async with Fetcher(config, MB, MB, resolver=rebinding) as fetcher:
            first = await fetcher.fetch_page(f"http://rebind.test:{port}/a.html")
            with pytest.raises(FetchError, match="refused address: 127.0.0.2"):
                await fetcher.fetch_page(f"http://rebind.test:{port}/a.html")
            return first

    assert asyncio.run(twice()).status == 200
    assert len(site.requests("/a.html")) == 1


def test_an_unknown_host_fails_at_once_without_retries():
    started = time.monotonic()
    error = failure(CrawlConfig(), "http://no-such-host.invalid/a.html")
    assert error.reason.startswith("DNS: cannot resolve no-such-host.invalid")
    assert time.monotonic() - started < 2, "a name that does not resolve must not be retried"


def test_only_http_and_https_are_fetched(site):
    assert "file scheme is not fetched" in failure(LOCAL, "file:///etc/passwd").reason
    site.handle("/to-file", redirect_to("file:///etc/passwd"))
    error = failure(LOCAL, site.url("/to-file"))
    assert "file scheme is not fetched" in error.reason and "redirected" in error.reason


def test_page_urls_are_filtered_with_courlan():
    assert page_url_problem("https://en.wikipedia.org/wiki/Coffee_roasting", False) is None
    assert "not a web page" in page_url_problem("https://example.org/report.pdf", False)
    assert "not an article" in page_url_problem("https://example.org/tag/coffee", False)
    assert "scheme" in page_url_problem("ftp://example.org/a.html", False)
    assert "host name" in page_url_problem("http://intranet/a.html", False)
    assert page_url_problem("http://intranet/a.html", True) is None  # an intranet crawl


# -- robots.txt and politeness -----------------------------------------------------------------


def test_robots_txt_is_honoured_and_fetched_once_per_host(site):
    site.add("/private/x.html", ARTICLE)
    site.add("/a.html", ARTICLE)
    site.add("/b.html", ARTICLE)

    async def run():
        async with Fetcher(LOCAL, MB, MB) as fetcher:
            results = await asyncio.gather(
                *(fetcher.fetch_page(site.url(p)) for p in ("/a.html", "/b.html", "/private/x.html")),
                return_exceptions=True,
            )
        return results

    a, b, private = asyncio.run(run())
    assert a.status == b.status == 200
    assert isinstance(private, FetchError) and private.outcome == "skipped"
    assert private.reason == "robots.txt: disallowed for engine-crawler"
    assert len(site.requests("/robots.txt")) == 1
    assert site.requests("/private/x.html") == []
    assert all(r.headers["user-agent"] == LOCAL.user_agent for r in site.requests())


def test_robots_txt_missing_allows_and_broken_disallows(site):
    with LocalSite() as no_robots:
        url = no_robots.add("/a.html", ARTICLE)
        assert fetch(LOCAL, url).status == 200  # robots.txt 404: no rules
    with LocalSite() as broken:
        broken.add("/robots.txt", "oops", status=503, content_type="text/plain")
        url = broken.add("/a.html", ARTICLE)
        error = failure(LOCAL, url)
        assert error.outcome == "skipped"
        assert error.reason.startswith("robots.txt unavailable: HTTP 503")
        assert broken.requests("/a.html") == []


def test_crawl_delay_and_per_host_limits_space_requests(site):
    with LocalSite() as slow_host:
        slow_host.add("/robots.txt", "User-agent: *\nCrawl-delay: 0.4\n", content_type="text/plain")
        for n in range(3):
            slow_host.add(f"/{n}.html", ARTICLE, delay=0.1)

        async def run():
            async with Fetcher(CrawlConfig(**{**LOCAL.__dict__, "per_host_concurrency": 1}), MB, MB) as fetcher:
                await asyncio.gather(*(fetcher.fetch_page(slow_host.url(f"/{n}.html")) for n in range(3)))

        asyncio.run(run())
        pages = sorted((r for r in slow_host.requests() if r.path != "/robots.txt"), key=lambda r: r.started)
        assert len(pages) == 3
        gaps = [b.started - a.started for a, b in itertools.pairwise(pages)]
        assert all(gap >= 0.38 for gap in gaps), f"Crawl-delay 0.4 s not honoured: {gaps}"
        overlaps = [b.started < a.ended for a, b in itertools.pairwise(pages)]
        assert not any(overlaps), "per_host_concurrency = 1 but requests overlapped"


# -- retries -------------------------------------------------------------------------------------


def test_503_is_retried_and_then_succeeds(site):
    url = site.handle("/busy", fail_then(2, 503, Route(ARTICLE.encode()), retry_after="0"))
    result = fetch(LOCAL, url)
    assert result.status == 200
    assert [r.status for r in site.requests("/busy")] == [503, 503, 200]


def test_429_waits_as_long_as_retry_after_says(site):
    url = site.handle("/limited", fail_then(1, 429, Route(ARTICLE.encode()), retry_after="1"))
    started = time.monotonic()
    assert fetch(LOCAL, url).status == 200
    assert time.monotonic() - started >= 0.95
    assert [r.status for r in site.requests("/limited")] == [429, 200]


def test_persistent_500_gives_up_after_max_retries(site):
    url = site.add("/broken", "boom", status=500, content_type="text/plain")
    error = failure(LOCAL, url)
    assert error.reason == "HTTP 500: Internal Server Error (after 3 attempts)"
    assert error.status == 500 and error.outcome == "failed"
    assert len(site.requests("/broken")) == LOCAL.max_retries + 1


def test_a_retry_after_beyond_the_cap_gives_up_at_once(site):
    url = site.handle("/later", fail_then(5, 429, Route(ARTICLE.encode()), retry_after="3600"))
    started = time.monotonic()
    error = failure(LOCAL, url)
    assert time.monotonic() - started < 1
    assert "HTTP 429" in error.reason and "3600 s" in error.reason and "max_retry_after_seconds" in error.reason
    assert len(site.requests("/later")) == 1


@pytest.mark.parametrize(("status", "outcome"), [(404, "gone"), (410, "gone"), (403, "failed")])
def test_client_errors_are_not_retried(site, status, outcome):
    url = site.add("/x.html", "no", status=status, content_type="text/plain")
    error = failure(LOCAL, url)
    assert error.outcome == outcome and error.reason.startswith(f"HTTP {status}")
    assert len(site.requests("/x.html")) == 1


# -- conditional GET -------------------------------------------------------------------------------


def test_conditional_get_answers_not_modified(site):
    url = site.add("/a.html", ARTICLE)
    first = fetch(LOCAL, url)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    again = fetch(LOCAL, url, etag=etag, last_modified=modified)
    assert again.not_modified and again.content == b""
    sent = site.requests("/a.html")[-1].headers
    assert sent["if-none-match"] == etag and sent["if-modified-since"] == modified
    site.add("/a.html", ARTICLE.replace("Roasting", "Brewing"))
    changed = fetch(LOCAL, url, etag=etag, last_modified=modified)
    assert changed.status == 200 and b"Brewing" in changed.content


# -- limits, redirects, timeouts -----------------------------------------------------------------


def test_bodies_over_the_limit_are_refused(site):
    big = site.add("/big.html", "<html><body><p>" + "x" * (2 * MB) + "</p></body></html>")
    assert "2000" in failure(LOCAL, big).reason and "over the 1000000-byte page limit" in failure(LOCAL, big).reason
    started = time.monotonic()
    error = failure(LOCAL, site.handle("/endless", endless()))
    assert error.reason == "too large: page body over the 1000000-byte limit"
    assert time.monotonic() - started < 3


def test_a_gzip_bomb_is_stopped_at_the_limit(site):
    bomb = gzip_bomb(50 * MB)
    assert bomb.compressed_size < MB // 10  # small on the wire, 50 times the limit inflated
    error = failure(LOCAL, site.handle("/bomb", bomb))
    assert error.reason == "too large: page body over the 1000000-byte limit after decompression"


def test_gzip_pages_are_decompressed(site):
    url = site.add("/z.html", gzip.compress(ARTICLE.encode()), headers={"Content-Encoding": "gzip"})
    assert fetch(LOCAL, url).content == ARTICLE.encode()
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    url = site.add("/d.html", raw.compress(ARTICLE.encode()) + raw.flush(), headers={"Content-Encoding": "deflate"})
    assert fetch(LOCAL, url).content == ARTICLE.encode()
    url = site.add("/br.html", b"\x00\x01", headers={"Content-Encoding": "br"})
    assert failure(LOCAL, url).reason == "bad encoding: unsupported Content-Encoding 'br'"
    url = site.add("/bad.html", b"\x1f\x8bnot gzip at all", headers={"Content-Encoding": "gzip"})
    assert failure(LOCAL, url).reason.startswith("bad encoding: damaged gzip data")


def test_bounded_decoder_stops_one_byte_past_the_limit():
    data = zlib.compress(b"a" * 10_000)
    decoder = BoundedDecoder("deflate", 9_999)
    with pytest.raises(BodyTooLarge):
        decoder.feed(data)
    assert decoder.size == 10_000
    with pytest.raises(BadEncoding, match="unsupported"):
        BoundedDecoder("gzip, br", 100)


def test_redirects_are_followed_but_loops_and_long_chains_are_not(site):
    site.add("/final.html", ARTICLE)
    site.handle("/moved", redirect_to("/final.html", 301))
    result = fetch(LOCAL, site.url("/moved"))
    assert result.status == 200 and result.final_url == site.url("/final.html") and result.url == site.url("/moved")

    site.handle("/loop-a", redirect_to("/loop-b"))
    site.handle("/loop-b", redirect_to("/loop-a"))
    assert failure(LOCAL, site.url("/loop-a")).reason.startswith("redirect loop: ")
    for n in range(10):
        site.handle(f"/hop{n}", redirect_to(f"/hop{n + 1}"))
    error = failure(LOCAL, site.url("/hop0"))
    assert error.reason.startswith("too many redirects (over crawl.max_redirects = 5)")
    assert len([r for r in site.requests() if r.path.startswith("/hop")]) == 6


def test_slow_servers_time_out(site):
    quick = CrawlConfig(**{**LOCAL.__dict__, "fetch_deadline_seconds": 1.5, "read_timeout_seconds": 0.5})
    started = time.monotonic()
    error = failure(quick, site.handle("/drip", drip(0.1)))  # a byte every 0.1 s: never a read timeout
    assert error.reason == "timeout: the response took over crawl.fetch_deadline_seconds = 1.5 s"
    assert time.monotonic() - started < 2.5
    error = failure(quick, site.add("/silent.html", ARTICLE, delay=1.0))
    assert error.reason == "timeout: no data for 0.5 s"


# -- content types ---------------------------------------------------------------------------------


def test_wrong_content_types_are_refused_with_what_was_found(site):
    png = site.add("/a.html", (EXAMPLES / "space-shuttle-program_files" / "logo.png").read_bytes(), content_type="image/png")
    assert failure(LOCAL, png).reason == "not an HTML page: Content-Type image/png"
    pdf = site.add("/b.html", b"%PDF-1.4 not really", content_type="text/html")
    assert failure(LOCAL, pdf).reason == "wrong content type: declared text/html but the body is a PDF document"
    json_url = site.add("/c.html", b'{"a": 1}', content_type="application/json")
    assert failure(LOCAL, json_url).reason == "not an HTML page: Content-Type application/json"
    # A misconfigured server's HTML is still HTML.
    octets = site.add("/d.html", ARTICLE, content_type="application/octet-stream")
    assert fetch(LOCAL, octets).status == 200


def test_an_image_url_that_serves_html_is_refused(site):
    url = site.add("/photo.jpg", ARTICLE, content_type="image/jpeg")
    assert failure(LOCAL, url, "image").reason == "not an image: the URL serves HTML (Content-Type image/jpeg)"
    url = site.add("/real.jpg", JPEG, content_type="application/octet-stream")
    assert fetch(LOCAL, url, "image").content == JPEG  # the bytes say JPEG


def test_a_truncated_jpeg_is_fetched_and_then_refused_by_pillow(site):
    url = site.add("/cut.jpg", JPEG[: len(JPEG) // 2], content_type="image/jpeg")
    result = fetch(LOCAL, url, "image")
    with pytest.raises(InputError, match="damaged image: image file is truncated"):
        load_image(result.content, url, max_pixels=40_000_000, max_bytes=MB, min_side=32)
