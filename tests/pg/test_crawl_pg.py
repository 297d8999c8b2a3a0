"""A crawl into a PostgreSQL store: the frontier (indexer/frontier.py) and the pages it settles come
out the same as on SQLite, through a first crawl, a re-crawl with conditional GETs, a changed page
and a gone one. The local site and the crawl helpers are tests/test_crawl.py's."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from conftest import make_config, store_counts
from sqlalchemy import select
from test_crawl import ARTICLES, LOCAL, TOPICS, discover_urls, frontier, serve_articles, site  # noqa: F401 - site: the fixture

from engine.config import CrawlConfig, StoreConfig
from engine.kb import KnowledgeBase
from engine.store.schema import crawl_topics, crawl_url_topics


def crawl_three_times(root, database_url: str, text_encoder, site) -> dict:  # noqa: F811 - the fixture's server
    """Crawl the articles, crawl again (nothing changed), change one and remove another, crawl again."""
    urls = serve_articles(site)  # the site as it was before any earlier call changed it
    discover = discover_urls(*urls)
    config = make_config(root)
    config = config.replace(
        store=StoreConfig(path=config.store.path, database_url=database_url), crawl=CrawlConfig(**LOCAL)
    )
    seen: dict = {}
    with KnowledgeBase(config, text_encoder=text_encoder) as kb:
        site.clear_log()
        seen["first"] = kb.index(TOPICS, discover=discover).to_dict()
        seen["first frontier"] = frontier(kb)
        seen["first counts"] = store_counts(kb)

        site.clear_log()
        seen["again"] = kb.index(TOPICS, discover=discover).to_dict()
        # Whether each article was asked for with the validators the frontier kept, and got a 304.
        seen["again requests"] = sorted(
            (r.path, r.status, "if-none-match" in r.headers) for r in site.requests() if r.path in ARTICLES
        )
        seen["again counts"] = store_counts(kb)

        site.add("/espresso.html", ARTICLES["/espresso.html"].replace("nine bars", "nine or ten bars"))
        site.add("/cats.html", "gone", status=410, content_type="text/plain")
        third = kb.index(TOPICS, discover=discover)
        seen["third"] = third.to_dict()
        seen["third failures"] = [(f.origin, f.reason) for f in third.failures]
        seen["third frontier"] = frontier(kb)
        seen["third counts"] = store_counts(kb)
        seen["topics"] = {t.name: (t.urls, t.errors, t.documents, t.last_crawl is not None) for t in kb.status().topics}
        with kb.store.reading() as conn:
            seen["rounds"] = sorted(
                (started is not None, last is not None and last >= started)
                for started, last in conn.execute(select(crawl_topics.c.round_started_at, crawl_topics.c.last_crawl_at))
            )
            seen["url topics"] = len(conn.execute(select(crawl_url_topics)).all())
    for report in ("first", "again", "third"):  # timings differ from run to run
        seen[report] = {k: v for k, v in seen[report].items() if k not in ("seconds", "timings", "started_at", "finished_at")}
    return seen


@pytest.mark.slow
def test_a_crawl_into_postgresql_records_the_same_pages_and_frontier_as_into_sqlite(
    tmp_path, postgres_database, text_encoder, site  # noqa: F811 - the fixture
):
    on_sqlite = crawl_three_times(tmp_path / "sqlite", "", text_encoder, site)
    on_postgres = crawl_three_times(tmp_path / "pg", postgres_database, text_encoder, site)

    # What the SQLite crawl gives (tests/test_crawl.py checks the same), so equal is also right.
    assert on_sqlite["first"]["pages"] == {"added": 4} and on_sqlite["first frontier"] == {p: ("fetched", 200, None) for p in ARTICLES}
    assert on_sqlite["again"]["pages"] == {"not_modified": 4}
    assert on_sqlite["again requests"] == sorted((p, 304, True) for p in ARTICLES)
    assert on_sqlite["third"]["pages"] == {"not_modified": 2, "updated": 1, "gone": 1}
    assert on_sqlite["third frontier"]["/cats.html"] == ("gone", 410, "HTTP 410: Gone")
    assert on_sqlite["topics"]["domestic cats"][:2] == ({"gone": 1, "not_modified": 2, "fetched": 1}, {"gone: HTTP 410": 1})
    assert on_sqlite["rounds"] == [(True, True)] * len(TOPICS)

    for key in on_sqlite:
        assert on_postgres[key] == on_sqlite[key], key
    # And the PostgreSQL crawl did write to the server, not to a SQLite file in its folder.
    assert not (tmp_path / "pg" / "store" / "engine.db").exists()
    server = sa.create_engine(postgres_database)
    with server.connect() as conn:
        frontier_rows = conn.execute(sa.text("SELECT status, count(*) FROM crawl_urls GROUP BY status ORDER BY status")).all()
    server.dispose()
    assert [tuple(r) for r in frontier_rows] == [("fetched", 1), ("gone", 1), ("not_modified", 2)]
