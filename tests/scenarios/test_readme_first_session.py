"""The README's "A first session" works as written, line by line, on a fresh folder.

A newcomer copies these lines into a shell. Each one is run here as they would run it (bash,
the installed `revbridge` script), up to the first command that starts a server and does not
return. A line whose comment says "(exit 1)" must exit 1; every other line must exit 0. A
command that fails (a `quarantine show 1` with nothing in the quarantine) fails this test.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
LONG_RUNNING = ("sandbox", "erp tryton up", "serve")


def first_session_lines() -> list[str]:
    """The commands of the README's first-session block, up to the first long-running one."""
    text = README.read_text(encoding="utf-8")
    block = text.split("## A first session", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines: list[str] = []
    for line in block.strip().splitlines():
        command = line.split(" # ", 1)[0].strip()
        if any(f"revbridge {word}" in command for word in LONG_RUNNING):
            break
        lines.append(line)
    return lines


def test_the_first_session_lines_run_as_written(tmp_path: Path) -> None:
    lines = first_session_lines()
    assert len(lines) >= 15, lines  # the block was found and read to its batch and capture lines
    revbridge = Path(sys.executable).parent / "revbridge"
    assert revbridge.exists(), revbridge
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160"}
    env.pop("REVBRIDGE_CONFIG", None)
    env.pop("REVBRIDGE_DATABASE_URL", None)
    for line in lines:
        command = line.replace(".venv/bin/revbridge", shlex.quote(str(revbridge)))
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        expected = 1 if "(exit 1)" in line else 0
        assert done.returncode == expected, f"{line}\n{done.stdout}\n{done.stderr}"
