"""Reconciliation (cases, sign-off) and the customer review queue, in the API and console.

Thin routes over ``services.recon`` and ``services.mdm``: viewers read; operators work cases
(investigate, resolve, accept), sign periods off and decide review items. Every action is
audited by those services with ``token:<name>`` as the actor.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from revbridge.api.auth import api_principal
from revbridge.api.console import _form, _need, _render
from revbridge.services import mdm, recon
from revbridge.services.access import Principal, Role

api = APIRouter(prefix="/api/v1", tags=["reconciliation", "customer master"])
pages = APIRouter(prefix="/console", include_in_schema=False)

Viewer = Annotated[Principal, Depends(api_principal(Role.VIEWER))]
Operator = Annotated[Principal, Depends(api_principal(Role.OPERATOR))]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseAction(_Body):
    action: Literal["investigate", "resolve", "accept"]
    note: Annotated[str, Field(max_length=4000)] = ""
    code: str | None = None  # resolve: a resolution code


class SignoffRequest(_Body):
    period: Annotated[str, Field(pattern=r"^\d{4}-\d{2}$")]
    role: Literal["preparer", "reviewer"]
    # Sign although documents of the month are in transit to the ERP: why (audited).
    override_in_transit: Annotated[str, Field(max_length=4000)] | None = None


class ReviewDecision(_Body):
    approve: bool
    note: Annotated[str, Field(max_length=4000)] = ""


class Unlink(_Body):
    reason: Annotated[str, Field(min_length=1, max_length=4000)]
    relink_to: Annotated[str | None, Field(min_length=1, max_length=128)] = None
    erp_entity: Annotated[str, Field(max_length=64)] = ""


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _engine(request: Request) -> Any:
    return request.app.state.ledger.engine


def _now(request: Request) -> Any:
    return request.app.state.clock.now()


def _act_on_case(
    request: Request, case_id: int, action: str, *, actor: str, note: str, code: str | None
) -> recon.CaseView:
    engine, now = _engine(request), _now(request)
    if action == "investigate":
        return recon.investigate_case(engine, case_id, actor=actor, now=now, note=note or None)
    if action == "resolve":
        return recon.resolve_case(engine, case_id, actor=actor, code=code or "", note=note, now=now)
    return recon.accept_case(engine, case_id, actor=actor, note=note, now=now)


# --------------------------------------------------------------------------- API


@api.get("/recon/status")
def recon_status(request: Request, _p: Viewer) -> dict[str, Any]:
    """Cases by state, open ones by reconciliation and age, recent runs, sign-offs."""
    result: dict[str, Any] = _plain(recon.recon_status(_engine(request), now=_now(request)))
    return result


@api.get("/recon/cases")
def recon_cases(
    request: Request, _p: Viewer, state: str | None = None, reconciliation: str | None = None
) -> list[dict[str, Any]]:
    """Cases, oldest first (active ones unless ``state`` is given)."""
    rows = recon.list_cases(
        _engine(request),
        now=_now(request),
        states=[state] if state else None,
        reconciliation=reconciliation,
    )
    return [_plain(c) for c in rows]


@api.get("/recon/cases/{case_id}")
def recon_case(request: Request, case_id: int, _p: Viewer) -> dict[str, Any]:
    """One case and its history."""
    result: dict[str, Any] = _plain(recon.show_case(_engine(request), case_id, now=_now(request)))
    return result


@api.post("/recon/cases/{case_id}")
async def recon_case_action(
    request: Request, case_id: int, body: CaseAction, p: Operator
) -> dict[str, Any]:
    """Investigate, resolve (with a resolution code and note) or accept (with a note)."""
    view = await run_in_threadpool(
        _act_on_case, request, case_id, body.action, actor=p.actor, note=body.note, code=body.code
    )
    result: dict[str, Any] = _plain(view)
    return result


@api.post("/recon/signoff")
async def recon_signoff(request: Request, body: SignoffRequest, p: Operator) -> dict[str, Any]:
    """Sign a month off as its preparer, then (someone else) as its reviewer."""
    view = await run_in_threadpool(
        lambda: recon.sign_off(
            _engine(request),
            period=body.period,
            role=body.role,
            actor=p.actor,
            now=_now(request),
            override_in_transit=body.override_in_transit,
        )
    )
    result: dict[str, Any] = _plain(view)
    return result


@api.get("/customers/reviews")
def reviews(
    request: Request, _p: Viewer, state: str = "open", kind: str | None = None
) -> list[dict[str, Any]]:
    """The customer master's review queue (conflicts, proposed matches, held customers)."""
    return mdm.list_reviews(_engine(request), state=None if state == "all" else state, kind=kind)


@api.get("/customers/{any_id}/links")
def customer_links(request: Request, any_id: str, _p: Viewer) -> dict[str, Any]:
    """Every id of one customer in every ERP and legal entity, found by any of them
    (canonical id, Account id in 15 or 18 characters, ERP number or internal id)."""
    links = mdm.lookup(_engine(request), any_id)
    if not links:
        raise mdm.NotFound(f"no customer has the id {any_id!r}")
    return {"links": [link.as_dict() for link in links]}


@api.post("/customers/{account_id}/unlink")
async def unlink(request: Request, account_id: str, body: Unlink, p: Operator) -> dict[str, Any]:
    """Undo a wrong link the ERP has not used yet (``revbridge mdm unlink``): the pair is
    recorded as rejected; ``relink_to`` links another ERP customer number instead. A link
    the ERP has used is refused (400) with what to do."""
    from revbridge.services.targets import erp_system_name

    system = erp_system_name(request.app.state.settings)
    result: dict[str, Any] = await run_in_threadpool(
        lambda: mdm.unlink_customer(
            _engine(request),
            sf_account_id=account_id,
            erp_system=system,
            erp_entity=body.erp_entity,
            actor=p.actor,
            reason=body.reason,
            now=_now(request),
            relink_to=body.relink_to,
        )
    )
    return result


@api.get("/customers/reviews/{review_id}")
def review(request: Request, review_id: int, _p: Viewer) -> dict[str, Any]:
    """One review item with its audit trail."""
    return mdm.show_review(_engine(request), review_id)


@api.post("/customers/reviews/{review_id}")
async def decide(
    request: Request, review_id: int, body: ReviewDecision, p: Operator
) -> dict[str, Any]:
    """Approve or reject an open item; held deliveries go back in line."""
    result: dict[str, Any] = await run_in_threadpool(
        lambda: mdm.decide_review(
            _engine(request),
            review_id,
            approve=body.approve,
            actor=p.actor,
            now=_now(request),
            note=body.note,
        )
    )
    if result.get("released") and request.app.state.runner is not None:
        request.app.state.runner.wake()
    return result


# --------------------------------------------------------------------------- console


@pages.get("/recon")
def recon_page(request: Request, done: str = "") -> HTMLResponse:
    session = _need(request)
    engine, now = _engine(request), _now(request)
    status = recon.recon_status(engine, now=now, runs=30)
    cases = recon.list_cases(engine, now=now)
    variances = [
        (r["period"], int(r["variances"]))
        for r in reversed(status.recent_runs)
        if r["new_reading"]  # a --no-refresh run repeats a reading: one bar for both
    ]
    return _render(
        request,
        "recon.html",
        session,
        status=status,
        cases=cases,
        variances=variances,
        done=done,
        nav="recon",
    )


@pages.get("/recon/cases/{case_id}")
def case_page(request: Request, case_id: int) -> HTMLResponse:
    session = _need(request)
    detail = recon.show_case(_engine(request), case_id, now=_now(request))
    from revbridge.recon.cases import AUTO_RESOLVED, RESOLUTION_CODES

    codes = [c for c in RESOLUTION_CODES if c != AUTO_RESOLVED]
    return _render(request, "recon_case.html", session, d=detail, codes=codes, nav="recon")


@pages.post("/recon/cases/{case_id}")
async def case_action(request: Request, case_id: int) -> Response:
    session = _need(request, Role.OPERATOR)
    form = await _form(request, session)
    action = form.get("action", "")
    if action not in ("investigate", "resolve", "accept"):
        return RedirectResponse(f"/console/recon/cases/{case_id}", status_code=303)
    await run_in_threadpool(
        _act_on_case,
        request,
        case_id,
        action,
        actor=session.principal.actor,
        note=form.get("note", "").strip(),
        code=form.get("code") or None,
    )
    return RedirectResponse(f"/console/recon/cases/{case_id}", status_code=303)


@pages.post("/recon/signoff")
async def signoff_action(request: Request) -> Response:
    session = _need(request, Role.OPERATOR)
    form = await _form(request, session)
    period, role = form.get("period", ""), form.get("role", "")
    override = form.get("override_in_transit", "").strip() or None
    await run_in_threadpool(
        lambda: recon.sign_off(
            _engine(request),
            period=period,
            role=role,
            actor=session.principal.actor,
            now=_now(request),
            override_in_transit=override,
        )
    )
    return RedirectResponse(f"/console/recon?done={period}", status_code=303)


@pages.get("/customers")
def reviews_page(request: Request, done: str = "") -> HTMLResponse:
    session = _need(request)
    rows = mdm.list_reviews(_engine(request))
    return _render(request, "reviews.html", session, rows=rows, nav="customers", done=done)


@pages.post("/customers/unlink")
async def unlink_action(request: Request) -> Response:
    """Undo a wrong link (``mdm unlink``); a refusal (in use, no link) is a page saying why."""
    from revbridge.services.targets import erp_system_name

    session = _need(request, Role.OPERATOR)
    form = await _form(request, session)
    account = form.get("account", "").strip()
    relink = form.get("relink", "").strip() or None
    system = erp_system_name(request.app.state.settings)
    await run_in_threadpool(
        lambda: mdm.unlink_customer(
            _engine(request),
            sf_account_id=account,
            erp_system=system,
            actor=session.principal.actor,
            reason=form.get("reason", ""),
            now=_now(request),
            relink_to=relink,
        )
    )
    return RedirectResponse(f"/console/customers?done={account}", status_code=303)


@pages.post("/customers/reviews/{review_id}")
async def review_action(request: Request, review_id: int) -> Response:
    session = _need(request, Role.OPERATOR)
    form = await _form(request, session)
    await run_in_threadpool(
        lambda: mdm.decide_review(
            _engine(request),
            review_id,
            approve=form.get("decision") == "approve",
            actor=session.principal.actor,
            now=_now(request),
            note=form.get("note", "").strip(),
        )
    )
    if request.app.state.runner is not None:
        request.app.state.runner.wake()
    return RedirectResponse("/console/customers", status_code=303)
