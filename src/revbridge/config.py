"""Configuration: ``revbridge.toml``, validated at load.

Found through ``--config``, then ``REVBRIDGE_CONFIG``, then ``./revbridge.toml``; with none of
these, the embedded default applies (a SQLite ledger in the current folder). Relative paths
in the file resolve against the file's own folder. A bad file fails at load with one
``ConfigError`` that names the file and, for every problem in it, the key and the reason.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from revbridge.core.events import EventType
from revbridge.core.policy import (
    CashHandler,
    EventPolicy,
    Pattern,
    RoutingPolicy,
    build_policy,
    check_classification,
    check_cron,
)
from revbridge.errors import ConfigError, DomainError

CONFIG_ENV = "REVBRIDGE_CONFIG"
DEFAULT_FILE = "revbridge.toml"
DEFAULT_STORE_URL = "sqlite:///revbridge.db"

_M = TypeVar("_M", bound="BaseModel")


def _fault_spec(spec: str) -> str:
    """A fake's fault spec, checked when the file is read (``revbridge.testing.Faults``)."""
    from revbridge.testing.fakes import Faults

    Faults.parse(spec)
    return spec


FaultSpec = Annotated[str, AfterValidator(_fault_spec)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSection(_Strict):
    url: str = DEFAULT_STORE_URL
    auto_migrate: bool = True
    ingest_batch_size: Annotated[int, Field(ge=1, le=50_000)] = 2_000


class EventPolicySection(_Strict):
    pattern: Pattern
    schedule: str | None = None
    rationale: str

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_cron(value)
            except DomainError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @model_validator(mode="after")
    def _complete(self) -> Self:
        # Checked here, with the rest of the file, so that every problem is reported at once.
        check_classification(self.pattern, self.schedule, self.rationale)
        return self


class PolicySection(_Strict):
    cash_handled_in: CashHandler = CashHandler.BOTH
    events: dict[EventType, EventPolicySection] = {}


class NetSuiteSection(_Strict):
    """Account set-up lists (ids in your NetSuite account); credentials come from NETSUITE_*."""

    base_url: str | None = None  # a sandbox or proxy in front of SuiteTalk
    concurrency_limit: Annotated[int, Field(ge=1)] = 5
    subsidiary_id: str = "1"
    currency_map: dict[str, str] = {}
    gl_account_map: dict[str, str] = {}
    item_map: dict[str, str] = {}
    default_item_id: str | None = None
    tax_item_id: str | None = None
    payment_account_id: str | None = None
    # "per_entry": a journal entry per recognized schedule entry; "summarized": one journal
    # per period and currency, a line per GL account, through the batch route (so
    # revenue.recognized must be a batch class).
    revenue_posting: Literal["per_entry", "summarized"] = "per_entry"


_EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
# An account code of the Tryton chart (account.account code), e.g. "4.1.2" or "706000".
_AccountCode = Annotated[str, Field(min_length=1)]


class TrytonSection(_Strict):
    """A Tryton server you run (trytond 8.2 over JSON-RPC). With ``url`` unset, the managed
    local instance (``erp.tryton_home``) is used. The password comes from the environment
    variable ``password_env`` names, never from this file."""

    url: str | None = None  # e.g. "https://erp.example.com"; the JSON-RPC path is <url>/<db>/rpc/
    database: str | None = None
    login: str | None = None
    # the environment variable holding the login's password
    password_env: _EnvName = "TRYTON_PASSWORD"  # noqa: S105 - a variable name
    timeout_s: Annotated[float, Field(gt=0)] = 60
    # calls at once; trytond on PostgreSQL takes more than the managed SQLite's one
    concurrency_limit: Annotated[int, Field(ge=1)] = 1
    # Account codes of your chart (the defaults are the Universal Chart of Accounts'): the
    # revenue of invoice lines naming none, the receivable and cash of unapplied payments,
    # the tax account of tax lines, and the account.tax those lines name ("" for none).
    revenue_account: _AccountCode = "4.1.2"
    receivable_account: _AccountCode = "1.2.1"
    cash_account: _AccountCode = "1.1.1"
    tax_account: _AccountCode = "2.2.3"
    tax_name: str = "Sales tax (Salesforce)"
    # A journal line's GL account name (or its number) -> your account code, merged over the
    # defaults ("4000 Subscription Revenue" -> "4.1.2", "2400 Deferred Revenue" -> "2.2.2", ...)
    gl_account_map: dict[str, _AccountCode] = {}

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(
                "must start with http:// or https:// (the server's web address, "
                "e.g. https://erp.example.com:8000)"
            )
        return value

    @model_validator(mode="after")
    def _server(self) -> Self:
        if self.url is None:
            if self.database or self.login:
                raise ValueError(
                    "database and login are for a server you run: set url too "
                    "(without url, the managed local instance of erp.tryton_home is used)"
                )
        elif not self.database or not self.login:
            raise ValueError(f"url is set: database and login are required too ({self.url})")
        return self


class ErpSection(_Strict):
    kind: Literal["fake", "tryton", "netsuite"] = "fake"
    netsuite: NetSuiteSection = NetSuiteSection()
    tryton: TrytonSection = TrytonSection()
    capture_interval_s: Annotated[float, Field(gt=0)] = 60
    # calls per second to this ERP account, shared by all workers (PostgreSQL coordinates them)
    rate_limit_per_s: Annotated[float, Field(gt=0)] | None = None
    # fake: where the in-process fake ERP keeps its records between runs
    state_file: str = "fake-erp.json"
    # fake: several worker processes share the fake ERP through state_file (file lock)
    shared: bool = False
    # fake: injected faults, e.g. "error_rate=0.05,lost_response_rate=0.05,seed=7"
    faults: FaultSpec = ""
    # tryton: the managed local instance's folder (see `revbridge erp tryton up`); not used
    # when [erp.tryton] url names a server you run
    tryton_home: str = ".revbridge/tryton"
    daily_call_budget: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _one_tryton(self) -> Self:
        if self.tryton.url is not None and "tryton_home" in self.model_fields_set:
            raise ValueError(
                "tryton_home is the managed local instance's folder, and erp.tryton.url names "
                "a server you run: keep one of them"
            )
        return self


# A Salesforce field API name; the optional ones may be "" (not written).
_FieldName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
_OptionalFieldName = Annotated[str, Field(pattern=r"^([A-Za-z][A-Za-z0-9_]*)?$")]


class SalesforceFieldsSection(_Strict):
    """The org's field API names the hub writes back (ERP to Salesforce). The defaults are the
    custom fields the sandbox org has; an optional field set to "" is not written. Every field
    named here is hub-owned: a change event touching only these is no new change (no echo)."""

    account_erp_number: _FieldName = "ERP_Customer_Number__c"
    credit_hold: _FieldName = "Credit_Hold__c"
    credit_limit: _FieldName = "Credit_Limit__c"
    payment_terms: _FieldName = "Payment_Terms__c"
    receipt: _FieldName = "ERP_Receipt_Number__c"
    credit_status: _OptionalFieldName = "ERP_Sync_Status__c"
    last_sync: _OptionalFieldName = "ERP_Last_Sync__c"
    tax_registration: _OptionalFieldName = "Tax_Registration__c"
    open_balance: _OptionalFieldName = "AR_Open_Balance__c"
    overdue_balance: _OptionalFieldName = "AR_Overdue_Balance__c"
    days_overdue: _OptionalFieldName = "AR_Days_Overdue__c"
    last_payment_date: _OptionalFieldName = "AR_Last_Payment_Date__c"
    last_payment_amount: _OptionalFieldName = "AR_Last_Payment_Amount__c"
    gl_reference: _OptionalFieldName = "ERP_GL_Reference__c"  # on each posted document's object


class SalesforceSection(_Strict):
    # "fake": in-process; "salesforce": a real org or the sandbox (`revbridge sandbox
    # salesforce`). Secrets come from the environment: SALESFORCE_CLIENT_SECRET and
    # SALESFORCE_PASSWORD for the password flow; the JWT flow needs only the key file.
    kind: Literal["fake", "salesforce"] = "fake"
    login_url: str = "https://login.salesforce.com"
    instance_audience: str = "https://login.salesforce.com"
    client_id: str | None = None
    username: str | None = None
    private_key_file: str | None = None  # JWT bearer flow (production)
    object_model: Literal["billing", "revenue_cloud"] = "billing"
    integration_user_id: str | None = None
    ca_bundle: str | None = None
    # The Account's web site (Salesforce owns it by default): captured, and written back when
    # the ERP owns it; "" where the integration user cannot read it (field-level security)
    website_field: _OptionalFieldName = "Website"
    # fake: where the in-process fake org keeps its records between runs
    state_file: str = "fake-salesforce.json"
    # fake: several processes share the fake org through state_file (file lock)
    shared: bool = False
    # fake: injected faults, as for the fake ERP
    faults: FaultSpec = ""
    rate_limit_per_s: Annotated[float, Field(gt=0)] | None = None
    daily_call_budget: Annotated[int, Field(ge=1)] | None = None
    fields: SalesforceFieldsSection = SalesforceFieldsSection()


class EngineSection(_Strict):
    lease_s: Annotated[float, Field(gt=0)] = 60
    claim_batch: Annotated[int, Field(ge=1, le=10_000)] = 50
    max_attempts: Annotated[int, Field(ge=1)] = 12
    initial_backoff_s: Annotated[float, Field(gt=0)] = 1
    max_backoff_s: Annotated[float, Field(gt=0)] = 1800
    max_age_days: Annotated[float, Field(gt=0)] = 7
    failure_threshold: Annotated[int, Field(ge=1)] = 5
    circuit_cooldown_s: Annotated[float, Field(gt=0)] = 30


class AlertsSection(_Strict):
    # apprise URLs: "mailto://user:pass@example.com", "slack://T/B/C", "json://host/path", ...
    urls: list[str] = []
    backlog_age_s: Annotated[float, Field(gt=0)] = 3600
    failure_rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    failure_window_s: Annotated[float, Field(gt=0)] = 900
    min_attempts: Annotated[int, Field(ge=1)] = 10
    dead_letter_window_s: Annotated[float, Field(gt=0)] = 900
    check_interval_s: Annotated[float, Field(gt=0)] = 60
    # a capture stream (erp:netsuite, salesforce:org) whose every round failed this long
    capture_failing_s: Annotated[float, Field(gt=0)] = 900
    # a capture stream with no successful round this long (the scheduled `revbridge capture`
    # stopped running); unset: not watched
    capture_stale_s: Annotated[float, Field(gt=0)] | None = None


class ServerSection(_Strict):
    """``revbridge serve``: where it listens, and the limits on public (webhook) endpoints."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    # false: API only (PostgreSQL deployments run `revbridge worker` processes separately)
    run_workers: bool = True
    max_body_bytes: Annotated[int, Field(ge=1024)] = 5_000_000
    rate_limit_per_min: Annotated[int, Field(ge=1)] = 600  # per client address, public routes
    session_ttl_s: Annotated[int, Field(ge=60)] = 8 * 3600
    # behind a TLS-terminating proxy the session cookie is marked Secure; false only for local HTTP
    secure_cookies: bool = True


class SecuritySection(_Strict):
    """Secrets never live in this file: name the environment variable or the file holding them."""

    webhook_secret_env: str = "REVBRIDGE_WEBHOOK_SECRET"  # noqa: S105 - a variable name
    webhook_secret_file: str | None = None
    webhook_tolerance_s: Annotated[int, Field(ge=1)] = 300
    # Salesforce Outbound Messages carry no signature: only these org ids are accepted
    salesforce_org_ids: list[str] = []


class ReconSection(_Strict):
    """Reconciliation: thresholds (see ``recon/thresholds.py``), the exit code, the schedules."""

    # {"payments": {"absolute": "0.01", "relative": "0", "date_days": 3,
    #  "per_currency": {"JPY": {"absolute": "1"}}}}; what is left out keeps its default.
    thresholds: dict[str, Any] = {}
    # {"source": {"Sent": "open"}, "erp": {"posted": "open"}}, merged over the defaults
    status_map: dict[str, dict[str, str]] = {}
    # `recon run` exits 3 when more cases than this are open after the run
    max_open_cases: Annotated[int, Field(ge=0)] = 0
    nightly_schedule: str = "0 2 * * *"  # cron, UTC: yesterday
    monthly_schedule: str = "0 3 1 * *"  # cron, UTC: last month
    trend_runs: Annotated[int, Field(ge=2, le=400)] = 30  # runs in the HTML trend chart
    # `revbridge worker` runs the schedules above (and a run after each ERP outage), one
    # process at a time; false where a scheduler runs `revbridge recon run` instead
    run_in_worker: bool = True

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: dict[str, Any]) -> dict[str, Any]:
        from revbridge.recon.thresholds import parse_thresholds

        parse_thresholds(value)
        return value

    @field_validator("nightly_schedule", "monthly_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        try:
            check_cron(value)
        except DomainError as exc:
            raise ValueError(str(exc)) from exc
        return value


class MdmSection(_Strict):
    """The customer master: who owns which attribute, what a non-owner's change leads to."""

    # {"name": "salesforce", "credit_limit": "erp", "addresses": "salesforce", ...}, merged
    # over the defaults (``revbridge.mdm.ownership.DEFAULT_OWNERS``)
    owners: dict[str, str] = {}
    on_conflict: Literal["revert", "flag"] = "revert"
    erp_entity: str = ""  # the ERP subsidiary or legal entity the links belong to
    accept_at: Annotated[float, Field(gt=0, le=1)] = 0.9  # `mdm match` links automatically
    review_at: Annotated[float, Field(gt=0, le=1)] = 0.7  # ... queues for review

    @field_validator("owners")
    @classmethod
    def _owners(cls, value: dict[str, str]) -> dict[str, str]:
        from revbridge.mdm.ownership import Ownership

        Ownership.from_config(value)
        return value


class FileConfig(_Strict):
    store: StoreSection = StoreSection()
    policy: PolicySection = PolicySection()
    erp: ErpSection = ErpSection()
    salesforce: SalesforceSection = SalesforceSection()
    engine: EngineSection = EngineSection()
    alerts: AlertsSection = AlertsSection()
    recon: ReconSection = ReconSection()
    server: ServerSection = ServerSection()
    security: SecuritySection = SecuritySection()
    mdm: MdmSection = MdmSection()


@dataclass(frozen=True, slots=True)
class Settings:
    """The loaded configuration, with paths resolved and the policy built."""

    path: Path | None
    base_dir: Path
    store_url: str
    auto_migrate: bool
    ingest_batch_size: int
    policy: RoutingPolicy
    raw: FileConfig

    def path_in_base(self, relative: str) -> Path:
        """A path from the config, resolved against the config file's folder."""
        p = Path(relative)
        return p if p.is_absolute() else (self.base_dir / p).resolve()


def find_config(explicit: Path | None = None, cwd: Path | None = None) -> Path | None:
    """``--config``, then ``$REVBRIDGE_CONFIG``, then ``./revbridge.toml``, else None."""
    if explicit is not None:
        return explicit
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    candidate = (cwd or Path.cwd()) / DEFAULT_FILE
    return candidate if candidate.exists() else None


def _key(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc if part != "[key]") or "(top level)"


def _problem(error: ErrorDetails) -> tuple[str, str]:
    """One pydantic error as the key it is about and the reason, in the file's own terms."""
    reason = error["msg"]
    if error["type"] == "value_error":  # our own checks' message, without pydantic's prefix
        reason = str(error.get("ctx", {}).get("error") or reason.removeprefix("Value error, "))
    if error["type"] == "extra_forbidden":
        reason = "unknown key"
    elif error["type"] == "missing":
        reason = "missing: this key is required"
    elif error["type"] == "enum" and "events" in error["loc"]:
        reason = f"unknown event type; known: {', '.join(t.value for t in EventType)}"
    return _key(error["loc"]), reason


def _section(model: type[_M], data: dict[str, Any], name: str) -> _M | None:
    """One table of the file on its own, or None where it has problems of its own."""
    try:
        return model.model_validate(data.get(name, {}))
    except ValidationError:
        return None


def _routing_policy(section: PolicySection) -> RoutingPolicy:
    overrides = {
        event_type: EventPolicy(
            type=event_type,
            pattern=entry.pattern,
            schedule=entry.schedule,
            rationale=entry.rationale,
        )
        for event_type, entry in section.events.items()
    }
    return build_policy(overrides, section.cash_handled_in)


def _across_tables(erp: ErpSection, policy: RoutingPolicy) -> list[tuple[str, str]]:
    """Problems of settings that are each valid but do not go together."""
    if (
        erp.kind == "netsuite"
        and erp.netsuite.revenue_posting == "summarized"
        and policy.for_type(EventType.REVENUE_RECOGNIZED).pattern is Pattern.REALTIME
    ):
        return [
            (
                "erp.netsuite.revenue_posting",
                "summarized revenue is posted by the batch route: classify revenue.recognized "
                'as batch (policy.events."revenue.recognized")',
            )
        ]
    return []


def parse_config(data: dict[str, Any], path: Path | None, base_dir: Path) -> Settings:
    """Validate the file's data; a bad file raises one ``ConfigError`` naming every problem."""
    where = str(path) if path else "(built-in defaults)"
    try:
        raw = FileConfig.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(error) for error in exc.errors()]
        # The tables a check across tables reads may be valid even where others are not.
        erp, events = _section(ErpSection, data, "erp"), _section(PolicySection, data, "policy")
        if erp is not None and events is not None:
            problems += _across_tables(erp, _routing_policy(events))
        raise ConfigError.of(where, problems) from exc
    policy = _routing_policy(raw.policy)
    problems = _across_tables(raw.erp, policy)
    if problems:
        raise ConfigError.of(where, problems)
    return Settings(
        path=path,
        base_dir=base_dir,
        store_url=resolve_store_url(raw.store.url, base_dir),
        auto_migrate=raw.store.auto_migrate,
        ingest_batch_size=raw.store.ingest_batch_size,
        policy=policy,
        raw=raw,
    )


def resolve_store_url(url: str, base_dir: Path) -> str:
    """Make a relative SQLite path absolute against ``base_dir``; other URLs pass through."""
    prefix = "sqlite:///"
    if url.startswith(prefix):
        file_part = url[len(prefix) :]
        if file_part and file_part != ":memory:" and not file_part.startswith("/"):
            return prefix + str((base_dir / file_part).resolve())
    return url


def load_settings(
    explicit: Path | None = None, cwd: Path | None = None, *, required: bool = False
) -> Settings:
    """Find and load the configuration; fall back to the embedded default, unless
    ``required`` (an operator's command: in the wrong folder it must not report an empty,
    healthy hub of its own making)."""
    path = find_config(explicit, cwd)
    if path is None:
        base = (cwd or Path.cwd()).resolve()
        if required:
            raise ConfigError(
                str(base / DEFAULT_FILE),
                "(file)",
                f"no configuration here (nor --config, nor ${CONFIG_ENV}): run the command "
                "where your revbridge.toml is, name it, or create one with `revbridge init`",
            )
        return parse_config({}, None, base)
    if not path.exists():
        raise ConfigError(str(path), "(file)", "no such file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "(syntax)", str(exc)) from exc
    return parse_config(data, path, path.resolve().parent)


INIT_TEMPLATE = """\
# revbridge configuration: the embedded default (a SQLite ledger next to this file).
# Every command finds this file through --config, then $REVBRIDGE_CONFIG, then ./revbridge.toml;
# where there is none, a command is refused (`policy show` shows the built-in defaults).
# Relative paths resolve against this file's folder.

[store]
# SQLite (WAL) for one host; PostgreSQL for production and several workers, e.g.
# url = "postgresql+psycopg://revbridge@db.example.com/revbridge"
url = "sqlite:///revbridge.db"
# Upgrade the ledger schema (Alembic) automatically when a command opens it.
auto_migrate = true

[policy]
# Which system handles cash: "salesforce" (card payments through its gateway), "erp" (wires,
# lockbox) or "both". A payment flow that does not apply is off.
cash_handled_in = "both"

[erp]
# The ERP of record: "fake" (an in-process fake that keeps its records in state_file, for
# trying revbridge out), "netsuite" (SuiteTalk REST; docs/how-to/connect-netsuite-tba.md), or
# "tryton" (the managed local Tryton, `revbridge erp tryton up`, or your own server: see
# [erp.tryton] below and docs/how-to/connect-tryton.md).
kind = "fake"
state_file = "fake-erp.json"
# fake: processes running at once (several workers, on PostgreSQL; a worker beside
# `revbridge dr drain`) share one fake ERP only with shared = true (its file is then read and
# written on every call, slower); otherwise each keeps its own copy and the last to stop wins.
# Set it here and in [salesforce] alike.
# shared = false
# fake: faults to try the engine against, e.g. "down=1" (an outage), "refuse_access=1" (a
# revoked token: the circuit opens, nothing is dead-lettered), or
# "error_rate=0.05,lost_response_rate=0.05,throttle_next=20,seed=7" (revbridge.testing.Faults)
# faults = ""
# API governance of this ERP account (any kind): calls per second shared by every worker (on
# PostgreSQL the database coordinates them), and the calls a day it allows. `revbridge status`
# shows today's calls against the budget, and warns when the real-time classes would go over
# either at the observed peak hour (the "real-time everywhere" mistake).
# rate_limit_per_s = 10
# daily_call_budget = 100000

# tryton: a Tryton 8.2 server you run. Without url, the managed local instance is used (its
# folder: tryton_home under [erp], default ".revbridge/tryton"). The password is read from
# the environment variable password_env names, never from this file. Check it all with
# `revbridge erp check`.
# [erp.tryton]
# url = "https://erp.example.com:8000"
# database = "books"
# login = "revbridge"
# password_env = "TRYTON_PASSWORD"
# timeout_s = 60
# concurrency_limit = 1          # raise it when trytond runs on PostgreSQL
# Account codes of your chart (defaults: the Universal Chart of Accounts):
# revenue_account = "4.1.2"      # invoice lines that name no account
# receivable_account = "1.2.1"   # unapplied payments
# cash_account = "1.1.1"
# tax_account = "2.2.3"
# tax_name = "Sales tax (Salesforce)"   # the account.tax tax lines name; "" for none
# [erp.tryton.gl_account_map]    # a journal line's GL account name -> your code
# "4000 Subscription Revenue" = "4.1.2"
# "2400 Deferred Revenue" = "2.2.2"

[salesforce]
kind = "fake"
state_file = "fake-salesforce.json"
# shared = false                  # as for the fake ERP: true with several workers
# faults = ""                     # as for the fake ERP
# rate_limit_per_s = 20           # as for the ERP: the org's API limits
# daily_call_budget = 100000
# The fake org has a change feed: `revbridge generate --into-salesforce` posts to it and
# `revbridge capture salesforce` reads it into the ledger, as a real org's changes travel.

[engine]
# Delivery: leases, retries (exponential backoff with full jitter), the circuit breaker.
# A lease covers one call: a worker raises it to twice its targets' longest request timeout
# (NetSuite's and Tryton's are 60 s, so 120 s with them).
lease_s = 60
max_attempts = 12
initial_backoff_s = 1
max_backoff_s = 1800
max_age_days = 7
failure_threshold = 5
circuit_cooldown_s = 30

[alerts]
# One alert per incident (and a resolve message), through apprise; the log always gets them.
# urls = ["mailto://ops:secret@mail.example.com?to=finance-systems@example.com",
#         "slack://TokenA/TokenB/TokenC/#revbridge"]
urls = []
backlog_age_s = 3600        # oldest undelivered real-time event older than this
failure_rate = 0.5          # share of failed attempts over the window
failure_window_s = 900
dead_letter_window_s = 900  # any new dead letter in this window
capture_failing_s = 900     # a capture stream whose every round failed this long
# capture_stale_s = 7200    # a capture stream with no successful round this long (unset: off)

[server]
# `revbridge serve`: webhooks, the ops API, the console and /metrics in one process. With
# run_workers = true (the SQLite default) the workers and batch scheduler run inside it too.
# host = "127.0.0.1"
# port = 8080
# run_workers = true
# max_body_bytes = 5000000
# rate_limit_per_min = 600   # per client address on the webhook endpoints (429 + Retry-After)
# secure_cookies = true      # false only when the console is reached over plain local HTTP

[security]
# Signed webhooks (X-Revbridge-Signature: t=<unix>,v1=<hmac-sha256 hex of "t.body">): the
# secret comes from this environment variable, or from a file; never from this file.
# webhook_secret_env = "REVBRIDGE_WEBHOOK_SECRET"
# webhook_secret_file = "/run/secrets/revbridge-webhook"
# webhook_tolerance_s = 300
# Salesforce Outbound Messages are accepted only from these org ids (18 characters).
# salesforce_org_ids = ["00D5e000000RvBrEAK"]

[recon]
# max_open_cases = 0               # `recon run` exits 3 when more cases are open
# nightly_schedule = "0 2 * * *"   # cron, UTC: reconcile yesterday
# monthly_schedule = "0 3 1 * *"   # cron, UTC: reconcile last month
# trend_runs = 30                  # runs in the report's variance trend
# run_in_worker = true             # `revbridge worker` runs the schedules and post-outage runs
# Thresholds per reconciliation (ar, payments, revenue) and per currency: a difference no
# larger than `absolute` (currency units) or `relative` (fraction of the Salesforce amount) is
# within tolerance (reported, no case); larger opens a case. Defaults: exact amounts; dates
# the same day (ar, revenue), 3 days apart (payments).
# [recon.thresholds.payments]
# absolute = "0.01"
# relative = "0"
# date_days = 3
# [recon.thresholds.payments.per_currency.JPY]
# absolute = "1"

[mdm]
# Who owns each customer attribute: a change in the owner propagates; a change in the other
# system is reverted ("revert": the owner's value written back) or only flagged ("flag"), and
# lands in `revbridge mdm review list` either way. Defaults: Salesforce owns name, contacts,
# addresses, industry, account_owner, segment, website, parent; the ERP owns credit_limit,
# payment_terms, tax_registration, credit_hold.
# on_conflict = "revert"
# erp_entity = ""                   # the subsidiary / legal entity the crosswalk links are for
# accept_at = 0.9                   # `mdm match`: linked automatically at or above this score
# review_at = 0.7                   # ... queued for review at or above this one
# [mdm.owners]
# payment_terms = "salesforce"

# The hybrid map. Every event type is real-time or batch (with a cron schedule, UTC), with a
# one-line rationale for the auditors. Uncomment to override a default; see `revbridge policy show`.
# [policy.events."customer.upserted"]
# pattern = "batch"
# schedule = "0 2 * * *"
# rationale = "Master data matters by the next day; a new customer's first invoice pulls it ahead."
"""
