"""A real headless Chromium (Debian's package) driven by Playwright; no browser download.

The tests skip only when Chromium cannot be installed here; under CI=true a missing
Chromium fails the run (the Makefile's test target installs it first).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _ensure_chromium() -> str | None:
    """None when Chromium is there (installed now if we can), else why it is not."""
    if CHROMIUM.exists():
        return None
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium"],
            check=False,
            capture_output=True,
            timeout=600,
        )
        if CHROMIUM.exists():
            return None
        return "apt-get install chromium failed"
    return "no /usr/bin/chromium and not root to install it"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in this
    # thread while it is open, and every later test that calls asyncio.run() would fail.
    why = _ensure_chromium()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium is required under CI=true: {why}")
        pytest.skip(f"Chromium cannot be installed here: {why}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()
