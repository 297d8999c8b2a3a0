"""A Ray Data source fed while the pipeline runs: rows come from a Ray queue that the driver fills.

Ray Data reads datasets whose size is known when they start; a crawl finds its pages as it
goes. One read task (no CPU reserved) pulls from a :class:`ray.util.queue.Queue` and yields a
one-row block per batch the driver put, so pages stream into the stages as they are produced.
(The caller keeps Ray Data from splitting the task's output into many blocks, and from merging
its blocks until they reach a size: either would hold pages back or break batches apart.)
"""

from __future__ import annotations

from typing import Any

from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

END = "end"  # what the driver puts after the last batch


class QueueSource(Datasource):
    """Rows ``{"batch": int, "items": bytes}``; each ``queue.get()`` is one such pair, or END."""

    def __init__(self, queue: Any):
        self.queue = queue

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None) -> list[ReadTask]:
        queue = self.queue

        def read() -> Any:
            import pyarrow as pa

            while True:
                row = queue.get()
                if row == END:
                    return
                number, items = row
                yield pa.table({"batch": [number], "items": [items]})

        metadata = BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None)
        return [ReadTask(read, metadata)]
