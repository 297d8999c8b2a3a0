"""The Ray executor: the run's items go through a Ray Data pipeline and come back in their order.

    driver queue → QueueSource → prepare (tasks) → embed (actor pool) → driver → the one writer

The driver's batches (what the producer had ready, up to index.docs_per_batch) travel whole and
come back numbered. Only what a stage needs travels: a page's commit hook (a crawl's frontier
update) and bookkeeping stay on the driver under the batch's number and rejoin the result there.
Stopping closes the pipeline; whatever was in flight was never committed, so the next run
does it again, as with the local executor.
"""

from __future__ import annotations

import heapq
import queue
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from engine.config import Config
from engine.errors import ConfigError
from indexer.distributed.cluster import Resources, cluster_resources
from indexer.distributed.queue_source import END, QueueSource
from indexer.distributed.stages import EmbedderSpec, EmbedRows, prepare_rows
from indexer.embed import BatchEmbedder
from indexer.prepare import PageToPrepare, PreparedPage
from indexer.write import EmbeddedPage

# CPU a preparing task reserves: trafilatura and Pillow, mostly short.
PREPARE_CPUS = 0.5
BATCHES_IN_FLIGHT = 8  # the driver's queue into the cluster; Ray Data bounds the stages after it
# Ray Data passes a streaming read task's block on only once the task yields the next one, so the
# last batch sent would wait for the next (a deadlock when the sender waits for it, a delay when a
# crawl pauses). While batches are out and nothing new goes, an empty marker row every PUSH_EVERY
# seconds pushes them through; every stage passes it and the driver drops it.
PUSH = -1
PUSH_EVERY = 0.5
_FINISHED = object()


class _Kept:
    """Stands in a row for an item that stays on the driver (bookkeeping, a failure)."""


def embed_actors(config: Config, resources: Resources) -> tuple[int, float, float]:
    """(actors, CPUs each, GPUs each) for the cluster; refuses a pool that leaves no CPU to prepare pages."""
    ray_config = config.ray
    gpus = int(resources.gpus)
    count = ray_config.embed_actors or (gpus if gpus else int((resources.cpus - PREPARE_CPUS) // ray_config.actor_cpus))
    count = max(1, count)
    gpu_each = 1.0 if gpus and count <= gpus else 0.0
    if count * ray_config.actor_cpus + PREPARE_CPUS > resources.cpus:
        raise ConfigError(
            f"ray.embed_actors = {count} × ray.actor_cpus = {ray_config.actor_cpus} leaves less than {PREPARE_CPUS} of the "
            f"cluster's {resources.cpus:g} CPUs to prepare pages; use fewer actors or fewer CPUs each"
        )
    return count, ray_config.actor_cpus, gpu_each


class RayExecutor:
    """Prepares and embeds on a connected Ray cluster (see indexer/distributed/cluster.py)."""

    prepares_pages = False

    def __init__(self, ray: Any, config: Config, stored_text_model: str | None):
        self.ray = ray
        self.config = config
        self.stored_text_model = stored_text_model
        self.actors, self.actor_cpus, self.actor_gpus = embed_actors(config, cluster_resources(ray))

    def embedded(self, batches: Iterator[list], embedder: BatchEmbedder) -> Iterator[list]:
        spec = EmbedderSpec(
            config=self.config,
            stored_text_model=self.stored_text_model,
            text_model=embedder.text.name,
            use_clip=embedder.clip is not None,
            topic_vectors=dict(zip(embedder.topic_ids, embedder.topic_matrix)) if embedder.topic_matrix is not None else {},
        )
        return _Pipeline(self, spec).run(batches)


class _Pipeline:
    """One run's pipeline: a sender thread feeds the cluster, a receiver thread drains it."""

    def __init__(self, executor: RayExecutor, spec: EmbedderSpec):
        from ray.util.queue import Queue

        self.executor = executor
        self.spec = spec
        self.into_cluster = Queue(maxsize=BATCHES_IN_FLIGHT)
        self.out_of_cluster: queue.Queue = queue.Queue(maxsize=BATCHES_IN_FLIGHT)
        self.kept: dict[int, list] = {}  # batch number -> the driver's items, until the batch returns
        self.sent = 0
        self.returned = 0
        # Batches in the cluster at once: enough to keep each actor busy with one queued behind
        # it. While that many are out, the sender lets the next batch grow (up to docs_per_batch)
        # instead of sending the producer's pages one by one.
        self.max_in_flight = 2 * executor.actors + 1
        self.batch_size = executor.config.index.docs_per_batch
        self.credit = threading.Condition()
        self.last_sent_at = 0.0
        self.closing = threading.Event()

    def run(self, batches: Iterator[list]) -> Iterator[list]:
        sender = threading.Thread(target=self._send, args=(batches,), name="engine-ray-send", daemon=True)
        receiver = threading.Thread(target=self._receive, name="engine-ray-receive", daemon=True)
        sender.start()
        receiver.start()
        waiting: list[tuple[int, bytes]] = []
        next_batch = 0
        try:
            while True:
                try:
                    got = self.out_of_cluster.get(timeout=0.25)
                except queue.Empty:
                    yield []  # lets the writer's loop see a stop request
                    continue
                if isinstance(got, BaseException):
                    raise got
                if got is _FINISHED:
                    break
                for row in got:
                    if row[0] != PUSH:
                        heapq.heappush(waiting, row)
                while waiting and waiting[0][0] == next_batch:
                    number, blob = heapq.heappop(waiting)
                    next_batch += 1
                    with self.credit:
                        self.returned = next_batch
                        self.credit.notify_all()
                    yield self._rejoin(number, blob)
            if waiting or next_batch != self.sent:
                raise RuntimeError(f"the Ray pipeline returned {next_batch} of {self.sent} batches")
        finally:
            self.closing.set()
            with self.credit:
                self.credit.notify_all()
            self._put_end()

    # -- driver → cluster ---------------------------------------------------------------------------

    def _send(self, batches: Iterator[list]) -> None:
        try:
            pending: list = []
            for batch in batches:  # [] now and then while the producer is idle: a chance to send
                pending.extend(batch)
                if not batch:
                    self._push()
                while pending and (len(pending) >= self.batch_size or self._in_flight() < self.max_in_flight):
                    batch, pending = pending[: self.batch_size], pending[self.batch_size :]
                    if not self._send_batch(batch):
                        return
            if pending:
                self._send_batch(pending)
        except BaseException as exc:  # noqa: BLE001 - the writer raises it
            self.out_of_cluster.put(exc)
        finally:
            self._put_end()

    def _in_flight(self) -> int:
        with self.credit:
            return self.sent - self.returned

    def _send_batch(self, batch: list) -> bool:
        """Send ``batch`` once fewer than max_in_flight are out; False when the run is closing."""
        import ray.cloudpickle as pickle

        while self._in_flight() >= self.max_in_flight and not self.closing.is_set():
            with self.credit:
                self.credit.wait(0.25)
            self._push()
        if self.closing.is_set():
            return False
        number = self.sent
        self.kept[number] = batch
        row = (number, pickle.dumps([_travelling(item) for item in batch]))
        for item in batch:
            if isinstance(item, PageToPrepare):
                item.page.html = b""  # on its way; the driver keeps only the page's metadata
        with self.credit:
            self.sent += 1
        self.last_sent_at = time.monotonic()
        return self._put(row)

    def _push(self) -> None:
        """Send a marker row if batches are out and nothing was sent for PUSH_EVERY seconds."""
        import ray.cloudpickle as pickle
        from ray.util.queue import Full

        if self._in_flight() == 0 or time.monotonic() - self.last_sent_at < PUSH_EVERY:
            return
        try:
            self.into_cluster.put((PUSH, pickle.dumps([])), timeout=0.25)
        except Full:
            return  # the queue is full: batches are moving anyway
        self.last_sent_at = time.monotonic()

    def _put(self, row: Any) -> bool:
        from ray.util.queue import Full

        while not self.closing.is_set():
            try:
                self.into_cluster.put(row, timeout=0.25)
                return True
            except Full:
                continue
        return False

    def _put_end(self) -> None:
        from ray.util.queue import Full

        try:
            self.into_cluster.put(END, timeout=5)
        except (Full, Exception):  # noqa: BLE001 - the cluster is going away: nothing left to tell
            pass

    # -- cluster → driver ---------------------------------------------------------------------------

    def _dataset(self) -> Any:
        from ray.data import ActorPoolStrategy, DataContext

        # Ray Data counts the queue source's one input block and warns that 2+ actors cannot all be
        # used; the block is a stream of rows, and every actor is used, so the warning misleads users.
        warnings.filterwarnings("ignore", message="The minimum number of concurrent actors", category=UserWarning)
        ray = self.executor.ray
        # One block per row (a driver batch): no merging of small blocks up to a size target.
        DataContext.get_current().target_max_block_size = 1
        source = ray.data.read_datasource(QueueSource(self.into_cluster), num_cpus=0, override_num_blocks=1)
        prepared = source.map_batches(prepare_rows, fn_kwargs={"config": self.spec.config}, batch_size=None, num_cpus=PREPARE_CPUS)
        return prepared.map_batches(
            EmbedRows,
            fn_constructor_args=(self.spec,),
            batch_size=None,
            compute=ActorPoolStrategy(size=self.executor.actors),
            num_cpus=self.executor.actor_cpus,
            num_gpus=self.executor.actor_gpus,
        )

    def _receive(self) -> None:
        try:
            for rows in self._dataset().iter_batches(batch_size=None, batch_format="numpy"):
                self._hand_over(list(zip((int(n) for n in rows["batch"]), rows["items"])))
                if self.closing.is_set():
                    return
            self._hand_over(_FINISHED)
        except BaseException as exc:  # noqa: BLE001 - the writer raises it
            self._hand_over(exc)

    def _hand_over(self, got: Any) -> None:
        while not self.closing.is_set():
            try:
                self.out_of_cluster.put(got, timeout=0.25)
                return
            except queue.Full:
                continue

    def _rejoin(self, number: int, blob: bytes) -> list:
        """The batch's results, each page with the driver's own page (its commit hook runs here)."""
        import ray.cloudpickle as pickle

        kept = self.kept.pop(number)
        out = []
        for mine, result in zip(kept, pickle.loads(blob), strict=True):
            if isinstance(result, _Kept):
                out.append(mine)
            elif isinstance(result, EmbeddedPage):
                out.append(replace(result, page=mine.page))
            else:
                out.append(result)
        return out


def _travelling(item: Any) -> Any:
    """What of ``item`` goes to the cluster: pages without their commit hook; markers for the rest."""
    if isinstance(item, PageToPrepare):
        return replace(item, page=replace(item.page, on_commit=None))
    if isinstance(item, PreparedPage):
        return replace(item, page=replace(item.page, resolve=None, on_commit=None))
    return _Kept()
