"""`engine index --from` with web addresses: page URLs, .txt URL lists, RSS/Atom feeds and sitemaps,
fetched from a real HTTP server on loopback by the crawler's guarded fetcher."""

from __future__ import annotations

import gzip
import json

import pytest
from conftest import store_counts
from sqlalchemy import select
from test_crawl import ARTICLES, TOPICS, crawl_kb, serve_articles
from typer.testing import CliRunner

from cli.app import app
from engine.store.schema import crawl_urls, sources
from indexer.fetch.sniff import listing_kind
from site_server import LocalSite


@pytest.fixture
def site():
    with LocalSite() as server:
        server.add("/robots.txt", "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
        yield server


def stored_paths(kb) -> set[str]:
    with kb.store.reading() as conn:
        return {"/" + url.split("/", 3)[3] for url in conn.execute(select(sources.c.url)).scalars()}


def rss(site: LocalSite, paths: list[str], thumbnail: str | None = None) -> str:
    items = "".join(
        f"<item><title>Entry {n}</title><link>{site.url(p)}</link><description>about {p}</description>"
        + (f'<media:thumbnail url="{site.url(thumbnail)}"/>' if thumbnail and n == 0 else "")
        + "</item>"
        for n, p in enumerate(paths)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">'
        f"<channel><title>A site</title><link>{site.base}</link>{items}</channel></rss>"
    )


def urlset(site: LocalSite, paths: list[str]) -> str:
    entries = "".join(f"<url><loc>{site.url(p)}</loc></url>" for p in paths)
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>'


def test_page_urls_are_indexed_with_their_images_and_fetched_conditionally_next_time(tmp_path, text_encoder, site):
    urls = serve_articles(site)
    with crawl_kb(tmp_path, text_encoder) as kb:
        report = kb.index(TOPICS, urls)
        assert report.pages == {"added": 4}, report.to_dict()
        assert report.images["added"] == 3 and report.failures == []
        assert stored_paths(kb) == set(ARTICLES)
        with kb.store.reading() as conn:
            assert conn.execute(select(crawl_urls.c.id)).first() is None  # no topic's crawl frontier grows
        answer = kb.ask("how hot is a coffee roasting drum")
        assert answer.sources[0].url.endswith("/coffee.html")

        site.clear_log()
        again = kb.index(TOPICS, urls)
        assert again.pages == {"not_modified": 4}, again.to_dict()
        assert all(r.headers.get("if-none-match") for p in ARTICLES for r in site.requests(p))


def test_a_url_list_file_names_pages_and_each_bad_line_is_its_own_failure(tmp_path, text_encoder, site):
    urls = serve_articles(site)
    listing = tmp_path / "reading.txt"
    listing.write_text("# weekly reading\n\n" + "\n".join(urls[:2]) + "\nftp://files.example.org/a.html\nnot a url\n  " + urls[2] + "  \n")
    with crawl_kb(tmp_path, text_encoder) as kb:
        report = kb.index(TOPICS, [listing, tmp_path / "missing.txt"])
        assert report.pages == {"added": 3, "failed": 3}, report.to_dict()
        reasons = {f.origin: f.reason for f in report.failures}
        assert reasons == {
            f"{listing}:5": "not an http(s) URL: 'ftp://files.example.org/a.html'",
            f"{listing}:6": "not an http(s) URL: 'not a url'",
            str(tmp_path / "missing.txt"): "no such URL list file",
        }


def test_a_feed_url_indexes_its_entries_and_their_thumbnails_not_the_feed(tmp_path, text_encoder, site):
    serve_articles(site)
    site.add("/feed.rss", rss(site, ["/coffee.html", "/espresso.html", "/cats.html"], thumbnail="/img/coins.jpg"),
             content_type="application/rss+xml")
    with crawl_kb(tmp_path, text_encoder) as kb:
        report = kb.index(TOPICS, [site.url("/feed.rss")])
        assert report.pages == {"added": 3}, report.to_dict()
        assert stored_paths(kb) == {"/coffee.html", "/espresso.html", "/cats.html"}
        # the page's own image, the entry's thumbnail as a candidate image of that page, the cat
        assert report.images["added"] == 3, report.to_dict()
    # A page given directly and listed in the feed too is fetched once.
    site.clear_log()
    with crawl_kb(tmp_path / "both", text_encoder) as kb:
        report = kb.index(TOPICS, [site.url("/cats.html"), site.url("/feed.rss")])
        assert report.pages == {"added": 3}, report.to_dict()
    assert len(site.requests("/cats.html")) == 1


def test_a_sitemap_index_is_followed_to_its_sitemaps_and_capped_per_listing(tmp_path, text_encoder, site):
    serve_articles(site)
    site.add("/a.xml", urlset(site, ["/coffee.html", "/espresso.html"]), content_type="application/xml")
    site.add("/b.xml", urlset(site, ["/cats.html", "/coins.html"]), content_type="text/xml")
    site.add("/sitemap.xml", '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             f"<sitemap><loc>{site.url('/a.xml')}</loc></sitemap><sitemap><loc>{site.url('/b.xml')}</loc></sitemap>"
             f"<sitemap><loc>{site.url('/gone.xml')}</loc></sitemap></sitemapindex>", content_type="application/xml")
    with crawl_kb(tmp_path, text_encoder) as kb:
        report = kb.index(TOPICS, [site.url("/sitemap.xml")])
        assert report.pages == {"added": 4}, report.to_dict()
        assert [(f.origin, f.reason) for f in report.failures] == [(site.url("/gone.xml"), "HTTP 404: Not Found")]
    with crawl_kb(tmp_path / "capped", text_encoder, crawl={"max_pages_per_listing": 3}) as kb:
        report = kb.index(TOPICS, [site.url("/sitemap.xml")])
        assert report.pages == {"added": 3}, report.to_dict()
    site.add("/pages.xml.gz", gzip.compress(urlset(site, ["/coins.html"]).encode()), content_type="application/gzip")
    with crawl_kb(tmp_path / "gzipped", text_encoder) as kb:
        report = kb.index(TOPICS, [site.url("/pages.xml.gz")])
        assert report.pages == {"added": 1} and stored_paths(kb) == {"/coins.html"}, report.to_dict()
    # An index's gzipped child sitemap is read too (courlan's file-type filter would refuse .gz).
    site.add("/index-gz.xml", '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             f"<sitemap><loc>{site.url('/pages.xml.gz')}</loc></sitemap></sitemapindex>", content_type="application/xml")
    with crawl_kb(tmp_path / "index-gz", text_encoder) as kb:
        report = kb.index(TOPICS, [site.url("/index-gz.xml")])
        assert report.pages == {"added": 1} and report.failures == [], report.to_dict()


def test_url_inputs_keep_the_crawlers_rules_and_each_refusal_names_the_url(tmp_path, text_encoder, site):
    urls = serve_articles(site)
    site.add("/private/secret.html", ARTICLES["/coffee.html"])
    site.add("/doc.pdf", b"%PDF-1.4 not a page", content_type="application/pdf")
    site.add("/nested.xml", rss(site, ["/feed.xml"]), content_type="application/rss+xml")
    site.add("/feed.xml", rss(site, ["/coffee.html"]), content_type="application/rss+xml")
    site.add("/empty.xml", '<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>',
             content_type="application/rss+xml")
    inputs = [site.url(p) for p in ("/private/secret.html", "/doc.pdf", "/missing.html", "/nested.xml", "/empty.xml")]
    with crawl_kb(tmp_path, text_encoder) as kb:
        before = store_counts(kb)
        report = kb.index(TOPICS, inputs)
        assert store_counts(kb) == before and report.pages.get("added", 0) == 0, report.to_dict()
        reasons = {f.origin: f.reason for f in report.failures}
        assert "robots.txt" in reasons[site.url("/private/secret.html")]
        assert reasons[site.url("/doc.pdf")].startswith("not an HTML page")
        assert reasons[site.url("/missing.html")] == "HTTP 404: Not Found"
        assert reasons[site.url("/feed.xml")].startswith("a feed listed in a feed or sitemap is not followed")
        assert "the feed has no entries" in reasons[site.url("/empty.xml")]
    # Loopback is refused unless allowed, though the user typed the URL: inputs also come from the server.
    with crawl_kb(tmp_path / "guarded", text_encoder, crawl={"allow_private_addresses": False}) as kb:
        report = kb.index(TOPICS, urls[:1])
        assert report.pages == {"failed": 1}, report.to_dict()
        [failure] = report.failures
        assert "127.0.0.1 is a loopback address" in failure.reason and "allow_private_addresses" in failure.reason


def test_saved_pages_and_urls_index_in_one_run(tmp_path, text_encoder, site, pages_copy):
    urls = serve_articles(site)
    with crawl_kb(tmp_path, text_encoder) as kb:
        report = kb.index(TOPICS, [pages_copy, urls[0]])
        assert report.pages["added"] == len(list(pages_copy.glob("*.html"))) + 1, report.to_dict()
        assert "/coffee.html" in stored_paths(kb)


def test_listing_kind_tells_feeds_and_sitemaps_from_pages():
    assert listing_kind(b'\xef\xbb\xbf<?xml version="1.0"?>\n<rss version="2.0"><channel><title>t</title>') == "feed"
    assert listing_kind(b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>') == "feed"
    assert listing_kind(b"<urlset xmlns='x'><url><loc>https://a.org/</loc></url></urlset>") == "sitemap"
    assert listing_kind(b"\x1f\x8b\x08\x00") == "sitemap"
    assert listing_kind(b"<!doctype html><html><head><title>a feed</title>") is None
    assert listing_kind(b"<html><body><p>see our <feed> and <rss> pages</p>") is None


@pytest.mark.slow
def test_the_cli_takes_urls_and_url_lists(tmp_path, site):
    urls = serve_articles(site)
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls[1:]) + "\n")
    env = {"ENGINE_CRAWL_ALLOW_PRIVATE_ADDRESSES": "true", "ENGINE_CRAWL_PER_HOST_INTERVAL_SECONDS": "0", "ENGINE_CLIP_ENABLED": "false"}
    store = str(tmp_path / "kb")
    result = CliRunner().invoke(app, ["--store", store, "index", "--from", urls[0], "--from", str(listing), "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pages"] == {"added": 4}
