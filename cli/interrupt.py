"""Ctrl-C during a long run: the first press asks it to stop after the current batch, a second stops now."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console


@contextmanager
def stop_after_batch_on_ctrl_c(console: Console) -> Iterator[threading.Event]:
    """Yield an event that the first Ctrl-C sets; the second raises KeyboardInterrupt as usual."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested  # signals reach only the main thread; Ctrl-C keeps its default there
        return

    def on_sigint(signum, frame) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        console.print("stopping after the current batch (Ctrl-C again to stop now)")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)
