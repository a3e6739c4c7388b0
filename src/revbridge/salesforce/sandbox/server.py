"""Running the sandbox: in the foreground (:func:`serve`) or on a background thread for tests and
demos (:func:`run_in_thread`), over plain HTTP or HTTPS."""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from revbridge.salesforce.sandbox.app import Sandbox, create_app
from revbridge.salesforce.sandbox.config import SandboxConfig
from revbridge.salesforce.sandbox.tls import generate_self_signed


@dataclass(frozen=True, slots=True)
class RunningSandbox:
    """A sandbox serving on a background thread.

    ``base_url`` is the instance URL (``http://127.0.0.1:PORT`` or ``https://...``); ``ca_cert``
    is the certificate to trust when TLS is on; ``sandbox`` gives tests direct access to the org.
    """

    base_url: str
    ca_cert: Path | None
    sandbox: Sandbox


def _tls_files(
    tls: bool, cert: Path | None, key: Path | None, workdir: Path
) -> tuple[Path, Path] | None:
    if not tls:
        return None
    if (cert is None) != (key is None):
        raise ValueError("give both tls_cert and tls_key, or neither")
    if cert is not None and key is not None:
        return cert, key
    return generate_self_signed(workdir)


def _uvicorn_config(
    app: object, tls_files: tuple[Path, Path] | None, host: str, port: int
) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        ws="none",
        http="h11",
        access_log=False,
        ssl_certfile=None if tls_files is None else str(tls_files[0]),
        ssl_keyfile=None if tls_files is None else str(tls_files[1]),
    )


def serve(
    config: SandboxConfig,
    port: int,
    *,
    host: str = "127.0.0.1",
    tls: bool = False,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> None:
    """Serve the sandbox in the foreground until interrupted."""
    with tempfile.TemporaryDirectory(prefix="revbridge-sf-") as workdir:
        files = _tls_files(tls, tls_cert, tls_key, Path(workdir))
        sandbox = Sandbox(config)
        scheme = "https" if files else "http"
        sandbox.outbound.base_url = f"{scheme}://{host}:{port}"
        try:
            server_config = _uvicorn_config(create_app(config, sandbox=sandbox), files, host, port)
            # Event streams never end on their own; give them a moment, then stop.
            server_config.timeout_graceful_shutdown = 3
            uvicorn.Server(server_config).run()
        finally:
            sandbox.close()


def _drop_connections(server: uvicorn.Server) -> None:
    for connection in list(server.server_state.connections):
        transport = getattr(connection, "transport", None)
        if transport is not None:
            transport.abort()


@contextmanager
def run_in_thread(
    config: SandboxConfig,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    tls: bool = False,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    startup_timeout_s: float = 10.0,
) -> Iterator[RunningSandbox]:
    """Serve the sandbox on a background thread (port 0 = a free port) for the ``with`` block."""
    with tempfile.TemporaryDirectory(prefix="revbridge-sf-") as workdir:
        files = _tls_files(tls, tls_cert, tls_key, Path(workdir))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        bound_port = sock.getsockname()[1]
        scheme = "https" if files else "http"
        base_url = f"{scheme}://{host}:{bound_port}"
        sandbox = Sandbox(config)
        sandbox.outbound.base_url = base_url
        server = uvicorn.Server(
            _uvicorn_config(create_app(config, sandbox=sandbox), files, host, bound_port)
        )
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="salesforce-sandbox", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + startup_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("the Salesforce sandbox did not start")
            time.sleep(0.01)
        try:
            yield RunningSandbox(
                base_url=base_url, ca_cert=None if files is None else files[0], sandbox=sandbox
            )
        finally:
            server.should_exit = True
            if sandbox.loop is not None and not sandbox.loop.is_closed():
                # Open keep-alive, TLS and event-stream connections would hold a graceful
                # shutdown for as long as their clients keep them; a test harness drops them.
                with contextlib.suppress(RuntimeError):
                    sandbox.loop.call_soon_threadsafe(_drop_connections, server)
            thread.join(timeout=10)
            sock.close()
            sandbox.close()
