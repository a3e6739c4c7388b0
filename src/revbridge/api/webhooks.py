"""Public webhook endpoints: signed envelopes, signed Salesforce callouts, Outbound Messages.

A 2xx (or the SOAP ``<Ack>true</Ack>``) is sent only after the events are committed to the
ledger; on any failure the sender gets an error and retries, and the idempotent ingest makes
the retry a duplicate, not a second event.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from revbridge.services.access import SIGNATURE_HEADER, verify_signature, webhook_secret
from revbridge.services.webhooks import (
    ACK,
    WebhookRejected,
    WebhookResult,
    ingest_envelopes,
    ingest_flow_callout,
    ingest_outbound_message,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
log = structlog.get_logger("revbridge.api")

SOAP_FAULT = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    "<soapenv:Body><soapenv:Fault><faultcode>soapenv:{code}</faultcode>"
    "<faultstring>{reason}</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
)


async def _verified_body(request: Request, endpoint: str) -> bytes:
    state = request.app.state
    secret = webhook_secret(state.settings)
    if secret is None:
        raise WebhookRejected(
            "server",
            "no webhook secret configured (security.webhook_secret_env or _file)",
            status=503,
        )
    body = await request.body()
    await run_in_threadpool(
        verify_signature,
        state.ledger.engine,
        secret=secret,
        header=request.headers.get(SIGNATURE_HEADER),
        body=body,
        now=state.clock.now(),
        tolerance=timedelta(seconds=state.settings.raw.security.webhook_tolerance_s),
        endpoint=endpoint,
    )
    return body


def _done(request: Request, endpoint: str, result: WebhookResult) -> dict[str, Any]:
    metrics = request.app.state.metrics
    log.info("webhook stored", endpoint=endpoint, **result.as_dict())
    for outcome, n in result.as_dict().items():
        if n:
            metrics.webhook_events.labels(endpoint, outcome).inc(n)
    if result.accepted and request.app.state.runner is not None:
        request.app.state.runner.wake()
    return result.as_dict()


@router.post("/events", status_code=202)
async def post_events(request: Request) -> dict[str, Any]:
    """Canonical envelopes (one, a JSON array, or JSON Lines), HMAC-signed.

    Header ``X-Revbridge-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``; the request
    is refused if the timestamp is more than the tolerance away or the signature was seen.
    All envelopes are validated first: one bad envelope refuses the whole request (422).
    """
    body = await _verified_body(request, "events")
    state = request.app.state
    result = await run_in_threadpool(
        ingest_envelopes,
        state.ledger,
        state.settings,
        body,
        content_type=request.headers.get("content-type", ""),
        origin="webhook:events",
        actor="webhook:events",
        clock=state.clock,
    )
    return _done(request, "events", result)


@router.post("/salesforce/flow", status_code=202)
async def post_salesforce_flow(request: Request) -> dict[str, Any]:
    """A Salesforce Flow or Apex HTTP callout, signed like ``/webhooks/events``.

    Body: ``{"sobject": "Account", "records": [{...}], "children": {"<parent id>": [...]}}``;
    the records are mapped to canonical events by the org's object-model profile.
    """
    body = await _verified_body(request, "salesforce-flow")
    state = request.app.state
    result = await run_in_threadpool(
        ingest_flow_callout,
        state.ledger,
        state.settings,
        body,
        actor="webhook:salesforce-flow",
        clock=state.clock,
    )
    return _done(request, "salesforce-flow", result)


@router.post(
    "/salesforce/outbound",
    response_class=Response,
    responses={200: {"content": {"text/xml": {}}, "description": "SOAP Ack"}},
)
async def post_salesforce_outbound(request: Request) -> Response:
    """Salesforce Outbound Messages (SOAP 1.1), accepted from allow-listed org ids.

    Outbound Messages carry no signature: put TLS, client certificates or an IP allow-list
    at the proxy in front (see docs/how-to/security.md). ``<Ack>true</Ack>`` is returned only
    once the notifications' events are in the ledger; otherwise a SOAP fault, and Salesforce
    resends.
    """
    state = request.app.state
    body = await request.body()
    try:
        result = await run_in_threadpool(
            ingest_outbound_message, state.ledger, state.settings, body, clock=state.clock
        )
    except WebhookRejected as exc:
        log.warning("outbound message refused", where=exc.where, why=exc.why)
        code = "Client" if exc.status < 500 else "Server"
        return Response(
            SOAP_FAULT.format(code=code, reason=_xml_text(str(exc))),
            status_code=exc.status,
            media_type="text/xml",
        )
    _done(request, "salesforce-outbound", result)
    return Response(ACK, media_type="text/xml")


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
