"""The ledger as the customer-master and reconciliation commands open it: settings required,
and every engine a command opened disposed of when it ends, so no pooled connection outlives
the command (commands run in-process in tests and in the console)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec

_P = ParamSpec("_P")
_opened: list[Any] = []


def open_engine(config: Path | None) -> tuple[Any, Any]:
    """The settings (a configuration is required) and the ledger's engine."""
    from revbridge.config import load_settings
    from revbridge.services import open_ledger

    settings = load_settings(config, required=True)
    engine = open_ledger(settings).engine
    _opened.append(engine)
    return settings, engine


def disposing(command: Callable[_P, None]) -> Callable[_P, None]:
    """Dispose of the engines ``command`` opened (``open_engine``) when it ends."""

    @functools.wraps(command)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        finally:
            while _opened:
                _opened.pop().dispose()

    return run
