"""Running the sandbox: ``serve`` in the foreground, ``running_sandbox`` on a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from revbridge.netsuite.sandbox.app import Sandbox, create_app
from revbridge.netsuite.sandbox.config import SandboxConfig

REST_PATH = "/services/rest"
ADMIN_PATH = "/sandbox/admin"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningSandbox:
    """A sandbox serving on ``base_url`` (``http://127.0.0.1:PORT``), as in-process handle.

    ``base_url`` plays the role of ``https://{account}.suitetalk.api.netsuite.com``: a client
    appends ``/services/rest/...`` to it. ``state`` is the live ``Sandbox`` for inspection.
    """

    base_url: str
    config: SandboxConfig
    state: Sandbox

    @property
    def rest_url(self) -> str:
        return self.base_url + REST_PATH

    @property
    def admin_url(self) -> str:
        return self.base_url + ADMIN_PATH


def serve(config: SandboxConfig, port: int = 8090, host: str = "127.0.0.1") -> None:
    """Serve the sandbox until interrupted (Ctrl-C)."""
    uvicorn.run(create_app(config), host=host, port=port, log_level="info")


@contextmanager
def running_sandbox(
    config: SandboxConfig | None = None, *, host: str = "127.0.0.1", startup_timeout_s: float = 10.0
) -> Iterator[RunningSandbox]:
    """Serve a sandbox on a free port on a daemon thread for the duration of the block."""
    config = config or SandboxConfig()
    app = create_app(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,  # leave the host application's logging alone
            access_log=False,
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"netsuite-sandbox-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the NetSuite sandbox did not start")
        time.sleep(0.01)
    try:
        yield RunningSandbox(
            base_url=f"http://{host}:{port}", config=config, state=app.state.sandbox
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
