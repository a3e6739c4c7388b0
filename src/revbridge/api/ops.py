"""The operations API (``/api/v1``): the same service functions as the CLI, behind tokens.

viewer: every GET. operator: replay dead letters, resolve or discard quarantine entries, pause
and resume a target. admin: tokens,
the routing policy and the ERP mappings in revbridge.toml.
Each write is in the audit log with the token's name as the actor.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from revbridge.api.auth import api_principal
from revbridge.core.policy import policy_rows
from revbridge.services import audit, config_admin, operations, quarantine, serve
from revbridge.services.access import Principal, Role, create_token, list_tokens, revoke_token

router = APIRouter(prefix="/api/v1", tags=["operations"])
log = structlog.get_logger("revbridge.api")

Viewer = Annotated[Principal, Depends(api_principal(Role.VIEWER))]
Operator = Annotated[Principal, Depends(api_principal(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(api_principal(Role.ADMIN))]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReplayRequest(_Body):
    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    event_id: int | None = None
    event_type: str | None = None


class QuarantineResolveRequest(_Body):
    """One entry (``entry_id``) or every open one (of ``reason_code``); ``outcome``:
    ``resolved`` (dealt with: a corrected line is ingested again as usual) or ``discarded``
    (nothing to do)."""

    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    entry_id: int | None = None
    reason_code: str | None = None
    outcome: Literal["resolved", "discarded"] = "resolved"


class PauseRequest(_Body):
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class TokenRequest(_Body):
    name: Annotated[str, Field(min_length=1, max_length=255)]
    role: Literal["viewer", "operator", "admin"] = "viewer"


def _ledger(request: Request) -> Any:
    return request.app.state.ledger


def _now(request: Request) -> Any:
    return request.app.state.clock.now()


@router.get("/status")
def get_status(request: Request, _p: Viewer) -> dict[str, Any]:
    """Events by type, state and pattern; quarantine size; oldest undelivered age."""
    result: dict[str, Any] = _ledger(request).status(_now(request))
    return result


@router.get("/overview")
def get_overview(request: Request, _p: Viewer) -> dict[str, Any]:
    """Status, per-target backlog and circuit, API calls against budget, hourly throughput."""
    return serve.overview(request.app.state.settings, _ledger(request), _now(request))


@router.get("/events")
def search_events(
    request: Request, _p: Viewer, q: Annotated[str, Query(min_length=1, max_length=300)]
) -> list[dict[str, Any]]:
    """Events by id, source record id, subject, customer or idempotency key."""
    return serve.search_events(_ledger(request).engine, q)


@router.get("/events/{event_id}/trace")
def get_trace(request: Request, _p: Viewer, event_id: int) -> dict[str, Any]:
    """The source record, the event, its delivery, every attempt, the ERP record, the audit."""
    return operations.trace(_ledger(request).engine, event_id)


@router.get("/dead-letters")
def get_dead_letters(
    request: Request,
    response: Response,
    _p: Viewer,
    event_type: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[dict[str, Any]]:
    """Dead-lettered deliveries with their last error, oldest event first: at most
    ``limit``; the ``X-Total-Count`` header says how many there are in all."""
    engine = _ledger(request).engine
    response.headers["X-Total-Count"] = str(
        operations.count_dead_letters(engine, event_type=event_type)
    )
    return operations.list_dead_letters(engine, event_type=event_type, limit=limit)


@router.post("/dead-letters/replay")
async def replay(request: Request, body: ReplayRequest, p: Operator) -> dict[str, int]:
    """Put dead letters (one event, one type, or all) back in line; audited with the reason."""
    n = await run_in_threadpool(
        operations.replay,
        _ledger(request).engine,
        now=_now(request),
        actor=p.actor,
        reason=body.reason,
        event_id=body.event_id,
        event_type=body.event_type,
    )
    log.info(
        "dead letters replayed",
        actor=p.actor,
        event_id=body.event_id,
        event_type=body.event_type,
        replayed=n,
    )
    if n and request.app.state.runner is not None:
        request.app.state.runner.wake()
    return {"replayed": n}


@router.get("/audit")
def get_audit(
    request: Request,
    response: Response,
    _p: Viewer,
    action: str | None = None,
    entity_type: str | None = None,
    entity: str | None = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> list[dict[str, Any]]:
    """The audit log, newest first, filtered as ``revbridge audit`` (``since``: a time ago
    such as ``2h`` or an ISO 8601 time): at most ``limit``; the ``X-Total-Count`` header says
    how many match in all."""
    when = audit.parse_since(since, _now(request)) if since is not None else None
    rows, total = audit.read_audit(
        _ledger(request).engine,
        action=action,
        entity_type=entity_type,
        entity_id=entity,
        since=when,
        limit=limit,
    )
    response.headers["X-Total-Count"] = str(total)
    return rows


@router.get("/parked")
def get_parked(request: Request, _p: Viewer) -> list[dict[str, Any]]:
    """Parked deliveries and the record each waits for."""
    return serve.parked(_ledger(request).engine)


@router.get("/quarantine")
def get_quarantine(
    request: Request,
    _p: Viewer,
    state: Annotated[Literal["open", "resolved", "discarded", "all"], Query()] = "open",
) -> list[dict[str, Any]]:
    """Quarantine entries (open ones unless ``state`` says): what was rejected, and why."""
    status = None if state == "all" else state
    return list(_ledger(request).list_quarantine(status=status))


@router.get("/quarantine/{entry_id}")
def get_quarantine_entry(request: Request, entry_id: int, _p: Viewer) -> dict[str, Any]:
    """One entry: the raw input, where it came from, why, and who closed it, when, why."""
    return quarantine.entry(_ledger(request).engine, entry_id)


@router.post("/quarantine/resolve")
def resolve_quarantine(
    request: Request, body: QuarantineResolveRequest, p: Operator
) -> dict[str, int]:
    """Close one open entry (``entry_id``), or every open one (of ``reason_code``), as
    resolved or discarded; each audited with the token's name and the reason."""
    n = quarantine.close_entries(
        _ledger(request).engine,
        now=_now(request),
        actor=p.actor,
        reason=body.reason,
        outcome=body.outcome,
        entry_id=body.entry_id,
        reason_code=body.reason_code,
    )
    log.info(
        "quarantine closed",
        actor=p.actor,
        entry_id=body.entry_id,
        reason_code=body.reason_code,
        outcome=body.outcome,
        closed=n,
    )
    return {body.outcome: n}


@router.get("/targets")
def get_targets(request: Request, _p: Viewer) -> dict[str, Any]:
    """Per target: paused, circuit, backlog by state, oldest undelivered age."""
    return operations.dr_status(_ledger(request).engine, _now(request))


@router.post("/targets/{name}/pause")
def pause(request: Request, name: str, body: PauseRequest, p: Operator) -> dict[str, Any]:
    """Stop deliveries to a target (events keep being accepted); audited. Pausing a paused
    target changes nothing and is not audited (``changed`` is false)."""
    change = operations.set_paused(
        _ledger(request).engine,
        name,
        paused=True,
        now=_now(request),
        actor=p.actor,
        reason=body.reason,
    )
    return {"target": name, "state": "paused", "changed": change.changed}


@router.post("/targets/{name}/resume")
def resume(request: Request, name: str, body: PauseRequest, p: Operator) -> dict[str, Any]:
    """Resume deliveries to a paused target; audited. Resuming a running target changes
    nothing and is not audited (``changed`` is false)."""
    change = operations.set_paused(
        _ledger(request).engine,
        name,
        paused=False,
        now=_now(request),
        actor=p.actor,
        reason=body.reason,
    )
    if request.app.state.runner is not None:
        request.app.state.runner.wake()
    return {"target": name, "state": "running", "changed": change.changed}


@router.get("/policy")
def get_policy(request: Request, _p: Viewer) -> list[dict[str, Any]]:
    """The hybrid routing policy: each event type's pattern, schedule and rationale."""
    return policy_rows(request.app.state.settings.policy)


@router.get("/tokens")
def get_tokens(request: Request, _p: Admin) -> list[dict[str, Any]]:
    """API tokens (never their secret)."""
    return list_tokens(_ledger(request).engine)


@router.post("/tokens", status_code=201)
def post_token(request: Request, body: TokenRequest, p: Admin) -> dict[str, str]:
    """Create a token; the response is the only time it is shown."""
    token = create_token(
        _ledger(request).engine,
        name=body.name,
        role=Role.parse(body.role),
        now=_now(request),
        actor=p.actor,
    )
    return {"name": body.name, "role": body.role, "token": token}


@router.delete("/tokens/{name}")
def delete_token(request: Request, name: str, p: Admin) -> dict[str, str]:
    """Revoke a token (kept, marked revoked, for the audit trail)."""
    revoke_token(_ledger(request).engine, name=name, now=_now(request), actor=p.actor)
    return {"name": name, "state": "revoked"}


# --------------------------------------------------------------------------- admin: configuration


class PolicyChange(_Body):
    pattern: Literal["realtime", "batch"]
    schedule: Annotated[str | None, Field(max_length=120)] = None
    rationale: Annotated[str, Field(min_length=1, max_length=500)]


class MappingChange(_Body):
    value: Annotated[str, Field(min_length=1, max_length=120)]


def _applied(request: Request, change: config_admin.ConfigChange) -> dict[str, Any]:
    # The server ingests with the new policy from now on; adapters read mappings when built.
    request.app.state.settings = change.settings
    return {"key": change.key, "before": change.before, "after": change.after}


@router.put("/admin/policy/{event_type}")
def put_event_policy(
    request: Request, event_type: str, body: PolicyChange, p: Admin
) -> dict[str, Any]:
    """Classify an event type real-time or batch in revbridge.toml (validated, audited)."""
    change = config_admin.set_event_policy(
        request.app.state.settings,
        _ledger(request),
        event_type=event_type,
        pattern=body.pattern,
        schedule=body.schedule,
        rationale=body.rationale,
        actor=p.actor,
        now=_now(request),
    )
    return _applied(request, change)


@router.get("/admin/mappings")
def get_mappings(request: Request, _p: Admin) -> dict[str, dict[str, str]]:
    """The ERP mappings in force (currency, GL account, item: canonical key -> ERP id)."""
    return config_admin.mappings(request.app.state.settings)


@router.put("/admin/mappings/{mapping}/{key}")
def put_mapping(
    request: Request, mapping: str, key: str, body: MappingChange, p: Admin
) -> dict[str, Any]:
    """Set one entry of an ERP mapping in revbridge.toml (validated, audited); running
    workers pick it up at their next start."""
    change = config_admin.set_mapping(
        request.app.state.settings,
        _ledger(request),
        mapping=mapping,
        key=key,
        value=body.value,
        actor=p.actor,
        now=_now(request),
    )
    return _applied(request, change) | {"restart_workers": True}


@router.delete("/admin/mappings/{mapping}/{key}")
def delete_mapping(request: Request, mapping: str, key: str, p: Admin) -> dict[str, Any]:
    """Remove one entry of an ERP mapping (validated, audited)."""
    change = config_admin.set_mapping(
        request.app.state.settings,
        _ledger(request),
        mapping=mapping,
        key=key,
        value=None,
        actor=p.actor,
        now=_now(request),
    )
    return _applied(request, change) | {"restart_workers": True}
