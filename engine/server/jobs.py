"""Index jobs: a FIFO queue run by one worker thread, so one job writes at a time."""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from engine.config import Config
from engine.errors import ConfigError, EngineError
from engine.results import Progress

log = logging.getLogger("engine.server")
ORIGINS = ("api", "ui", "watch", "upload")
FINISHED = ("succeeded", "failed", "cancelled")
KEEP_FINISHED = 200
# The encoders the reader has loaded: (TextEncoder, ClipEncoder | None), shared so models load once.
Encoders = Callable[[], tuple[Any, Any]]


@dataclass(frozen=True)
class JobSpec:
    """What a job indexes: a crawl of ``topics``, or ``paths``: files and folders, or URLs (strings)."""

    topics: tuple[str, ...]
    paths: tuple[Path | str, ...] = ()
    crawl: bool = False
    origin: str = "api"

    def __post_init__(self) -> None:
        if self.origin not in ORIGINS:
            raise ConfigError(f"origin must be one of {', '.join(ORIGINS)}, not {self.origin!r}")
        if self.crawl == bool(self.paths):
            raise ConfigError("a job either crawls its topics or indexes paths: give one of the two")
        if self.crawl and not self.topics:
            raise ConfigError("topics: a crawl needs at least one topic")

    def to_dict(self) -> dict:
        return {"topics": list(self.topics), "paths": [str(p) for p in self.paths], "crawl": self.crawl, "origin": self.origin}


@dataclass(frozen=True)
class Job:
    """A snapshot of one job; the queue replaces it whole on every change, so a copy never moves."""

    id: str
    spec: JobSpec
    created_at: float
    state: str = "queued"  # queued | running | succeeded | failed | cancelled
    progress: Progress = field(default_factory=lambda: Progress(0, 0, ""))
    report: dict | None = None  # IndexReport.to_dict(): counts, and failures with reasons
    error: str | None = None
    cancel_requested: bool = False
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "state": self.state,
            "spec": self.spec.to_dict(),
            "progress": dataclasses.asdict(self.progress),
            "report": self.report,
            "error": self.error,
            "cancel_requested": self.cancel_requested,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


class JobQueue:
    """Runs submitted jobs one at a time, oldest first, in its worker thread.

    Each job writes through its own KnowledgeBase (its own SQLite connection and write lock)
    with the encoders ``encoders()`` returns. Jobs change only under the queue's lock, and
    everything it hands out is an immutable snapshot.

    Args:
        config: the settings of the store the jobs write.
        encoders: called by the worker before each job; may block until the models are loaded.
        keep: finished jobs remembered (the oldest are forgotten first).
    """

    def __init__(self, config: Config, encoders: Encoders, keep: int = KEEP_FINISHED):
        self.config = config
        self._encoders = encoders
        self._keep = keep
        self._lock = threading.Condition()
        self._jobs: dict[str, Job] = {}  # in submission order
        self._queued: deque[str] = deque()
        self._stops: dict[str, threading.Event] = {}  # of the queued and running jobs
        self._closed = False
        # Held while this process probes or takes the store's write lock, so a probe never
        # makes our own worker's lock attempt fail (see other_writer).
        self._lock_probe = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="engine-jobs", daemon=True)
        self._worker.start()

    # -- the interface -----------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> Job:
        """Queue a job for ``spec``; it runs when those before it have ended."""
        with self._lock:
            if self._closed:
                raise EngineError("the server is shutting down; it takes no new jobs")
            job = Job(secrets.token_hex(6), spec, time.time())
            self._jobs[job.id] = job
            self._stops[job.id] = threading.Event()
            self._queued.append(job.id)
            self._forget_old()
            self._lock.notify_all()
            return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Every remembered job, newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job now, or ask a running one to stop after the batch being written.

        Raises:
            KeyError: no such job.
            ValueError: the job has already finished.
        """
        with self._lock:
            job = self._jobs[job_id]
            if job.finished:
                raise ValueError(f"job {job_id} has already {job.state}")
            self._stops[job_id].set()
            if job.state == "queued":
                self._queued.remove(job_id)
                del self._stops[job_id]
                return self._update(job_id, state="cancelled", cancel_requested=True, finished_at=time.time())
            return self._update(job_id, cancel_requested=True)

    def busy(self, origin: str) -> bool:
        """Whether a job of ``origin`` is queued or running."""
        with self._lock:
            return any(j.spec.origin == origin and not j.finished for j in self._jobs.values())

    def other_writer(self) -> str | None:
        """Why another process stops jobs from writing now (it holds the store's write lock), or None.

        Probes the lock with a shared flock and lets it go at once; our own worker's lock
        attempts wait for the probe (``_lock_probe``), and another process that starts writing
        in that instant is told the store is busy, as it would be by any writer.
        """
        lock_path = Path(self.config.store.path) / "write.lock"
        if not lock_path.exists():
            return None
        with self._lock_probe:
            fd = os.open(lock_path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return None
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip()
            finally:
                os.close(fd)
        if holder == str(os.getpid()):
            return None  # our own job: the new one queues behind it
        return f"the store {self.config.store.path} is being written by pid {holder or 'of another process'}; try again when it has finished"

    def close(self) -> None:
        """Cancel every queued job, stop the running one after its batch, and wait for it."""
        with self._lock:
            self._closed = True
            for job_id in list(self._queued):
                self.cancel(job_id)
            for stop in self._stops.values():
                stop.set()
            self._lock.notify_all()
        self._worker.join()

    # -- the worker ----------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._queued or self._closed)
                if not self._queued:
                    return
                job_id = self._queued.popleft()
                job = self._update(job_id, state="running", started_at=time.time())
                stop = self._stops[job_id]
            try:
                report = self._run(job, stop)
            except Exception as exc:  # noqa: BLE001 - a failed job is reported, and the next one runs
                if not isinstance(exc, EngineError):
                    log.exception("index job %s failed", job_id)
                outcome = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"}
            else:
                state = "cancelled" if report.interrupted else "succeeded"
                outcome = {"state": state, "report": report.to_dict()}
            with self._lock:
                del self._stops[job_id]
                self._update(job_id, finished_at=time.time(), **outcome)
                self._forget_old()

    def _run(self, job: Job, stop: threading.Event):  # noqa: ANN202 - indexer.pipeline.IndexReport
        from engine.kb import KnowledgeBase

        text, clip = self._encoders()
        spec = job.spec

        def on_progress(progress: Progress) -> None:
            with self._lock:
                self._update(job.id, progress=progress)

        with KnowledgeBase(self.config, text_encoder=text, clip_encoder=clip) as kb:
            with self._lock_probe:
                kb.store.acquire_write_lock()  # kb.index takes it again (a no-op) and lets it go
            return kb.index(list(spec.topics), list(spec.paths), on_progress, stop_requested=stop)

    def _update(self, job_id: str, **changes: Any) -> Job:
        job = self._jobs[job_id] = dataclasses.replace(self._jobs[job_id], **changes)
        return job

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.finished]
        for job_id in finished[: max(0, len(finished) - self._keep)]:
            del self._jobs[job_id]
