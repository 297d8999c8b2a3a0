"""``engine serve --watch``: each stored topic crawled again when its round is due, as a queued job."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Connection, select

from engine.errors import EngineError
from engine.server.jobs import Job, JobQueue, JobSpec
from engine.store.schema import topics
from engine.store.store import Store
from indexer.frontier import TopicRound, next_round_at, topic_rounds

log = logging.getLogger("engine.server")
MAX_POLL_SECONDS = 10.0


def due_topics(conn: Connection, every: float, now: float) -> list[str]:
    """The stored topics whose crawl is due at ``now``, by the rule ``engine index --watch`` keeps."""
    names = dict(conn.execute(select(topics.c.id, topics.c.name).order_by(topics.c.id)).all())
    rounds = topic_rounds(conn, list(names))
    return [name for topic_id, name in names.items() if _due(rounds.get(topic_id), every, now)]


def _due(state: TopicRound | None, every: float, now: float) -> bool:
    # As indexer.crawl does: an unfinished round is resumed at once.
    return (state is not None and state.unfinished) or next_round_at(state, every) <= now


class WatchScheduler:
    """A thread that submits one crawl job (origin "watch") for the due topics, never a second
    while one is queued or running; after a watch job that failed or was cancelled it waits
    ``every`` before trying again, so a broken crawl does not fill the queue.

    Args:
        jobs: the queue the crawl jobs go to (its config names the store).
        every: seconds between two rounds of a topic.
    """

    def __init__(self, jobs: JobQueue, every: float):
        self.jobs = jobs
        self.every = every
        self._poll = min(every, MAX_POLL_SECONDS)
        self._closed = threading.Event()
        self._last: Job | None = None
        self._thread = threading.Thread(target=self._run, name="engine-watch", daemon=True)

    def start(self) -> "WatchScheduler":
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        self._thread.join()

    def _run(self) -> None:
        with Store(self.jobs.config.store.path, self.jobs.config.index) as store:
            while not self._closed.is_set():
                try:
                    self.tick(store, time.time())
                except EngineError as exc:
                    log.warning("watch: %s", exc)
                except Exception:  # noqa: BLE001 - the schedule must outlive one bad tick
                    log.exception("watch: scheduling failed")
                self._closed.wait(self._poll)

    def tick(self, store: Store, now: float) -> Job | None:
        """Submit a crawl of the topics due at ``now`` if nothing stops it; return that job."""
        last = self.jobs.get(self._last.id) if self._last else None
        if self.jobs.busy("watch"):
            return None
        if last is not None and last.state != "succeeded" and now < (last.finished_at or now) + self.every:
            return None
        holder = self.jobs.other_writer()
        if holder is not None:
            log.info("watch: not crawling now: %s", holder)
            return None
        with store.reading() as conn:
            due = due_topics(conn, self.every, now)
        if not due:
            return None
        self._last = self.jobs.submit(JobSpec(tuple(due), crawl=True, origin="watch"))
        return self._last
