"""Build the delivery targets (ERP, Salesforce) and the worker from the configuration."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Engine

from revbridge.clock import Clock, SystemClock
from revbridge.config import Settings
from revbridge.engine.alerts import Alerter, AlertRules, AppriseNotifier, LogNotifier, Notifier
from revbridge.engine.circuit import CircuitBreaker
from revbridge.engine.concurrency import Slots, slots_for
from revbridge.engine.ports import ErpPort, SalesforcePort
from revbridge.engine.ratelimit import CappedBudget, PgTokenBucket, RateBudget, TokenBucket
from revbridge.engine.retry import RetryPolicy
from revbridge.engine.worker import Target, Worker, WorkerSettings
from revbridge.errors import UsageError
from revbridge.services.mdm_sync import with_customer_master
from revbridge.services.reroute import reroute_to_policy

log = structlog.get_logger("revbridge.targets")

if TYPE_CHECKING:
    from revbridge.netsuite.adapter import NetSuiteErp
    from revbridge.salesforce.mapping import Profile
    from revbridge.salesforce.writeback import WriteBackSettings
    from revbridge.testing.fakes import FakeSalesforce, FaultsWatch


def build_erp(settings: Settings, engine: Engine | None = None) -> ErpPort:
    """The configured ERP adapter. ``engine``: the ledger, through which an adapter with an
    account-wide concurrency limit shares it with every hub process (on PostgreSQL)."""
    erp = settings.raw.erp
    if erp.kind == "tryton":
        from revbridge.services.tryton_target import tryton_erp

        # [erp.tryton] url: a server you run; unset, the managed local instance (started
        # if it is not running, so that init, ingest and worker need nothing else).
        return tryton_erp(settings)
    if erp.kind == "netsuite":
        return netsuite_erp(settings, engine)
    from revbridge.testing.fakes import FakeErp, Faults

    return FakeErp(
        state_file=settings.path_in_base(erp.state_file),
        shared=erp.shared,
        faults=Faults.parse(erp.faults),
        faults_watch=_faults_watch(settings, "erp", erp.faults),
    )


def netsuite_erp(settings: Settings, engine: Engine | None = None) -> NetSuiteErp:
    """The NetSuite adapter of ``[erp.netsuite]``; credentials come from NETSUITE_*
    environment variables, never from the file."""
    from revbridge.netsuite.adapter import NetSuiteErp
    from revbridge.netsuite.config import NetSuiteConfig

    ns = settings.raw.erp.netsuite
    return NetSuiteErp(
        NetSuiteConfig.from_env(
            **{k: v for k, v in ns.model_dump().items() if v not in (None, {})}
        ),
        engine=engine,
    )


async def check_erp(settings: Settings) -> str | None:
    """Reach the configured ERP once and check its settings, before any delivery depends on
    them; one line saying what was found, or None for an ERP with nothing to check. A wrong
    setting is a ``ConfigError`` naming it (for Tryton: ``tryton_target.check_tryton``)."""
    if settings.raw.erp.kind == "netsuite":
        return await check_netsuite(settings)
    if settings.raw.erp.kind != "tryton":
        return None
    from revbridge.services.tryton_target import check_tryton, tryton_erp

    erp = tryton_erp(settings)
    try:
        found = await check_tryton(settings, erp)
    finally:
        await erp.close()
    return (
        f"Tryton at {found.url} (database {found.database}, user {found.login}): company "
        f"{found.company!r} in {found.currency}, {found.accounts} account codes found"
    )


async def check_netsuite(settings: Settings) -> str:
    """One SuiteQL read with the configured TBA token: a 401 is a ``ConfigError`` naming the
    token's variables (NetSuite does not say which part it refused); a server that does not
    answer is one naming ``erp.netsuite.base_url`` (or the account), caused by the
    transport's ``TransientError`` (which a worker waits out, ``check_erp_before_work``)."""
    from revbridge.errors import AccessRefused, ConfigError, TransientError

    erp = netsuite_erp(settings)
    config = erp.config
    where = config.base_url or f"account {config.account_id}"
    try:
        await erp.http.suiteql("SELECT id FROM currency", limit=1, offset=0)
    except AccessRefused as exc:
        raise ConfigError(
            "environment",
            "NETSUITE_TOKEN_ID",
            f"NetSuite ({where}) refused the integration's token ({exc}): check "
            "NETSUITE_ACCOUNT_ID, NETSUITE_CONSUMER_KEY, NETSUITE_CONSUMER_SECRET, "
            "NETSUITE_TOKEN_ID and NETSUITE_TOKEN_SECRET, and that the token, its user and "
            "its role are active",
        ) from exc
    except TransientError as exc:
        path, key = (
            (str(settings.path or "revbridge.toml"), "erp.netsuite.base_url")
            if config.base_url
            else ("environment", "NETSUITE_ACCOUNT_ID")
        )
        raise ConfigError(path, key, f"NetSuite ({where}) did not answer: {exc}") from exc
    finally:
        await erp.close()
    return f"NetSuite ({where}): the integration's token is accepted"


def check_erp_before_work(settings: Settings, *, refused_is_warning: bool = False) -> str | None:
    """``check_erp`` before a worker starts: a wrong ERP setting raises (``ConfigError``)
    before any delivery is dead-lettered on it; a server that does not answer is returned as
    a warning to print, since it may be down for a while and deliveries wait out outages
    (retries, the circuit breaker). ``refused_is_warning``: a refused login or token is a
    warning too (``serve``: its webhooks must accept Salesforce's events whatever the ERP
    says, and the circuit opens on the first refused call; decision 0038)."""
    import asyncio

    from revbridge.errors import ConfigError

    try:
        asyncio.run(check_erp(settings))
    except ConfigError as exc:
        from revbridge.errors import AccessRefused, TransientError

        # Down (Tryton unreachable, NetSuite not answering) is waited out; refused is not.
        cause = exc.__cause__
        if not isinstance(cause, TransientError):
            raise
        if isinstance(cause, AccessRefused) and not refused_is_warning:
            raise
        return str(exc)
    return None


def _faults_watch(settings: Settings, section: str, spec: str) -> FaultsWatch | None:
    """A fake's faults follow its config file's while the process runs (no restart)."""
    from revbridge.testing.fakes import FaultsWatch

    return FaultsWatch(settings.path, section, spec) if settings.path is not None else None


def erp_system_name(settings: Settings) -> str:
    """The name the configured ERP adapter reports (``capabilities.name``), without connecting
    to it: the ERP system the crosswalk records and finds its links under, on delivery
    (``MdmErp.erp_system``), capture, and every ``mdm`` command. Not ``erp.kind``: the fake
    ERP's kind is "fake", its name "fake-erp"."""
    kind = settings.raw.erp.kind
    if kind == "tryton":
        from revbridge.tryton.adapter import SYSTEM_NAME as tryton

        return tryton
    if kind == "netsuite":
        from revbridge.netsuite.adapter import SYSTEM_NAME as netsuite

        return netsuite
    from revbridge.testing.fakes import SYSTEM_NAME as fake

    return fake


def salesforce_client(settings: Settings) -> Any:
    """A REST client for the configured org: JWT with a key file, else the password flow."""
    import os

    from revbridge.errors import ConfigError
    from revbridge.salesforce.client import JwtBearerAuth, PasswordAuth, SalesforceClient

    sf = settings.raw.salesforce
    where = str(settings.path or "revbridge.toml")
    if not sf.client_id or not sf.username:
        raise ConfigError(where, "salesforce.client_id", "client_id and username are required")
    auth: JwtBearerAuth | PasswordAuth
    if sf.private_key_file:
        auth = JwtBearerAuth(
            login_url=sf.login_url,
            client_id=sf.client_id,
            username=sf.username,
            private_key_path=settings.path_in_base(sf.private_key_file),
            audience=sf.instance_audience,
        )
    else:
        secret, password = (
            os.environ.get("SALESFORCE_CLIENT_SECRET"),
            os.environ.get("SALESFORCE_PASSWORD"),
        )
        if not secret or not password:
            raise ConfigError(
                "environment",
                "SALESFORCE_CLIENT_SECRET/SALESFORCE_PASSWORD",
                "the password flow needs both (or set salesforce.private_key_file for JWT)",
            )
        auth = PasswordAuth(
            login_url=sf.login_url,
            client_id=sf.client_id,
            client_secret=secret,
            username=sf.username,
            password=password,
        )
    verify: str | bool = str(settings.path_in_base(sf.ca_bundle)) if sf.ca_bundle else True
    return SalesforceClient(auth, verify=verify)


def writeback_settings(settings: Settings) -> WriteBackSettings:
    """The write-back's object model and Account fields from ``[salesforce]`` and
    ``[salesforce.fields]`` ("" leaves an optional field unwritten)."""
    from revbridge.salesforce.writeback import GL_REFERENCE_OBJECTS, WriteBackSettings

    sf = settings.raw.salesforce
    f = sf.fields
    return WriteBackSettings(
        model=sf.object_model,
        account_erp_number_field=f.account_erp_number,
        credit_hold_field=f.credit_hold,
        credit_limit_field=f.credit_limit,
        payment_terms_field=f.payment_terms,
        receipt_field=f.receipt,
        credit_status_field=f.credit_status or None,
        last_sync_field=f.last_sync or None,
        tax_registration_field=f.tax_registration or None,
        website_field=sf.website_field or None,
        open_balance_field=f.open_balance or None,
        overdue_balance_field=f.overdue_balance or None,
        days_overdue_field=f.days_overdue or None,
        last_payment_date_field=f.last_payment_date or None,
        last_payment_amount_field=f.last_payment_amount or None,
        gl_reference_fields=(
            dict.fromkeys(GL_REFERENCE_OBJECTS, f.gl_reference) if f.gl_reference else {}
        ),
    )


def capture_profile(settings: Settings) -> Profile:
    """What the org's capture reads, for ``[salesforce] object_model``, with the Account's
    web site field as configured ("" leaves it unread: an integration user whose profile
    cannot read it would fail every Account query)."""
    from revbridge.salesforce.mapping import PROFILES

    sf = settings.raw.salesforce
    profile = PROFILES["revenue_cloud" if sf.object_model == "revenue_cloud" else "billing"]
    return replace(profile, account=replace(profile.account, website=sf.website_field))


def echo_fields(settings: Settings) -> frozenset[str]:
    """The fields capture treats as hub-owned: the built-in set and every configured
    write-back field (a change event touching only these is the hub's own write)."""
    from revbridge.salesforce.capture import DEFAULT_ECHO_FIELDS

    named = settings.raw.salesforce.fields.model_dump().values()
    return DEFAULT_ECHO_FIELDS | {name for name in named if name}


def build_salesforce(settings: Settings) -> SalesforcePort:
    if settings.raw.salesforce.kind == "salesforce":
        from revbridge.salesforce.writeback import SalesforceWriteBack

        return SalesforceWriteBack(salesforce_client(settings), writeback_settings(settings))
    return fake_salesforce(settings)


def fake_salesforce(settings: Settings) -> FakeSalesforce:
    """The configured fake org (``salesforce.kind = "fake"``), loaded from its state file."""
    from revbridge.testing.fakes import FakeSalesforce, Faults

    sf = settings.raw.salesforce
    if sf.kind != "fake":
        raise UsageError(
            f'salesforce.kind is "{sf.kind}": the fake org needs salesforce.kind = "fake"'
        )
    return FakeSalesforce(
        state_file=settings.path_in_base(sf.state_file),
        shared=sf.shared,
        faults=Faults.parse(sf.faults),
        faults_watch=_faults_watch(settings, "salesforce", sf.faults),
    )


def worker_settings(settings: Settings) -> WorkerSettings:
    e = settings.raw.engine
    return WorkerSettings(
        lease=timedelta(seconds=e.lease_s),
        claim_batch=e.claim_batch,
        retry=RetryPolicy(
            initial=timedelta(seconds=e.initial_backoff_s),
            maximum=timedelta(seconds=e.max_backoff_s),
            max_attempts=e.max_attempts,
            max_age=timedelta(days=e.max_age_days),
        ),
    )


def build_worker(
    settings: Settings, engine: Engine, *, clock: Clock | None = None, worker_id: str | None = None
) -> Worker:
    """The worker the configuration describes. What waits in the ledger follows the policy
    as configured now (an event type moved between real time and batch: ``reroute``)."""
    e = settings.raw.engine
    reroute_to_policy(engine, settings.policy, now=(clock or SystemClock()).now())

    def breaker() -> CircuitBreaker:
        return CircuitBreaker(
            failure_threshold=e.failure_threshold,
            cooldown=timedelta(seconds=e.circuit_cooldown_s),
        )

    def budget(
        name: str, port: ErpPort | SalesforcePort, configured: float | None
    ) -> RateBudget | None:
        rate = configured or port.capabilities.rate_limit_per_s
        if rate is None:
            return None
        if engine.dialect.name == "postgresql":  # one budget for every worker process
            return PgTokenBucket(engine, f"{name}:{port.capabilities.name}", rate)
        return TokenBucket(rate)

    def slots(port: ErpPort | SalesforcePort) -> Slots:
        caps = port.capabilities  # a declared scope is shared by every process on PostgreSQL
        return slots_for(engine, limit=caps.concurrency_limit, scope=caps.concurrency_scope)

    erp_port, sf_port = build_erp(settings, engine), build_salesforce(settings)
    erp_port, sf_port = with_customer_master(settings, engine, erp_port, sf_port, clock)
    targets = {
        "erp": Target(
            "erp",
            erp_port,
            breaker=breaker(),
            bucket=budget("erp", erp_port, settings.raw.erp.rate_limit_per_s),
            slots=slots(erp_port),
        ),
        "salesforce": Target(
            "salesforce",
            sf_port,
            breaker=breaker(),
            bucket=budget("salesforce", sf_port, settings.raw.salesforce.rate_limit_per_s),
            slots=slots(sf_port),
        ),
    }
    a = settings.raw.alerts
    notifiers: list[Notifier] = [LogNotifier()]
    if a.urls:
        notifiers.append(AppriseNotifier(a.urls))
    alerter = Alerter(
        engine,
        AlertRules(
            backlog_age=timedelta(seconds=a.backlog_age_s),
            failure_rate=a.failure_rate,
            failure_window=timedelta(seconds=a.failure_window_s),
            min_attempts=a.min_attempts,
            dead_letter_window=timedelta(seconds=a.dead_letter_window_s),
            capture_failing=timedelta(seconds=a.capture_failing_s),
            capture_stale=None
            if a.capture_stale_s is None
            else timedelta(seconds=a.capture_stale_s),
        ),
        notifiers,
    )
    worker = Worker(
        engine,
        targets,
        clock=clock or SystemClock(),
        settings=covering_calls(worker_settings(settings), targets.values()),
        worker_id=worker_id,
        batch_dir=settings.path_in_base("batches"),
        alerter=alerter,
    )
    worker.alert_interval = timedelta(seconds=a.check_interval_s)
    return worker


def covering_calls(settings: WorkerSettings, targets: Iterable[Target]) -> WorkerSettings:
    """``settings`` with a lease of at least twice the longest request timeout the targets
    declare. A call starts with at least half its lease left (``Worker._lease_holds``) and
    must end before the lease does: else another worker could resume the delivery while the
    call is still in flight, look it up, not find it, and post it again (decision 0021)."""
    longest = max((t.port.capabilities.request_timeout_s or 0.0 for t in targets), default=0.0)
    needed = timedelta(seconds=2 * longest)
    if settings.lease >= needed:
        return settings
    log.info(
        "lease_raised",
        configured_s=settings.lease.total_seconds(),
        lease_s=needed.total_seconds(),
        why="twice the longest request timeout of the targets",
    )
    return replace(settings, lease=needed)


def check_rate(rate: float) -> None:
    """A drain's ``--rate`` must be a positive number of calls a second (``UsageError``)."""
    if not rate > 0:  # also NaN
        raise UsageError(f"--rate must be a positive number of calls a second, not {rate:g}")


def cap_rate(worker: Worker, rate: float) -> None:
    """Cap each of ``worker``'s targets at ``rate`` calls a second (``revbridge dr drain
    --rate``), within the target's own budget when it has one, and size its rounds at about
    half a second of calls: the limiter makes up the pause between rounds, and a longer round
    only makes that pause longer (docs/decisions/0015). A rate that is not positive is the
    operator's mistake, said as such (``UsageError``)."""
    check_rate(rate)
    for target in worker.targets.values():
        cap = TokenBucket(rate, burst=1)
        target.bucket = cap if target.bucket is None else CappedBudget(cap, target.bucket)
    worker.settings = replace(
        worker.settings, claim_batch=max(worker.settings.claim_batch, int(rate / 2))
    )
