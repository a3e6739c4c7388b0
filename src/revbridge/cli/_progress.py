"""How far a ``revbridge dr drain`` is, while it runs: a Rich progress bar on a terminal, a
plain line every so often when stderr is a file or a pipe (a cron job's log, ``| tee``).
The final summary stays on stdout; this goes to stderr."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from revbridge.core.durations import human_duration

if TYPE_CHECKING:
    from revbridge.services.drain import DrainProgress, OnProgress

# A plain line at most this often (seconds): a short drain prints none.
PLAIN_EVERY = 10.0


def _eta(p: DrainProgress) -> str:
    if p.eta_s is None:
        return "ETA unknown"
    return f"ETA {human_duration(p.eta_s)}"


def line(p: DrainProgress) -> str:
    """One plain line: ``erp: delivered 120, left 9880 of 10000, 5.0/s, ETA 33 min``."""
    return (
        f"{p.target}: delivered {p.delivered}, left {p.left} of {p.total}, "
        f"{p.rate:.1f}/s, {_eta(p)}"
    )


@contextmanager
def drain_progress(err: Console) -> Iterator[OnProgress]:
    """A progress callback for the drain service, rendered on ``err``."""
    if err.is_terminal:
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            console=err,
            transient=False,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def on_bar(p: DrainProgress) -> None:
                if p.target not in tasks:
                    tasks[p.target] = bar.add_task(p.target, total=p.total, counts="")
                counts = f"delivered {p.delivered}, left {p.left}, {p.rate:.1f}/s, {_eta(p)}"
                bar.update(
                    tasks[p.target],
                    total=p.total,
                    completed=p.handled,
                    counts=counts,
                )

            yield on_bar
        return
    printed: dict[str, float] = {}

    def on_line(p: DrainProgress) -> None:
        now = time.monotonic()
        last = printed.setdefault(p.target, now)
        if p.done or now - last < PLAIN_EVERY:
            return
        printed[p.target] = now
        err.print(line(p), markup=False, highlight=False, soft_wrap=True)

    yield on_line
