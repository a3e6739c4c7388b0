"""``revbridge sandbox salesforce``: run the Salesforce sandbox in the foreground.

:func:`salesforce_command` is a plain function with Typer-style annotated options, so the CLI
package can register it with ``app.command("salesforce")(salesforce_command)``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from revbridge.salesforce.sandbox.config import SandboxConfig
from revbridge.salesforce.sandbox.faults import FaultSyntaxError, parse_faults
from revbridge.salesforce.sandbox.server import serve
from revbridge.salesforce.sandbox.tls import generate_jwt_keypair, generate_self_signed

_DEFAULTS = SandboxConfig()


def salesforce_command(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8091,
    data: Annotated[
        Path | None, typer.Option(help="SQLite file that keeps the org between runs.")
    ] = None,
    faults: Annotated[
        str | None,
        typer.Option(help="Faults to inject, e.g. latency=50ms,error_rate=0.1,outage=10s,seed=7."),
    ] = None,
    tls: Annotated[bool, typer.Option(help="Serve HTTPS (self-signed unless --tls-cert).")] = False,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate for --tls.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key for --tls.")] = None,
    client_id: Annotated[
        str, typer.Option(help="Connected app consumer key.")
    ] = _DEFAULTS.client_id,
    client_secret: Annotated[
        str, typer.Option(help="Connected app consumer secret.")
    ] = _DEFAULTS.client_secret,
    username: Annotated[str, typer.Option(help="Integration user name.")] = _DEFAULTS.username,
    password: Annotated[str, typer.Option(help="Integration user password.")] = _DEFAULTS.password,
    cert: Annotated[
        Path | None,
        typer.Option(
            help="X.509 certificate (PEM) that verifies JWT assertions; one is made if absent."
        ),
    ] = None,
    seed: Annotated[bool, typer.Option(help="Fill an empty org with demo data.")] = False,
    outbound_url: Annotated[
        str | None, typer.Option(help="Listener that receives Outbound Messages (SOAP).")
    ] = None,
    api_limit: Annotated[
        int, typer.Option(help="Daily API request allocation.")
    ] = _DEFAULTS.daily_api_limit,
) -> None:
    """Run a protocol-faithful Salesforce org (REST, SOQL, composite, Bulk 2.0, CDC stream)."""
    try:
        parse_faults(faults)
    except FaultSyntaxError as exc:
        raise typer.BadParameter(str(exc), param_hint="--faults") from exc
    with tempfile.TemporaryDirectory(prefix="revbridge-sf-jwt-") as workdir:
        key_path: Path | None = None
        if cert is None:
            key_dir = Path(workdir) if data is None else data.parent / f"{data.name}.jwt"
            key_path, cert_pem = generate_jwt_keypair(key_dir)
        else:
            cert_pem = cert.read_bytes()
        config = SandboxConfig(
            client_id=client_id,
            client_secret=client_secret,
            username=username,
            password=password,
            jwt_certificate_pem=cert_pem,
            data_path=data,
            seed=seed,
            faults=faults,
            outbound_url=outbound_url,
            daily_api_limit=api_limit,
        )
        if tls and tls_cert is None and tls_key is None:
            tls_cert, tls_key = generate_self_signed(Path(workdir) / "tls")
        scheme = "https" if tls else "http"
        base = f"{scheme}://127.0.0.1:{port}"
        rows = [
            ("instance URL", base),
            ("token endpoint", f"{base}/services/oauth2/token"),
            ("client id", client_id),
            ("client secret", client_secret),
            ("username", username),
            ("password", password),
            ("JWT audience", f"https://login.salesforce.com (or {base})"),
            ("JWT private key", str(key_path)) if key_path else ("JWT certificate", str(cert)),
            ("TLS certificate", str(tls_cert) if tls else "none (plain HTTP)"),
            ("data", str(data) if data else "in memory"),
            ("faults", faults or "none"),
            ("outbound URL", outbound_url or "none"),
            ("API limit", f"{api_limit} requests / 24 h"),
            ("change events", f"{base}/cometd/62.0 (Bayeux long-polling, /data/ChangeEvents)"),
            ("admin", f"{base}/sandbox/admin/faults (GET/PUT), /sandbox/admin/clock"),
        ]
        lines = ["Salesforce sandbox", *(f"  {label:<17}{value}" for label, value in rows)]
        typer.echo("\n".join(lines))
        sys.stdout.flush()
        serve(config, port, tls=tls, tls_cert=tls_cert, tls_key=tls_key)
