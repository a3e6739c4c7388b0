"""What every command prints the same way: JSON (``--json``, ``dlq show``), its timestamps
as the API writes them (``revbridge.core.timestamps``), and lists for people that read at 80
columns (``entry_lines``)."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from revbridge.core.timestamps import json_default

if TYPE_CHECKING:
    from revbridge.config import Settings

# A list's long text (an error, a reason) sits under its entry, this far in.
DETAIL_INDENT = "    "


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=json_default) + "\n")


def entry_lines(
    header: Sequence[str], entries: Sequence[tuple[Sequence[str], str]], *, width: int
) -> list[str]:
    """A list for people: per entry, one line of short fields (ids, times, names) aligned
    under ``header``, never cut or folded, then its long text wrapped beneath, indented, to
    ``width``. A table gives every column a share of 80 columns and folds an id or a time
    into pieces; here the short fields keep their line and the long text has the width."""
    fields = [list(header), *(list(f) for f, _ in entries)]
    widths = [max(len(row[i]) for row in fields) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()

    lines = [line(header)]
    for row, detail in entries:
        lines.append(line(row))
        if detail:
            lines += textwrap.wrap(
                detail,
                width=max(width, 40),
                initial_indent=DETAIL_INDENT,
                subsequent_indent=DETAIL_INDENT,
                break_long_words=False,
                break_on_hyphens=False,
            )
    return lines


def print_entries(
    console: Console,
    title: str,
    header: Sequence[str],
    entries: Sequence[tuple[Sequence[str], str]],
) -> None:
    """``entry_lines`` on ``console``, under ``title``, at the console's width."""
    console.print(title, markup=False, highlight=False)
    lines = entry_lines(header, entries, width=console.width)
    console.print(lines[0], style="bold", markup=False, highlight=False, soft_wrap=True)
    for text in lines[1:]:
        console.print(text, markup=False, highlight=False, soft_wrap=True)


def print_totals(console: Console, counts: dict[str, Any]) -> None:
    """``delivered=3 retried=0 ...`` on one line whatever the width: a script reads it as
    one line, and piped (not a terminal) Rich would fold it at 80 columns."""
    line = " ".join(f"{k}={v}" for k, v in counts.items())
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def check_erp_before_work(
    settings: Settings, err: Console, *, refused_is_warning: bool = False
) -> None:
    """Before a worker starts (``worker``, ``serve``, ``capture erp``): a wrong ERP setting
    stops the command (``ConfigError``, exit 2, the setting named); a server that does not
    answer is printed as a warning (``targets.check_erp_before_work``), and so is a refused
    login with ``refused_is_warning`` (``serve``, whose webhooks must go on accepting)."""
    from revbridge.services.targets import check_erp_before_work as check

    warning = check(settings, refused_is_warning=refused_is_warning)
    if warning is not None:
        err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)


def check_erp_before_reading(settings: Settings) -> None:
    """Before a command that reads from the ERP once (``recon run``, ``mdm match``): a wrong
    ERP setting stops it (``ConfigError``, exit 2, the setting named), and so does a server
    that does not answer: unlike a worker, a reading has no backlog to wait an outage out
    with, and would otherwise fail deep inside with the adapter's error."""
    import asyncio

    from revbridge.services.targets import check_erp

    asyncio.run(check_erp(settings))
