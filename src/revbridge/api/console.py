"""The web console: server-rendered pages over the same service functions as the API.

No JavaScript build step and nothing from a CDN: Jinja2 templates, one local stylesheet,
charts drawn as inline SVG by a template macro. Forms are POSTs carrying the session's CSRF
token; each operator action goes through the audited service functions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from revbridge.api.auth import SESSION_COOKIE, Session, console_session, encode_session
from revbridge.core.durations import human_duration
from revbridge.core.policy import policy_rows
from revbridge.core.timestamps import human_timestamp
from revbridge.core.wording import counted
from revbridge.services import operations, quarantine, serve
from revbridge.services.access import AccessDenied, Role, authenticate, require

router = APIRouter(prefix="/console", include_in_schema=False)


def _timestamp(at: datetime | None) -> str:
    """The ``timestamp`` filter: a time as people read it, zone said (decision 0028)."""
    return "" if at is None else human_timestamp(at)


def _templates(request: Request) -> Jinja2Templates:
    t: Jinja2Templates | None = getattr(request.app.state, "templates", None)
    if t is None:
        from revbridge.api.app import HERE

        t = Jinja2Templates(directory=HERE / "templates")
        t.env.filters["human_duration"] = human_duration
        t.env.filters["timestamp"] = _timestamp
        t.env.globals["counted"] = counted
        request.app.state.templates = t
    return t


def _render(
    request: Request,
    name: str,
    session: Session | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    return _templates(request).TemplateResponse(
        request,
        name,
        {"session": session, "csrf": session.csrf if session else "", **context},
        status_code=status_code,
    )


def render_error(
    request: Request, session: Session | None, message: str, *, status_code: int = 400
) -> HTMLResponse:
    """A refused console action: the page says why (the service's message)."""
    return _render(request, "error.html", session, status_code, error=message)


def _need(request: Request, role: Role = Role.VIEWER) -> Session:
    session = console_session(request)
    if session is None:
        raise AccessDenied("no console session")
    require(session.principal, role)
    return session


async def _form(request: Request, session: Session | None) -> dict[str, str]:
    """The urlencoded form, with the CSRF token checked when a session is given."""
    raw = (await request.body()).decode("utf-8", errors="replace")
    form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    if session is not None and form.get("csrf") != session.csrf:
        raise AccessDenied("the form's CSRF token does not match the session")
    return form


async def _audited(
    request: Request, session: Session, action: Callable[..., Any], *, reason: str, **args: Any
) -> Any:
    """An audited service function, off the event loop, as the session's user with its reason."""
    state = request.app.state
    return await run_in_threadpool(
        action,
        state.ledger.engine,
        now=state.clock.now(),
        actor=session.principal.actor,
        reason=reason,
        **args,
    )


@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    return _render(request, "login.html", None)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request, None)
    state = request.app.state
    try:
        principal = await run_in_threadpool(
            authenticate, state.ledger.engine, form.get("token", "").strip(), now=state.clock.now()
        )
    except AccessDenied:
        return _render(request, "login.html", None, 401, error="That token is unknown or revoked.")
    server = state.settings.raw.server
    value, _csrf = encode_session(state.session_key, principal, server.session_ttl_s)
    response = RedirectResponse("/console/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=server.session_ttl_s,
        httponly=True,
        secure=server.secure_cookies,
        samesite="strict",
        path="/",
    )
    state.ledger.audit(
        actor=principal.actor,
        action="console_login",
        entity_type="api_token",
        entity_id=principal.name,
        now=state.clock.now(),
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = _need(request)
    await _form(request, session)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
def overview(request: Request) -> HTMLResponse:
    session = _need(request)
    state = request.app.state
    data = serve.overview(state.settings, state.ledger, state.clock.now())
    return _render(request, "overview.html", session, data=data, nav="overview")


@router.get("/events")
def events(request: Request, q: str = "") -> HTMLResponse:
    session = _need(request)
    rows = serve.search_events(request.app.state.ledger.engine, q) if q else []
    return _render(request, "events.html", session, q=q, rows=rows, nav="events")


@router.get("/events/{event_id}")
def trace(request: Request, event_id: int) -> HTMLResponse:
    session = _need(request)
    data = operations.trace(request.app.state.ledger.engine, event_id)
    return _render(request, "trace.html", session, t=data, nav="events")


@router.get("/dead-letters")
def dead_letters(request: Request, done: str = "") -> HTMLResponse:
    session = _need(request)
    engine = request.app.state.ledger.engine
    rows = operations.list_dead_letters(engine)
    total = operations.count_dead_letters(engine)
    return _render(
        request, "dead_letters.html", session, rows=rows, total=total, done=done, nav="dlq"
    )


@router.post("/dead-letters/{event_id}/replay")
async def replay(request: Request, event_id: int) -> Response:
    session = _need(request, Role.OPERATOR)
    form = await _form(request, session)
    state = request.app.state
    reason = form.get("reason", "").strip()
    if not reason:
        rows = operations.list_dead_letters(state.ledger.engine)
        return _render(
            request,
            "dead_letters.html",
            session,
            400,
            rows=rows,
            nav="dlq",
            error="A replay needs a reason for the audit log.",
        )
    await _audited(request, session, operations.replay, reason=reason, event_id=event_id)
    if state.runner is not None:
        state.runner.wake()
    return RedirectResponse(f"/console/dead-letters?done={event_id}", status_code=303)


_CLOSE_OUTCOMES: dict[str, quarantine.Outcome] = {
    "resolve": "resolved",
    "discard": "discarded",
}


@router.get("/quarantine")
def quarantine_list(request: Request, done: str = "", outcome: str = "") -> HTMLResponse:
    session = _need(request)
    engine = request.app.state.ledger.engine
    return _render(
        request,
        "quarantine.html",
        session,
        rows=quarantine.review(engine),
        counts=quarantine.counts(engine),
        done=done,
        outcome=outcome if outcome in quarantine.OUTCOMES else "closed",
        nav="quarantine",
    )


def _quarantine_entry(
    request: Request, session: Session, entry_id: int, status_code: int = 200, **context: Any
) -> HTMLResponse:
    row = quarantine.entry(request.app.state.ledger.engine, entry_id)
    row["source_id"] = quarantine.source_id(row["raw"])
    return _render(
        request, "quarantine_entry.html", session, status_code, q=row, nav="quarantine", **context
    )


@router.get("/quarantine/{entry_id}")
def quarantine_entry(request: Request, entry_id: int) -> HTMLResponse:
    return _quarantine_entry(request, _need(request), entry_id)


@router.post("/quarantine/{entry_id}/{action}")
async def close_quarantine_entry(request: Request, entry_id: int, action: str) -> Response:
    """Resolve or discard one open entry: the operator role, the form's CSRF token and a
    reason for the audit log, as a dead letter's replay."""
    session = _need(request, Role.OPERATOR)
    form = await _form(request, session)
    outcome = _CLOSE_OUTCOMES.get(action)
    if outcome is None:
        raise operations.NotFound(f"no action {action!r}; use resolve or discard")
    reason = form.get("reason", "").strip()
    if not reason:
        return _quarantine_entry(
            request,
            session,
            entry_id,
            400,
            error=f"To {action} an entry needs a reason for the audit log.",
        )
    close = quarantine.close_entries
    await _audited(request, session, close, reason=reason, outcome=outcome, entry_id=entry_id)
    return RedirectResponse(
        f"/console/quarantine?done={entry_id}&outcome={outcome}", status_code=303
    )


@router.get("/parked")
def parked(request: Request) -> HTMLResponse:
    session = _need(request)
    rows = serve.parked(request.app.state.ledger.engine)
    return _render(request, "parked.html", session, rows=rows, nav="parked")


@router.get("/policy")
def policy(request: Request) -> HTMLResponse:
    session = _need(request)
    rows = policy_rows(request.app.state.settings.policy)
    return _render(request, "policy.html", session, rows=rows, nav="policy")


@router.post("/targets/{name}/{action}")
async def pause_or_resume(request: Request, name: str, action: str) -> Response:
    session = _need(request, Role.OPERATOR)
    form = await _form(request, session)
    if action not in ("pause", "resume"):
        raise operations.NotFound(f"no action {action!r}; use pause or resume")
    state = request.app.state
    change = operations.set_paused(
        state.ledger.engine,
        name,
        paused=action == "pause",
        now=state.clock.now(),
        actor=session.principal.actor,
        reason=form.get("reason", "").strip() or f"{action} from the console",
    )
    if not change.changed:  # another operator was first: say so instead of a silent no-op
        why = f" ({change.paused_reason})" if change.paused_reason else ""
        return render_error(
            request,
            session,
            f"{name} was already {change.to_state}{why}: nothing changed, nothing audited",
            status_code=409,
        )
    return RedirectResponse("/console/", status_code=303)
