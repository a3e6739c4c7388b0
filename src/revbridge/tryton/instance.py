"""A managed local Tryton server: one home folder, one SQLite database, one trytond process.

Layout of the home folder::

    home/
      trytond.conf      generated; [web] listen = 127.0.0.1:<free port>
      db/<name>.sqlite  the database, a copy of the cached template
      database.json     credentials and template key of the database in db/ (mode 0600)
      trytond.pid       pid and port of the running server, so another process can stop it
      trytond.log       the server's stdout and stderr

The server is started detached (its own session), so ``up`` from a CLI returns while the
server keeps running, and ``down`` works from any process that knows the home folder.
Nothing here imports trytond: the template is built in subprocesses, and the server is one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from revbridge.tryton.template import (
    Template,
    TrytonSetupError,
    copy_template,
    default_cache_dir,
    ensure_template,
    write_config,
)

__all__ = ["InstanceInfo", "InstanceStatus", "TrytonInstance", "TrytonSetupError"]

DEFAULT_DATABASE = "revbridge"
HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceInfo:
    """How to reach a running instance. ``user``/``password`` are the admin's."""

    url: str
    database: str
    user: str
    password: str
    api_user: str
    api_password: str
    port: int
    pid: int
    home: Path
    company_id: int
    template_key: str

    @property
    def rpc_url(self) -> str:
        """The JSON-RPC endpoint: ``POST /<database>/rpc/`` in trytond 8.x."""
        return f"{self.url}{self.database}/rpc/"

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "rpc_url": self.rpc_url,
            "database": self.database,
            "user": self.user,
            "password": self.password,
            "api_user": self.api_user,
            "api_password": self.api_password,
            "port": self.port,
            "pid": self.pid,
            "home": str(self.home),
            "company_id": self.company_id,
            "template_key": self.template_key,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceStatus:
    """What ``status`` found: a server may be running without answering yet, or vice versa."""

    home: Path
    database: str
    initialized: bool
    running: bool
    answering: bool
    pid: int | None
    port: int | None
    url: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "home": str(self.home),
            "database": self.database,
            "initialized": self.initialized,
            "running": self.running,
            "answering": self.answering,
            "pid": self.pid,
            "port": self.port,
            "url": self.url,
        }


class TrytonInstance:
    """Start, stop and reset a local trytond server whose state lives in ``home``."""

    def __init__(
        self,
        home: Path,
        *,
        database: str = DEFAULT_DATABASE,
        cache_dir: Path | None = None,
        start_timeout: dt.timedelta = dt.timedelta(seconds=60),
        stop_timeout: dt.timedelta = dt.timedelta(seconds=10),
    ) -> None:
        self.home = home.expanduser().resolve()
        self.database = database
        self.cache_dir = cache_dir or default_cache_dir()
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout

    # Paths -------------------------------------------------------------------------------

    @property
    def db_path(self) -> Path:
        return self.home / "db" / f"{self.database}.sqlite"

    @property
    def config_path(self) -> Path:
        return self.home / "trytond.conf"

    @property
    def pid_path(self) -> Path:
        return self.home / "trytond.pid"

    @property
    def log_path(self) -> Path:
        return self.home / "trytond.log"

    @property
    def state_path(self) -> Path:
        return self.home / "database.json"

    # Public API --------------------------------------------------------------------------

    def up(self) -> InstanceInfo:
        """Create the database from the template if needed, start the server, wait for it.

        Idempotent: when the server is already running and answering, returns its details.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.db_path.exists():
            self._install(ensure_template(self.cache_dir))
        state = self._read_state()
        running = self._running_server()
        if running is not None:
            pid, port = running
            if self._answers(port):
                return self._info(state, pid, port)
            self._stop(pid)
        pid, port = self._start()
        return self._info(state, pid, port)

    def down(self) -> bool:
        """Stop the server (SIGTERM, then SIGKILL after ``stop_timeout``). False if none ran."""
        running = self._running_server()
        if running is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        self._stop(running[0])
        return True

    def reset(self) -> None:
        """Put the database back to the template's content; the server, if up, stays up.

        Sessions live in the database, so clients logged in before a reset must log in again
        (``TrytonClient`` does so on its own when it gets a 401).
        """
        self.home.mkdir(parents=True, exist_ok=True)
        self._install(ensure_template(self.cache_dir))

    def status(self) -> InstanceStatus:
        running = self._running_server()
        pid, port = running if running is not None else (None, None)
        return InstanceStatus(
            home=self.home,
            database=self.database,
            initialized=self.db_path.exists(),
            running=running is not None,
            answering=port is not None and self._answers(port),
            pid=pid,
            port=port,
            url=f"http://{HOST}:{port}/" if port is not None else None,
        )

    def info(self) -> InstanceInfo:
        """Details of the running server; raises ``TrytonSetupError`` when it is not running."""
        running = self._running_server()
        if running is None:
            raise TrytonSetupError(f"no Tryton server is running for {self.home}")
        return self._info(self._read_state(), *running)

    # Database ----------------------------------------------------------------------------

    def _install(self, template: Template) -> None:
        copy_template(template, self.db_path)
        state = {
            "template_key": template.key,
            "admin_login": template.admin_login,
            "admin_password": template.admin_password,
            "api_login": template.api_login,
            "api_password": template.api_password,
            "company_id": template.company_id,
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
        tmp.chmod(0o600)
        os.replace(tmp, self.state_path)

    def _read_state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise TrytonSetupError(
                f"{self.state_path} is missing: run reset() to rebuild the database"
            ) from exc
        return data

    def _info(self, state: dict[str, Any], pid: int, port: int) -> InstanceInfo:
        return InstanceInfo(
            url=f"http://{HOST}:{port}/",
            database=self.database,
            user=state["admin_login"],
            password=state["admin_password"],
            api_user=state["api_login"],
            api_password=state["api_password"],
            port=port,
            pid=pid,
            home=self.home,
            company_id=int(state["company_id"]),
            template_key=state["template_key"],
        )

    # Process -----------------------------------------------------------------------------

    def _start(self) -> tuple[int, int]:
        # A restarted server keeps its previous port when it is still free, so clients that
        # knew the address reconnect on their own. A free port can be taken between our probe
        # and the server's bind; try a few.
        last_error: TrytonSetupError | None = None
        previous = self._previous_port()
        for attempt in range(3):
            port = previous if attempt == 0 and previous is not None else _free_port()
            write_config(self.config_path, db_dir=self.db_path.parent, listen=f"{HOST}:{port}")
            pid = self._spawn()
            self.pid_path.write_text(f"{pid} {port}\n", encoding="utf-8")
            try:
                self._wait_until_answering(pid, port)
            except TrytonSetupError as exc:
                self._stop(pid)
                last_error = exc
                if "Address already in use" not in str(exc):
                    raise
                continue
            return pid, port
        assert last_error is not None
        raise last_error

    def _previous_port(self) -> int | None:
        """The port of the last configuration written here, if nothing listens on it now."""
        try:
            text = self.config_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        for line in text.splitlines():
            if line.startswith("listen = "):
                port = int(line.rsplit(":", 1)[1])
                return port if _port_is_free(port) else None
        return None

    def _spawn(self) -> int:
        argv = [
            sys.executable,
            "-m",
            "trytond.cli",
            "-c",
            str(self.config_path),
            "-d",
            self.database,
        ]
        log_flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        # posix_spawn rather than subprocess.Popen: the server outlives this object (and the
        # CLI process), and a Popen left running warns when it is garbage-collected.
        return os.posix_spawn(
            sys.executable,
            argv,
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(self.log_path), log_flags, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )

    def _wait_until_answering(self, pid: int, port: int) -> None:
        deadline = time.monotonic() + self.start_timeout.total_seconds()
        while time.monotonic() < deadline:
            if not _alive(pid):
                raise TrytonSetupError(
                    f"trytond exited during start-up; last lines of {self.log_path}:\n"
                    + self._log_tail()
                )
            if self._answers(port):
                return
            time.sleep(0.1)
        raise TrytonSetupError(
            f"trytond did not answer on port {port} within {self.start_timeout}; "
            f"last lines of {self.log_path}:\n{self._log_tail()}"
        )

    def _answers(self, port: int) -> bool:
        # common.server.version needs neither a session nor a database: it answers as soon as
        # the HTTP server listens, which trytond does only after the pool of -d is loaded.
        payload = {"id": 0, "method": "common.server.version", "params": []}
        try:
            response = httpx.post(f"http://{HOST}:{port}/rpc/", json=payload, timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == httpx.codes.OK

    def _running_server(self) -> tuple[int, int] | None:
        """The (pid, port) in the pid file, if that process is alive and is our trytond."""
        try:
            pid_text, port_text = self.pid_path.read_text(encoding="utf-8").split()
            pid, port = int(pid_text), int(port_text)
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid) or not self._is_our_server(pid):
            return None
        return pid, port

    def _is_our_server(self, pid: int) -> bool:
        # Guards against a recycled pid: only signal a process started with our config file.
        cmdline = Path(f"/proc/{pid}/cmdline")
        try:
            return str(self.config_path) in cmdline.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return not Path("/proc").is_dir()  # no procfs (macOS): trust the pid file

    def _stop(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout.total_seconds()
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_path.unlink(missing_ok=True)

    def _log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _alive(pid: int) -> bool:
    # Reap the process first when it is our child: a zombie still answers kill(pid, 0).
    with contextlib.suppress(ChildProcessError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As werkzeug binds: connections of the stopped server in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True
