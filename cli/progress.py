"""A rich progress bar for long operations, fed by the library's Progress callbacks."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from engine.results import Progress as Step


@contextmanager
def progress_bar(console: Console, label: str) -> Iterator[Callable[[Step], None]]:
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}", style="dim"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"{label} (loading models)", total=None, current="")

        def update(step: Step) -> None:
            current = step.current if len(step.current) <= 60 else "…" + step.current[-59:]
            bar.update(task, description=label, completed=step.done, total=step.total, current=current)

        yield update
