"""The crawl frontier in the store: which URLs each topic has, and how their last fetch went.

A topic is crawled in rounds: discovery, then every URL of the topic fetched once (known
ones with a conditional GET). A round is recorded when it starts (with what discovery found)
and when it ends; one that started and never ended was interrupted, and the next run
resumes it, skipping the URLs it already settled. Every function here runs inside the
writer's transaction (the pipeline's one writer), never in the crawl's own thread.

URL status after its last visit:

    queued        discovered, never fetched
    fetched       a body came back and was indexed (or was identical to what is stored)
    not_modified  the server answered 304 to a conditional GET
    failed        a network, HTTP or content problem (last_error says which)
    gone          404 or 410: the page was removed; what was stored from it is kept
    skipped       not fetched on purpose (robots.txt, a URL that is not a page)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import Connection, select, update
from engine.store.dialect import insert

from engine.store.schema import crawl_topics, crawl_url_topics, crawl_urls

SETTLED = ("fetched", "not_modified", "failed", "gone", "skipped")


@dataclass(frozen=True)
class TopicRound:
    topic_id: int
    round_started_at: float | None
    last_crawl_at: float | None
    next_crawl_at: float | None

    @property
    def unfinished(self) -> bool:
        return self.round_started_at is not None and (
            self.last_crawl_at is None or self.last_crawl_at < self.round_started_at
        )


def next_round_at(state: TopicRound | None, every: float) -> float:
    """When a topic's next round is due: at once if it never had one, else the time the last
    round stored (``engine index --watch`` sets it), else ``every`` seconds after it ended."""
    if state is None or state.last_crawl_at is None:
        return 0.0
    if state.next_crawl_at is not None:
        return state.next_crawl_at
    return state.last_crawl_at + every


@dataclass(frozen=True)
class NewUrl:
    """A URL discovery proposed for a topic."""

    canonical_url: str
    url: str
    kind: str  # page | image
    provider: str | None = None
    rank: int | None = None
    page_url: str | None = None  # for an image: the page it belongs to
    title: str | None = None
    snippet: str | None = None


@dataclass
class FrontierUrl:
    """A URL as the store knows it, with the topics that proposed it."""

    canonical_url: str
    url: str
    kind: str
    page_url: str | None
    status: str
    etag: str | None
    last_modified: str | None
    checked_at: float | None
    topic_ids: set[int] = field(default_factory=set)


def topic_rounds(conn: Connection, topic_ids: list[int]) -> dict[int, TopicRound]:
    rows = conn.execute(select(crawl_topics).where(crawl_topics.c.topic_id.in_(topic_ids))).mappings()
    return {
        r["topic_id"]: TopicRound(r["topic_id"], r["round_started_at"], r["last_crawl_at"], r["next_crawl_at"])
        for r in rows
    }


def urls_of_topics(conn: Connection, topic_ids: list[int]) -> dict[str, FrontierUrl]:
    """Every URL any of ``topic_ids`` proposed, by canonical URL."""
    query = (
        select(crawl_urls, crawl_url_topics.c.topic_id)
        .join(crawl_url_topics, crawl_url_topics.c.url_id == crawl_urls.c.id)
        .where(crawl_url_topics.c.topic_id.in_(topic_ids))
        .order_by(crawl_urls.c.id)
    )
    found: dict[str, FrontierUrl] = {}
    for r in conn.execute(query).mappings():
        url = found.get(r["canonical_url"])
        if url is None:
            url = found[r["canonical_url"]] = FrontierUrl(
                r["canonical_url"], r["url"], r["kind"], r["page_url"], r["status"],
                r["etag"], r["last_modified"], r["checked_at"],
            )
        url.topic_ids.add(r["topic_id"])
    return found


def start_round(conn: Connection, topic_id: int, started_at: float, found: list[NewUrl], discovery_errors: dict[str, str]) -> None:
    """Record that ``topic_id``'s round began at ``started_at`` with these discoveries."""
    for new in found:
        conn.execute(
            insert(conn, crawl_urls)
            .values(
                canonical_url=new.canonical_url, url=new.url, kind=new.kind, page_url=new.page_url,
                status="queued", attempts=0, discovered_at=started_at,
            )
            .on_conflict_do_nothing()
        )
        url_id = conn.execute(select(crawl_urls.c.id).where(crawl_urls.c.canonical_url == new.canonical_url)).scalar_one()
        conn.execute(
            insert(conn, crawl_url_topics)
            .values(url_id=url_id, topic_id=topic_id, provider=new.provider, rank=new.rank, discovered_at=started_at)
            .on_conflict_do_nothing()
        )
    values = {"round_started_at": started_at, "discovery_errors": json.dumps(discovery_errors) if discovery_errors else None}
    conn.execute(
        insert(conn, crawl_topics)
        .values(topic_id=topic_id, **values)
        .on_conflict_do_update(index_elements=[crawl_topics.c.topic_id], set_=values)
    )


def finish_round(conn: Connection, topic_ids: list[int], finished_at: float, next_at: float | None) -> None:
    conn.execute(
        update(crawl_topics)
        .where(crawl_topics.c.topic_id.in_(topic_ids))
        .values(last_crawl_at=finished_at, next_crawl_at=next_at)
    )


def settle(
    conn: Connection,
    canonical_url: str,
    outcome: str,
    at: float,
    http_status: int | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    error: str | None = None,
) -> None:
    """Record how fetching ``canonical_url`` went (``outcome`` is one of :data:`SETTLED`)."""
    if outcome not in SETTLED:
        raise ValueError(f"unknown crawl outcome {outcome!r}")
    values: dict = {"status": outcome, "checked_at": at, "http_status": http_status}
    if outcome == "fetched":
        values.update(etag=etag, last_modified=last_modified, fetched_at=at, attempts=0, last_error=None)
    elif outcome == "not_modified":
        values.update(attempts=0, last_error=None)
        if etag:
            values["etag"] = etag
        if last_modified:
            values["last_modified"] = last_modified
    else:
        # No validators after a failure: the next visit fetches the page whole and tries again.
        values.update(last_error=error, etag=None, last_modified=None)
        if outcome == "failed":
            values["attempts"] = crawl_urls.c.attempts + 1
    conn.execute(update(crawl_urls).where(crawl_urls.c.canonical_url == canonical_url).values(**values))
