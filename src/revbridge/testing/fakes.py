"""An in-memory ERP and Salesforce, faithful to the rules that matter for delivery.

Like a real ERP without a unique constraint on references (Tryton, or a careless API), the
fake ERP *will* store a duplicate if asked to create the same record twice: tests count
records per external reference to prove the engine never does that.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import fcntl
import hashlib
import json
import os
import random
import signal
import tomllib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog

from revbridge.clock import Clock, SystemClock
from revbridge.codec import DecodeError, decode_obj, decode_payload, encode_payload
from revbridge.core.events import (
    FROM_ERP,
    CreditMemoIssued,
    CustomerCreditStatusChanged,
    CustomerUpserted,
    ErpPaymentReceived,
    EventType,
    GlPosted,
    InvoicePosted,
    PaymentReceived,
    ReportingRefreshed,
    RevenueRecognized,
)
from revbridge.engine.ports import (
    ArDocument,
    BatchItem,
    BatchOutcome,
    Capabilities,
    ErpRecord,
    JournalDocument,
    JournalLineRow,
    PaymentDocument,
    ReadbackKind,
    ReadPage,
    RecordKind,
)
from revbridge.errors import (
    AccessRefused,
    RateLimited,
    RevbridgeError,
    TerminalError,
    TransientError,
)
from revbridge.mdm.erp_reading import ERP_MASTER_ATTRIBUTES

# The ERP system the crosswalk records the fake ERP's links under (``Capabilities.name``).
SYSTEM_NAME = "fake-erp"

_READBACK_KINDS = {
    ReadbackKind.AR: ("invoice", "credit_memo"),
    ReadbackKind.PAYMENTS: ("payment",),
    ReadbackKind.JOURNALS: ("journal",),
}


def _read_doc(d: _Doc, customer_ref: str | None) -> ArDocument | PaymentDocument | JournalDocument:
    """A fake ERP record as the read-back sees it (statuses: open, paid)."""
    when = date.fromisoformat(d.data["date"]) if "date" in d.data else date(1970, 1, 1)
    currency = d.currency or ""
    if d.kind == "payment":
        return PaymentDocument(
            key=d.erp_id,
            ref=d.external_ref,
            origin=d.data.get("origin", "salesforce"),
            customer_ref=customer_ref,
            currency=currency,
            amount=d.total,
            doc_date=when,
            applications=tuple((i, Decimal(a)) for i, a in d.data.get("applications", ())),
        )
    if d.kind == "journal":
        return JournalDocument(
            key=d.erp_id,
            ref=d.external_ref,
            doc_type="journal",
            customer_ref=customer_ref,
            currency=currency,
            period=d.data["period"],
            doc_date=when,
            lines=tuple(
                JournalLineRow(account=a, debit=Decimal(dr), credit=Decimal(cr))
                for a, dr, cr in d.data.get("lines", ())
            ),
        )
    return ArDocument(
        key=d.erp_id,
        ref=d.external_ref,
        doc_type=d.kind,
        customer_ref=customer_ref,
        currency=currency,
        amount=d.total,
        doc_date=when,
        status="paid" if d.open == 0 else "open",
        balance=d.open,
    )


_OrgDoc = ArDocument | PaymentDocument | JournalDocument
_ORG_KINDS: dict[type, ReadbackKind] = {
    ArDocument: ReadbackKind.AR,
    PaymentDocument: ReadbackKind.PAYMENTS,
    JournalDocument: ReadbackKind.JOURNALS,
}


def _org_doc(kind: ReadbackKind, raw: dict[str, Any]) -> _OrgDoc:
    """A record of the fake org back from its JSON state."""
    money = {k: Decimal(v) for k in ("amount", "balance") if (v := raw.get(k)) is not None}
    when = date.fromisoformat(raw["doc_date"])
    if kind == ReadbackKind.PAYMENTS:
        apps = tuple((i, Decimal(a)) for i, a in raw["applications"])
        return PaymentDocument(**{**raw, **money, "doc_date": when, "applications": apps})
    if kind == ReadbackKind.JOURNALS:
        lines = tuple(
            JournalLineRow(
                account=x["account"], debit=Decimal(x["debit"]), credit=Decimal(x["credit"])
            )
            for x in raw["lines"]
        )
        return JournalDocument(**{**raw, "doc_date": when, "lines": lines})
    return ArDocument(**{**raw, **money, "doc_date": when})


_BATCH_TYPES = {
    CustomerUpserted: EventType.CUSTOMER_UPSERTED,
    RevenueRecognized: EventType.REVENUE_RECOGNIZED,
}


class FakeSetupError(RevbridgeError, ValueError):
    """A fault spec or a state file the fakes cannot use; the message says which and why."""


@dataclass
class Faults:
    """What goes wrong on the next calls. Counters count down as calls consume them."""

    down: bool = False
    # The system refuses the integration's credentials (a revoked token, a locked user):
    # every call is a 401 until it is set back (``AccessRefused``, decision 0038).
    refuse_access: bool = False
    fail_next: int = 0
    throttle_next: int = 0
    retry_after: timedelta | None = timedelta(seconds=1)
    lose_next_response: int = 0
    terminal_next: int = 0
    error_rate: float = 0.0
    lost_response_rate: float = 0.0
    latency_s: float = 0.0
    # Chaos: the worker process holding the call dies (SIGKILL) before calling, or right
    # after the ERP committed and before the answer is recorded.
    die_before_call_rate: float = 0.0
    die_after_commit_rate: float = 0.0
    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        rates = (
            "error_rate",
            "lost_response_rate",
            "die_before_call_rate",
            "die_after_commit_rate",
        )
        for name in rates:
            rate = getattr(self, name)
            if not 0 <= rate <= 1:
                raise FakeSetupError(f"{name}={rate}: a rate is a share, from 0 to 1")
        for name in ("fail_next", "throttle_next", "lose_next_response", "terminal_next"):
            if getattr(self, name) < 0:
                raise FakeSetupError(f"{name}={getattr(self, name)}: cannot be negative")
        if self.latency_s < 0:
            raise FakeSetupError(f"latency_s={self.latency_s}: cannot be negative")
        self._rng = random.Random(self.seed)  # noqa: S311 - fault injection, not security

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """``"error_rate=0.1,lost_response_rate=0.05,latency_s=0.01,seed=7,down=0"``; a key
        that is not a fault, or a value that is not its kind, raises ``FakeSetupError``."""
        kwargs: dict[str, Any] = {}
        fields = {
            f: t
            for f, t in cls.__annotations__.items()
            if not f.startswith("_") and f != "retry_after"
        }
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = (x.strip() for x in part.partition("="))
            if key not in fields:
                raise FakeSetupError(f"{key!r} is not a fault; known: {', '.join(sorted(fields))}")
            if not sep or not value:
                raise FakeSetupError(f"{key} needs a value ({key}=...)")
            kind = fields[key]
            if kind == "bool":
                if value.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                    raise FakeSetupError(f"{key}={value!r}: not 1/0, true/false")
                kwargs[key] = value.lower() in ("1", "true", "yes", "on")
                continue
            try:
                kwargs[key] = int(value) if kind == "int" else float(value)
            except ValueError:
                want = "a whole number" if kind == "int" else "a number"
                raise FakeSetupError(f"{key}={value!r}: not {want}") from None
        return cls(**kwargs)

    def before_call(self) -> None:
        if self.die_before_call_rate and self._rng.random() < self.die_before_call_rate:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.down:
            raise TransientError("connection refused: the system is down")
        if self.refuse_access:
            raise AccessRefused("401 Unauthorized: the integration's credentials were refused")
        if self.throttle_next > 0:
            self.throttle_next -= 1
            raise RateLimited("429 Too Many Requests", retry_after=self.retry_after)
        if self.fail_next > 0:
            self.fail_next -= 1
            raise TransientError("503 Service Unavailable")
        if self.terminal_next > 0:
            self.terminal_next -= 1
            raise TerminalError("400 Bad Request: rejected by the system's validation")
        if self.error_rate and self._rng.random() < self.error_rate:
            raise TransientError("500 Internal Server Error")

    def after_write(self) -> None:
        """The write committed; maybe the response never reaches the caller."""
        if self.die_after_commit_rate and self._rng.random() < self.die_after_commit_rate:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.lose_next_response > 0:
            self.lose_next_response -= 1
            raise TransientError("read timeout: the request was sent, no response came back")
        if self.lost_response_rate and self._rng.random() < self.lost_response_rate:
            raise TransientError("connection reset after the request was sent")


log = structlog.get_logger("revbridge.testing")


class FaultsWatch:
    """A fake's fault spec as its config file has it (``[section] faults``), read again
    when the file changes (its modification time, looked at on every call): a running worker
    sees ``down=1`` removed, or added, without a restart. A spec that did not change keeps
    the faults as they are (counters included); a file that cannot be read or a spec that
    is not valid (an edit half-saved) keeps them too, with a warning.

    The fault spec is the one setting of the section that a running fake takes: it holds
    the call latency too (``latency_s``). The fake's other settings, ``state_file`` and
    ``shared``, wait for a restart: a fake that changed files while it runs would split the
    system's records between two files, and one that stopped sharing would write its copy
    over the other processes' (``RESTART_ONLY``); a change to one is logged as waiting for
    a restart. The section's other keys (``rate_limit_per_s``, ``daily_call_budget``,
    ``capture_interval_s``) are the hub's, not the fake's: the engine reads them, for a
    real system as for a fake, at its start."""

    RESTART_ONLY = ("state_file", "shared")

    def __init__(self, path: Path, section: str, spec: str) -> None:
        self.path = path
        self.section = section
        self.spec = spec
        self._mtime_ns = self._mtime()
        # ``spec`` comes from settings read earlier (a worker's, at its start), and the file
        # may have changed since: a fake built later from them (each reconciliation run's)
        # would keep the start's faults, an outage long over, until the next edit. Such a
        # fake takes the file's at its first call, quietly (not news: every run would say it).
        self._quiet = False
        try:
            now, self._restart_only = self._read()
        except (OSError, ValueError, AttributeError):  # refresh() says so, at the next change
            self._restart_only = {}
        else:
            if now != spec:
                self._mtime_ns, self._quiet = None, True

    def _mtime(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return None

    def _read(self) -> tuple[str, dict[str, Any]]:
        """The section's fault spec and its settings taken at a restart only."""
        section = tomllib.loads(self.path.read_text(encoding="utf-8")).get(self.section, {})
        later = {key: section.get(key) for key in self.RESTART_ONLY}
        return str(section.get("faults", "")), later

    def refresh(self, faults: Faults) -> Faults:
        """``faults``, or new ones when the file's spec changed since the last look."""
        mtime = self._mtime()
        if mtime is None or mtime == self._mtime_ns:
            return faults
        self._mtime_ns = mtime
        try:
            spec, later = self._read()
            fresh = Faults.parse(spec)
        except (OSError, ValueError, AttributeError) as exc:  # TOMLDecodeError, FakeSetupError
            log.warning("fake: faults kept, the config file cannot be read", why=str(exc))
            return faults
        for key, value in later.items():
            was = self._restart_only.get(key)
            if value != was:
                log.warning(
                    "fake: setting changed, taken at the next start",
                    section=self.section,
                    setting=key,
                    was=was,
                    now=value,
                )
        self._restart_only = later
        quiet, self._quiet = self._quiet, False
        if spec == self.spec:
            return faults
        say = log.debug if quiet else log.warning
        say("fake: faults changed", section=self.section, was=self.spec, now=spec)
        self.spec = spec
        return fresh


class _FaultyFake:
    """What both fakes do on every call: count it, take the faults in force, inject them."""

    faults: Faults
    faults_watch: FaultsWatch | None
    calls: Counter[str]

    async def _call(self, name: str) -> None:
        self.calls[name] += 1
        if self.faults_watch is not None:
            self.faults = self.faults_watch.refresh(self.faults)
        if self.faults.latency_s:
            await asyncio.sleep(self.faults.latency_s)
        self.faults.before_call()

    def _after_write(self) -> None:
        """After a write committed: a lost response may be injected (the faults in force)."""
        self.faults.after_write()


def _load_state_file(path: Path, what: str, load: Callable[[dict[str, Any]], None]) -> None:
    """``load`` the JSON state in ``path``; one that is not ``what``'s is named, not a
    traceback."""
    try:
        load(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FakeSetupError(
            f"{path}: not a state file of {what} ({type(exc).__name__}: {exc}); move it away "
            "to start again from an empty one"
        ) from None


class _StateFile:
    """Where a fake keeps its state between runs (``path``; None keeps it in memory only).

    ``shared``: several processes use one fake through the file. Each transaction takes a
    file lock, loads the file's content, and writes it back when it changed something, so
    every process sees the others' changes. Otherwise the fake loads the file once and
    writes it when it closes: each process has its own copy, and the last to close wins.
    """

    def __init__(
        self,
        path: Path | None,
        what: str,
        *,
        shared: bool,
        load: Callable[[dict[str, Any]], None],
        dump: Callable[[], dict[str, Any]],
    ) -> None:
        self.path = path
        self.what = what
        self.shared = shared
        self._load = load
        self._dump = dump
        # One transaction at a time in this process; the file lock orders the processes.
        self._lock = asyncio.Lock()
        self._depth = 0  # transactions open in this process (a helper's inside a port call's)
        if path is not None and path.exists():
            self.load()

    def load(self) -> None:
        if self.path is not None:
            _load_state_file(self.path, self.what, self._load)

    def save(self) -> None:
        """Write the state, whole or not at all (a reader never sees half a file)."""
        if self.path is not None:
            tmp = self.path.with_suffix(self.path.suffix + ".tmp")
            tmp.write_text(json.dumps(self._dump()), encoding="utf-8")
            tmp.replace(self.path)

    def close(self) -> None:
        """A fake of its own writes its copy back; a shared one already did, per change."""
        if not self.shared:
            self.save()

    @contextmanager
    def locked(self, *, write: bool = True) -> Iterator[None]:
        """One transaction on the file's content (shared); in memory, nothing to do. Inside
        a transaction already (a helper in a port call's), it is part of that one: the file
        lock is not taken twice, and the outer transaction loads and writes."""
        if not self.shared or self.path is None or self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with self.path.with_suffix(".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._depth += 1
            try:
                if self.path.exists():
                    self.load()
                yield
                if write:
                    self.save()
            finally:
                self._depth -= 1
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def changing(self) -> Iterator[None]:
        """Changes made in the system outside a port call (a test or the demo acting in
        it): shared, on the file's content under its lock; written to the file when done,
        unless a transaction around them writes it."""
        outermost = not self._depth
        with self.locked():
            yield
        if outermost and not self.shared:
            self.save()

    def txn(self, *, write: bool = True, after: Callable[[], None] | None = None) -> _Txn:
        """One transaction of a port call: this process's lock, and shared, the file's
        (``locked``). ``after`` runs once it has committed (a fault injected after a write:
        a lost response), not when the call failed inside it."""
        return _Txn(self, write, after)


class _Txn:
    """``_StateFile.txn``: a class, not an ``asynccontextmanager``. Every call to a fake
    opens one, and two generator-based managers a call (the fake's and the file's) cost the
    zero-latency fake more than its own work, in the worker benchmark's measure of the hub."""

    __slots__ = ("_after", "_file", "_locked", "_write")

    def __init__(self, file: _StateFile, write: bool, after: Callable[[], None] | None) -> None:
        self._file, self._write, self._after = file, write, after
        self._locked: AbstractContextManager[None] | None = None

    async def __aenter__(self) -> None:
        file = self._file
        await file._lock.acquire()
        if file.shared and file.path is not None:
            try:
                self._locked = file.locked(write=self._write)
                self._locked.__enter__()
            except BaseException:
                file._lock.release()
                raise
        # A fake of its own: the in-process lock is the whole transaction.

    async def __aexit__(self, kind: type[BaseException] | None, exc: Any, tb: Any) -> None:
        try:
            if self._locked is not None:
                self._locked.__exit__(kind, exc, tb)
        finally:
            self._file._lock.release()
        if kind is None and self._after is not None:
            self._after()


def _hub_customer(d: _Doc) -> str | None:
    """The hub's reference of an ERP customer. One keyed in the ERP before go-live has none
    (the customer master links it by its number)."""
    return None if d.external_ref.startswith("erp-native:") else d.external_ref


def _entered_in_erp(d: _Doc) -> bool:
    """Cash entered in the ERP that the hub does not hold yet (not its own receipt, not
    rebuilt from the ledger)."""
    return d.data.get("origin") == "erp" and not d.data.get("captured")


@dataclass
class _Doc:
    kind: str
    external_ref: str
    erp_id: str
    customer: str | None
    currency: str | None
    total: Decimal
    open: Decimal
    data: dict[str, Any]
    # Bumped on every change: the read-back mark (reconciliation reads what changed since).
    seq: int = 0
    # When the last change happened in the ERP (ISO 8601): the capture's stamp, so that a
    # change read twice (two workers, a capture run again) is the same envelope.
    changed_at: str = ""


class FakeErp(_FaultyFake):
    """An ERP in memory: customers, AR invoices, cash receipts, credit memos, journals."""

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        state_file: Path | None = None,
        capabilities: Capabilities | None = None,
        name: str = SYSTEM_NAME,
        shared: bool = False,
        clock: Clock | None = None,
        faults_watch: FaultsWatch | None = None,
    ) -> None:
        self.faults = faults or Faults()
        self.faults_watch = faults_watch
        # The ERP's own clock: when a change happens, as its records keep it.
        self.clock: Clock = clock or SystemClock()
        self.state_file = state_file
        # Shared: several processes use one ERP through the state file (chaos tests, demos).
        self.shared = shared
        self._caps = capabilities or Capabilities(
            name=name,
            concurrency_limit=8,
            batch_formats=("jsonl",),
            batch_kinds=frozenset({RecordKind.CUSTOMER, RecordKind.JOURNAL}),
            idempotency="external_id",
        )
        self.docs: list[_Doc] = []
        self.calls: Counter[str] = Counter()
        self._next_id = 1
        self._seq = 0
        self.closed_periods: set[str] = set()
        self.batches_received: list[dict[str, object]] = []
        self.credit_hold: set[str] = set()
        self._file = _StateFile(
            state_file, "the fake ERP", shared=shared, load=self._load_state, dump=self._state
        )

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    # ----------------------------------------------------------------- inspection

    def count(self, kind: RecordKind | str, external_ref: str) -> int:
        return sum(1 for d in self.docs if d.kind == kind and d.external_ref == external_ref)

    def records(self, kind: RecordKind | str) -> list[_Doc]:
        return [d for d in self.docs if d.kind == kind]

    def duplicates(self) -> dict[tuple[str, str], int]:
        seen = Counter((d.kind, d.external_ref) for d in self.docs if d.kind != "customer")
        return {k: n for k, n in seen.items() if n > 1}

    # ----------------------------------------------------------------- port

    def _txn(self, *, write: bool = True) -> _Txn:
        """One ERP transaction. Shared mode: under a file lock, on the state file's content,
        so several worker processes see one ERP. After a write commits, a lost response may
        be injected (the caller never learns that it landed)."""
        return self._file.txn(write=write, after=self._after_write if write else None)

    def _new(self, kind: str, ref: str, **fields: Any) -> _Doc:
        doc = _Doc(kind=kind, external_ref=ref, erp_id=str(self._next_id), **fields)
        self._next_id += 1
        self.docs.append(doc)
        self.touch(doc)
        return doc

    def touch(self, doc: _Doc) -> None:
        """Mark ``doc`` changed now, so the next read-back and capture read it again."""
        self._seq += 1
        doc.seq = self._seq
        doc.changed_at = self.clock.now().isoformat()

    def _get(self, kind: str, erp_id: str) -> _Doc:
        for d in self.docs:
            if d.kind == kind and d.erp_id == erp_id:
                return d
        raise TerminalError(f"{kind} {erp_id} does not exist in the ERP")

    def _record(self, d: _Doc) -> ErpRecord:
        return ErpRecord(kind=RecordKind(d.kind), external_ref=d.external_ref, erp_id=d.erp_id)

    async def upsert_customer(
        self, external_ref: str, customer: CustomerUpserted, parent_erp_id: str | None
    ) -> ErpRecord:
        await self._call("upsert_customer")
        async with self._txn():
            return self._upsert_customer_row(external_ref, customer, parent_erp_id)

    def _upsert_customer_row(
        self, external_ref: str, customer: CustomerUpserted, parent_erp_id: str | None
    ) -> ErpRecord:
        existing = next(
            (d for d in self.docs if d.kind == "customer" and d.external_ref == external_ref),
            None,
        )
        data = {
            "name": customer.name,
            "parent": parent_erp_id,
            "currency": customer.currency,
            "tax_id": customer.tax_id,
            "website": customer.website,
            "industry": customer.industry,
            "billing_address": (
                None
                if customer.billing_address is None
                else dataclasses.asdict(customer.billing_address)
            ),
            "shipping_address": (
                None
                if customer.shipping_address is None
                else dataclasses.asdict(customer.shipping_address)
            ),
        }
        if existing is None:
            existing = self._new(
                "customer",
                external_ref,
                customer=None,
                currency=customer.currency,
                total=Decimal(0),
                open=Decimal(0),
                data=data,
            )
        else:
            existing.data.update(data)
            self.touch(existing)
        existing.data.setdefault("number", customer.erp_customer_number or f"C{existing.erp_id}")
        return dataclasses.replace(self._record(existing), number=existing.data["number"])

    def add_customer(self, number: str, name: str, **fields: Any) -> str:
        """A customer keyed in the ERP before go-live (no hub reference); returns its id.
        Shared: in the state file's ERP, as each helper that acts in the ERP."""
        with self._file.changing():
            doc = self._new(
                "customer",
                f"erp-native:{number}",
                customer=None,
                currency=fields.pop("currency", "USD"),
                total=Decimal(0),
                open=Decimal(0),
                data={"name": name, "number": number, **fields},
            )
        return doc.erp_id

    def customers(self) -> list[dict[str, Any]]:
        """Every customer as the ERP lists it (number, name, tax id, web site, address)."""
        return [
            {"erp_id": d.erp_id, "external_ref": d.external_ref, **d.data}
            for d in self.docs
            if d.kind == "customer"
        ]

    def edit_customer(self, erp_id: str, **fields: Any) -> None:
        """An accountant's edit of a customer in the ERP (name, billing_address, website,
        industry, tax_id, credit_hold): the next capture reads it."""
        with self._file.changing():
            doc = self._get("customer", erp_id)
            hold = fields.pop("credit_hold", None)
            if hold is not None:
                (self.credit_hold.add if hold else self.credit_hold.discard)(erp_id)
            doc.data.update(fields)
            self.touch(doc)

    async def capture_changes(
        self,
        watermark: str | None,
        *,
        max_rows: int = 10_000,
        with_master: bool = False,
        at: datetime | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """What changed since ``watermark``, like NetSuite's capture: customers as
        ``customer.credit_status_changed`` envelopes (``with_master``: the customer's master
        attributes as the ERP holds them beside each event, empty ones left out), and cash
        entered in the ERP (``enter_payment``; never the hub's own receipts, nor cash the
        hub already captured) as ``erp.payment.received``; the new mark.

        Each change is stamped with when it happened in the ERP (``at``: one time for all,
        a test's), so a change read again is the same envelope: the ledger counts it as a
        duplicate, never as a conflicting version."""
        await self._call("capture_changes")
        since = int(watermark or 0)
        async with self._txn(write=False):
            changed = sorted(
                (
                    d
                    for d in self.docs
                    if d.seq > since
                    and (d.kind == "customer" or (d.kind == "payment" and _entered_in_erp(d)))
                ),
                key=lambda d: d.seq,
            )[:max_rows]
            customers = {d.erp_id: d for d in self.docs if d.kind == "customer"}
        out: list[dict[str, Any]] = []
        for d in changed:
            stamp = at.isoformat() if at else d.changed_at
            if d.kind == "payment":
                out.append(self._payment_envelope(d, customers.get(d.customer or ""), stamp))
                continue
            hold = d.erp_id in self.credit_hold
            envelope: dict[str, Any] = {
                "type": "customer.credit_status_changed",
                "source": self.capabilities.name,
                "source_id": f"credit:{d.erp_id}",
                "source_version": str(d.seq),
                "occurred_at": stamp,
                "data": {
                    "erp_customer_number": d.data["number"],
                    # The hub's reference, as NetSuite's capture reads its external id.
                    "customer_id": _hub_customer(d),
                    "status": "on_hold" if hold else "active",
                    "credit_hold": hold,
                    "currency": d.currency,
                    "changed_at": stamp,
                },
            }
            if with_master:
                master = {k: d.data.get(k) for k in ERP_MASTER_ATTRIBUTES}
                address = master.get("billing_address")
                if address:
                    master["billing_address"] = {k: v for k, v in address.items() if v}
                envelope["master"] = {k: v for k, v in master.items() if v}
            out.append(envelope)
        mark = max((d.seq for d in changed), default=since)
        return out, str(mark)

    def _payment_envelope(self, d: _Doc, customer: _Doc | None, stamp: str) -> dict[str, Any]:
        return {
            "type": "erp.payment.received",
            "source": self.capabilities.name,
            "source_id": f"payment:{d.erp_id}",
            "source_version": str(d.seq),
            "occurred_at": stamp,
            "data": {
                "erp_payment_id": d.external_ref,
                "erp_customer_number": customer.data["number"] if customer else "",
                "customer_id": _hub_customer(customer) if customer else None,
                "currency": d.currency,
                "amount": str(d.total),
                "received_on": d.data["date"],
                "method": d.data["method"],
                "applications": [
                    {"invoice_id": invoice, "amount": amount}
                    for invoice, amount in d.data["applications"]
                ],
            },
        }

    async def adopt_customer(self, external_ref: str, erp_id: str) -> None:
        """Give an existing ERP customer the hub's reference (a go-live link). Shared: on
        the state file, as every change (no faults: the link rides on the upsert's call)."""
        async with self._file.txn():
            doc = self._get("customer", erp_id)
            doc.external_ref = external_ref
            self.touch(doc)

    async def create_invoice(
        self, external_ref: str, invoice: InvoicePosted, customer_erp_id: str
    ) -> ErpRecord:
        await self._call("create_invoice")
        async with self._txn():
            customer = self._get("customer", customer_erp_id)
            if customer.erp_id in self.credit_hold:
                raise TerminalError(f"customer {customer.erp_id} is on credit hold")
            period = invoice.invoice_date.strftime("%Y-%m")
            if period in self.closed_periods:
                raise TerminalError(f"period {period} is closed: posting refused")
            doc = self._new(
                "invoice",
                external_ref,
                customer=customer.erp_id,
                currency=invoice.currency,
                total=invoice.total,
                open=invoice.total,
                data={"number": invoice.invoice_number, "date": invoice.invoice_date.isoformat()},
            )
            return self._record(doc)

    def _apply(self, invoice_erp_ids: Mapping[str, str], amounts: Mapping[str, Decimal]) -> None:
        targets = [(self._get("invoice", invoice_erp_ids[k]), a) for k, a in amounts.items()]
        for inv, amount in targets:
            if amount > inv.open:
                raise TerminalError(
                    f"cannot apply {amount} to invoice {inv.erp_id}: only {inv.open} is open"
                )
        for inv, amount in targets:
            inv.open -= amount
            self.touch(inv)

    async def record_payment(
        self,
        external_ref: str,
        payment: PaymentReceived,
        customer_erp_id: str,
        invoice_erp_ids: Mapping[str, str],
    ) -> ErpRecord:
        await self._call("record_payment")
        async with self._txn():
            self._get("customer", customer_erp_id)
            self._apply(invoice_erp_ids, {a.invoice_id: a.amount for a in payment.applications})
            doc = self._new(
                "payment",
                external_ref,
                customer=customer_erp_id,
                currency=payment.currency,
                total=payment.amount,
                open=Decimal(0),
                data={
                    "method": payment.method,
                    "date": payment.received_on.isoformat(),
                    "applications": [[a.invoice_id, str(a.amount)] for a in payment.applications],
                },
            )
            return self._record(doc)

    async def create_credit_memo(
        self,
        external_ref: str,
        memo: CreditMemoIssued,
        customer_erp_id: str,
        invoice_erp_ids: Mapping[str, str],
    ) -> ErpRecord:
        await self._call("create_credit_memo")
        async with self._txn():
            self._get("customer", customer_erp_id)
            self._apply(invoice_erp_ids, {a.invoice_id: a.amount for a in memo.applications})
            doc = self._new(
                "credit_memo",
                external_ref,
                customer=customer_erp_id,
                currency=memo.currency,
                total=memo.total,
                open=memo.total - sum((a.amount for a in memo.applications), Decimal(0)),
                data={"number": memo.credit_memo_number, "date": memo.issued_on.isoformat()},
            )
            return self._record(doc)

    async def post_journal(
        self, external_ref: str, entry: RevenueRecognized, customer_erp_id: str | None
    ) -> ErpRecord:
        await self._call("post_journal")
        async with self._txn():
            return self._post_journal_row(external_ref, entry, customer_erp_id)

    def _post_journal_row(
        self, external_ref: str, entry: RevenueRecognized, customer_erp_id: str | None = None
    ) -> ErpRecord:
        if entry.period in self.closed_periods:
            raise TerminalError(f"period {entry.period} is closed: posting refused")
        debit = sum((line.debit for line in entry.lines), Decimal(0))
        doc = self._new(
            "journal",
            external_ref,
            customer=customer_erp_id,
            currency=entry.lines[0].currency,
            total=debit,
            open=Decimal(0),
            data={
                "period": entry.period,
                "date": entry.entry_date.isoformat(),
                "lines": [[x.account, str(x.debit), str(x.credit)] for x in entry.lines],
            },
        )
        return self._record(doc)

    async def find(self, kind: RecordKind, external_ref: str) -> ErpRecord | None:
        await self._call("find")
        async with self._txn(write=False):
            for d in self.docs:
                if d.kind == kind and d.external_ref == external_ref:
                    return self._record(d)
            return None

    def enter_payment(self, payment: ErpPaymentReceived, *, captured: bool = False) -> _Doc:
        """Cash an accountant enters in the ERP (a wire, a lockbox file): a cash receipt
        whose reference is the ERP's own payment id, applied to invoices by their refs.
        ``captured``: the hub already holds it as an event (the ERP rebuilt from the
        ledger), so the capture does not read it again."""
        with self._file.changing():
            return self._enter_payment_row(payment, captured=captured)

    def _enter_payment_row(self, payment: ErpPaymentReceived, *, captured: bool) -> _Doc:
        invoices = {d.external_ref: d.erp_id for d in self.docs if d.kind == "invoice"}
        customer = next(
            (
                d.erp_id
                for d in self.docs
                if d.kind == "customer" and d.external_ref == payment.customer_id
            ),
            None,
        )
        unknown = [a.invoice_id for a in payment.applications if a.invoice_id not in invoices]
        if unknown:
            raise TerminalError(
                f"payment {payment.erp_payment_id}: invoice {unknown[0]} is not in the ERP; "
                "cash is applied to invoices the ERP holds"
            )
        self._apply(
            {a.invoice_id: invoices[a.invoice_id] for a in payment.applications},
            {a.invoice_id: a.amount for a in payment.applications},
        )
        return self._new(
            "payment",
            payment.erp_payment_id,
            customer=customer,
            currency=payment.currency,
            total=payment.amount,
            open=Decimal(0),
            data={
                "method": payment.method,
                "date": payment.received_on.isoformat(),
                "origin": "erp",
                "applications": [[a.invoice_id, str(a.amount)] for a in payment.applications],
                **({"captured": True} if captured else {}),
            },
        )

    async def enter_payments(
        self, payments: Sequence[ErpPaymentReceived], *, captured: bool = False
    ) -> int:
        """``enter_payment`` for each payment not in the ERP yet, in one transaction; one
        that cannot be applied (its invoice is not here, or not that open) is left out.
        Returns how many were entered."""
        entered = 0
        async with self._txn():
            for payment in payments:
                if self.count("payment", payment.erp_payment_id):
                    continue
                try:
                    self._enter_payment_row(payment, captured=captured)
                except TerminalError:
                    continue
                entered += 1
        return entered

    # ----------------------------------------------------------------- read-back

    async def read(self, kind: ReadbackKind, after: str | None, limit: int) -> ReadPage:
        """What changed after the mark ``after`` (a change sequence number), oldest first."""
        await self._call("read")
        async with self._txn(write=False):
            since = int(after) if after else 0
            kinds = _READBACK_KINDS[kind]
            changed = sorted(
                (d for d in self.docs if d.kind in kinds and d.seq > since), key=lambda d: d.seq
            )[:limit]
            customers = {d.erp_id: d.external_ref for d in self.docs if d.kind == "customer"}
            return ReadPage(
                documents=tuple(_read_doc(d, customers.get(d.customer or "")) for d in changed),
                mark=str(changed[-1].seq) if changed else after,
            )

    # ----------------------------------------------------------------- batch import

    @property
    def batch_format(self) -> str:
        return "jsonl"

    def render_batch(self, kind: RecordKind, items: Sequence[BatchItem]) -> bytes:
        lines = []
        for item in items:
            event_type = _BATCH_TYPES[type(item.data)]
            lines.append(
                json.dumps(
                    {
                        "kind": kind.value,
                        "external_ref": item.external_ref,
                        "type": event_type.value,
                        "data": json.loads(encode_payload(event_type, item.data)),
                        "refs": dict(item.refs),
                    },
                    sort_keys=True,
                )
            )
        return ("\n".join(lines) + "\n").encode()

    async def submit_batch(
        self, kind: RecordKind, content: bytes, manifest: Mapping[str, object]
    ) -> Sequence[BatchOutcome]:
        """Import a file like an ERP import job: all rows checked, each row applied or not."""
        await self._call("submit_batch")
        if hashlib.sha256(content).hexdigest() != manifest["sha256"]:
            raise TerminalError("batch file does not match its manifest checksum")
        self.batches_received.append(dict(manifest))
        outcomes = []
        # One import job, one transaction: in shared mode every process sees its rows.
        async with self._txn():
            for row in (json.loads(line) for line in content.decode().splitlines() if line):
                data = decode_payload(EventType(row["type"]), json.dumps(row["data"]))
                ref = row["external_ref"]
                try:
                    if isinstance(data, CustomerUpserted):
                        parent = row["refs"].get(f"customer:{data.parent_customer_id}")
                        if data.parent_customer_id and parent is None:
                            parent = next(
                                (
                                    d.erp_id
                                    for d in self.docs
                                    if d.kind == "customer"
                                    and d.external_ref == data.parent_customer_id
                                ),
                                None,
                            )
                        rec = self._upsert_customer_row(ref, data, parent)
                    elif isinstance(data, RevenueRecognized):
                        existing = next(
                            (d for d in self.docs if d.kind == "journal" and d.external_ref == ref),
                            None,
                        )
                        rec = (
                            self._record(existing)
                            if existing
                            else self._post_journal_row(ref, data)
                        )
                    else:
                        raise TerminalError(f"{type(data).__name__} cannot be imported in a batch")
                except TerminalError as exc:
                    outcomes.append(BatchOutcome(external_ref=ref, error=str(exc)))
                else:
                    outcomes.append(BatchOutcome(external_ref=ref, erp_id=rec.erp_id))
        return outcomes

    async def close(self) -> None:
        self._file.close()

    # ----------------------------------------------------------------- persistence

    def _state(self) -> dict[str, Any]:
        return {
            "next_id": self._next_id,
            "seq": self._seq,
            "closed_periods": sorted(self.closed_periods),
            "credit_hold": sorted(self.credit_hold),
            "docs": [{**d.__dict__, "total": str(d.total), "open": str(d.open)} for d in self.docs],
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        # A record from a state file older than the stamps: changed when it was loaded (kept
        # from the next save on).
        loaded = self.clock.now().isoformat()
        self._next_id = state["next_id"]
        self._seq = state.get("seq", self._next_id)
        self.closed_periods = set(state["closed_periods"])
        self.credit_hold = set(state["credit_hold"])
        self.docs = [
            _Doc(
                **{
                    "seq": int(d["erp_id"]),  # a state file from before read-back
                    **d,
                    "changed_at": d.get("changed_at") or loaded,
                    "total": Decimal(d["total"]),
                    "open": Decimal(d["open"]),
                }
            )
            for d in state["docs"]
        ]


class FakeSalesforce(_FaultyFake):
    """The Salesforce side in memory, both ports of it.

    * **Source** (``SourcePort``): the org's change feed. ``post`` makes a change in the org
      (an Account saved, an invoice posted, a payment taken, a credit memo issued, revenue
      recognized) as the canonical envelope the capture reads; ``changes`` reads the feed
      after a watermark, ``page_size`` at a time, through the injected faults.
    * **Write-back** (``SalesforcePort``): upserts by external id, so repeats change nothing.
    """

    side = "salesforce"
    name = "fake-salesforce"

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        state_file: Path | None = None,
        page_size: int = 500,
        shared: bool = False,
        faults_watch: FaultsWatch | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size: {page_size} must be at least 1")
        self.page_size = page_size
        self.feed: list[tuple[int, dict[str, Any]]] = []
        self.faults = faults or Faults()
        self.faults_watch = faults_watch
        self.state_file = state_file
        self.writes: dict[str, dict[str, Any]] = {}
        self.invoice_paid: defaultdict[str, Decimal] = defaultdict(Decimal)
        self.accounts: dict[str, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()
        # The org's own records, as the read-back sees them: (kind, key) -> (seq, document).
        self.org: dict[tuple[ReadbackKind, str], tuple[int, _OrgDoc]] = {}
        # The ledger event each record was last put from ("kind|key" -> events.id), so that
        # a newer version in the ledger reaches the org (services.recon_readback).
        self.from_ledger: dict[str, int] = {}
        # What each credit memo was applied to (memo id -> [(invoice id, amount)]), so that
        # a revised memo takes its earlier applications back from their invoices.
        self.memo_applications: dict[str, list[tuple[str, Decimal]]] = {}
        self._seq = 0
        # Shared: several processes (workers, a capture, `generate --into-salesforce`) use
        # one org through the state file, as with the fake ERP.
        self._file = _StateFile(
            state_file, "the fake org", shared=shared, load=self._load_state, dump=self._state
        )

    @property
    def shared(self) -> bool:
        return self._file.shared

    def _load_state(self, state: dict[str, Any]) -> None:
        self.writes = state["writes"]
        self.accounts = state["accounts"]
        self.invoice_paid = defaultdict(
            Decimal, {k: Decimal(v) for k, v in state["invoice_paid"].items()}
        )
        self._seq = state.get("seq", 0)
        self.feed = [(seq, env) for seq, env in state.get("feed", ())]
        self.from_ledger = dict(state.get("from_ledger", {}))
        self.memo_applications = {
            memo: [(invoice, Decimal(amount)) for invoice, amount in apps]
            for memo, apps in state.get("memo_applications", {}).items()
        }
        self.org = {}
        for kind, seq, raw in state.get("org", ()):
            doc = _org_doc(ReadbackKind(kind), raw)
            self.org[(ReadbackKind(kind), doc.key)] = (seq, doc)

    def _state(self) -> dict[str, Any]:
        return {
            "writes": self.writes,
            "accounts": self.accounts,
            "invoice_paid": {k: str(v) for k, v in self.invoice_paid.items()},
            "seq": self._seq,
            "feed": [[seq, env] for seq, env in self.feed],
            "from_ledger": self.from_ledger,
            "memo_applications": {
                memo: [[invoice, str(amount)] for invoice, amount in apps]
                for memo, apps in self.memo_applications.items()
            },
            "org": [
                [kind.value, seq, json.loads(json.dumps(dataclasses.asdict(d), default=str))]
                for (kind, _), (seq, d) in self.org.items()
            ],
        }

    def changing(self) -> AbstractContextManager[None]:
        """Changes made in the org outside the hub (``post``, ``put``, ``remove``), saved
        to the state file when they are done; shared, under its lock, on its content."""
        return self._file.changing()

    def _txn(self, *, write: bool = True, lossy: bool = False) -> _Txn:
        """One org transaction (shared: on the state file's content, under its lock). After
        a ``lossy`` write commits, a lost response may be injected."""
        return self._file.txn(write=write, after=self._after_write if lossy else None)

    # ----------------------------------------------------------- the org's change feed

    def post(self, envelope: Mapping[str, Any]) -> int:
        """Make a change in the org, as the canonical envelope its capture reads; returns
        its place in the feed. A valid change is also the org's own record (``record``),
        for the read-back. An invalid one is kept as it is: the capture's ingest
        quarantines it with its reason, as it would a record the mapping got wrong."""
        kind = envelope.get("type")
        if kind in FROM_ERP:
            raise ValueError(
                f"{kind}: happens in the ERP, not in Salesforce; the org's change feed "
                "carries Salesforce-side changes only"
            )
        copy: dict[str, Any] = json.loads(json.dumps(envelope, default=str))
        self._seq += 1
        place = self._seq
        self.feed.append((place, copy))
        try:
            data = decode_obj(copy).data
        except DecodeError:
            return place
        if isinstance(data, CustomerUpserted):
            self.accounts.setdefault(data.customer_id, {})["name"] = data.name
        elif isinstance(
            data, InvoicePosted | CreditMemoIssued | PaymentReceived | RevenueRecognized
        ):
            self.record(data)
        return place

    async def changes(self, watermark: str | None) -> tuple[list[dict[str, Any]], str]:
        """The feed's changes after ``watermark`` (a place in the feed), oldest first, at
        most ``page_size``, and the watermark to read on from."""
        await self._call("changes")
        try:
            since = int(watermark) if watermark else 0
        except ValueError:
            raise TerminalError(f"watermark {watermark!r}: not a place in the feed") from None
        async with self._txn(write=False):
            start = bisect.bisect_right(self.feed, since, key=lambda item: item[0])
            page = self.feed[start : start + self.page_size]
        mark = str(page[-1][0]) if page else (watermark or "0")
        return [json.loads(json.dumps(env)) for _, env in page], mark

    # ----------------------------------------------------------------- the org's records

    def put(self, document: _OrgDoc) -> None:
        """Create or change a record in the org (an invoice posted, a payment processed...)."""
        kind = _ORG_KINDS[type(document)]
        self._seq += 1
        self.org[(kind, document.key)] = (self._seq, document)

    def record(
        self, data: InvoicePosted | CreditMemoIssued | PaymentReceived | RevenueRecognized
    ) -> None:
        """What a Salesforce-side event says the org holds, as the org's own record."""
        if isinstance(data, InvoicePosted):
            # ERP cash written back before the invoice was recorded here already counts.
            paid = self.invoice_paid.get(data.invoice_id, Decimal(0))
            self.put(
                ArDocument(
                    key=data.invoice_id,
                    ref=data.invoice_id,
                    doc_type="invoice",
                    customer_ref=data.customer_id,
                    currency=data.currency,
                    amount=data.total,
                    doc_date=data.invoice_date,
                    status="Unpaid"
                    if not paid
                    else "Paid"
                    if paid >= data.total
                    else "Partially Paid",
                    balance=data.total - paid,
                )
            )
        elif isinstance(data, CreditMemoIssued):
            applied = sum((a.amount for a in data.applications), Decimal(0))
            self.put(
                ArDocument(
                    key=data.credit_memo_id,
                    ref=data.credit_memo_id,
                    doc_type="credit_memo",
                    customer_ref=data.customer_id,
                    currency=data.currency,
                    amount=data.total,
                    doc_date=data.issued_on,
                    status="Paid" if applied >= data.total else "Posted",
                    balance=data.total - applied,
                )
            )
            for a in data.applications:
                self._pay_invoice(a.invoice_id, a.amount)
            self.memo_applications[data.credit_memo_id] = [
                (a.invoice_id, a.amount) for a in data.applications
            ]
        elif isinstance(data, PaymentReceived):
            self.put(
                PaymentDocument(
                    key=data.payment_id,
                    ref=data.payment_id,
                    origin="salesforce",
                    customer_ref=data.customer_id,
                    currency=data.currency,
                    amount=data.amount,
                    doc_date=data.received_on,
                    applications=tuple((a.invoice_id, a.amount) for a in data.applications),
                )
            )
            for a in data.applications:
                self._pay_invoice(a.invoice_id, a.amount)
        else:
            self.put(
                JournalDocument(
                    key=data.schedule_entry_id,
                    ref=data.schedule_entry_id,
                    doc_type="revenue",
                    customer_ref=data.customer_id,
                    currency=data.lines[0].currency,
                    period=data.period,
                    doc_date=data.entry_date,
                    lines=tuple(
                        JournalLineRow(account=x.account, debit=x.debit, credit=x.credit)
                        for x in data.lines
                    ),
                )
            )

    def revise(
        self, data: InvoicePosted | CreditMemoIssued | PaymentReceived | RevenueRecognized
    ) -> None:
        """A newer version of a record the org holds (Salesforce changed it after the hub
        had it): its header and amounts change, what was already settled on it stays.

        An invoice keeps what was paid on it; a payment's or a credit memo's earlier
        applications are taken back from their invoices before the new ones apply (a memo
        recorded before the org kept them keeps its earlier applications)."""
        if isinstance(data, CreditMemoIssued) and data.credit_memo_id in self.memo_applications:
            for invoice_ref, amount in self.memo_applications[data.credit_memo_id]:
                self._pay_invoice(invoice_ref, -amount)
            self.record(data)
            return
        if isinstance(data, InvoicePosted | CreditMemoIssued):
            found = self.org.get(
                (
                    ReadbackKind.AR,
                    data.invoice_id if isinstance(data, InvoicePosted) else data.credit_memo_id,
                )
            )
            old = found[1] if found else None
            if not isinstance(old, ArDocument):
                self.record(data)
                return
            settled = old.amount - (old.balance if old.balance is not None else old.amount)
            total = data.total
            if isinstance(data, InvoicePosted):
                status = (
                    "Unpaid" if not settled else "Paid" if settled >= total else "Partially Paid"
                )
                doc_date = data.invoice_date
            else:
                status = "Paid" if settled >= total else "Posted"
                doc_date = data.issued_on
            self.put(
                dataclasses.replace(
                    old,
                    customer_ref=data.customer_id,
                    currency=data.currency,
                    amount=total,
                    doc_date=doc_date,
                    status=status,
                    balance=total - settled,
                )
            )
        elif isinstance(data, PaymentReceived):
            found = self.org.get((ReadbackKind.PAYMENTS, data.payment_id))
            old = found[1] if found else None
            if isinstance(old, PaymentDocument):
                for invoice_ref, amount in old.applications:
                    self._pay_invoice(invoice_ref, -amount)
            self.record(data)
        else:
            self.record(data)

    def remove(self, kind: ReadbackKind, key: str) -> None:
        """Delete a record from the org (the read-back store keeps what it read)."""
        self.org.pop((kind, key), None)

    def get(self, kind: ReadbackKind, key: str) -> _OrgDoc | None:
        found = self.org.get((kind, key))
        return found[1] if found else None

    async def read(self, kind: ReadbackKind, after: str | None, limit: int) -> ReadPage:
        """The org's records changed after the mark ``after`` (a sequence number)."""
        await self._call("read")
        since = int(after) if after else 0
        async with self._txn(write=False):
            changed = sorted(
                ((seq, d) for (k, _), (seq, d) in self.org.items() if k == kind and seq > since),
                key=lambda x: x[0],
            )[:limit]
        return ReadPage(
            documents=tuple(d for _, d in changed),
            mark=str(changed[-1][0]) if changed else after,
        )

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(name="fake-salesforce", concurrency_limit=8, batch_size=200)

    async def apply_erp_payment(self, external_ref: str, payment: ErpPaymentReceived) -> str:
        await self._call("apply_erp_payment")
        async with self._txn(lossy=True):
            if external_ref not in self.writes:
                for a in payment.applications:
                    self.invoice_paid[a.invoice_id] += a.amount
                    self._pay_invoice(a.invoice_id, a.amount)
                self.put(
                    PaymentDocument(
                        key=f"pay-{external_ref}",
                        ref=payment.erp_payment_id,
                        origin="erp",
                        customer_ref=payment.customer_id,
                        currency=payment.currency,
                        amount=payment.amount,
                        doc_date=payment.received_on,
                        applications=tuple((a.invoice_id, a.amount) for a in payment.applications),
                    )
                )
            self.writes[external_ref] = {"kind": "erp_payment", "amount": str(payment.amount)}
        return external_ref

    def _pay_invoice(self, invoice_ref: str, amount: Decimal) -> None:
        """The org's invoice balance and payment status follow an applied payment.

        The org keys an invoice by its Salesforce id, which is also its ref: one look-up.
        """
        found = self.org.get((ReadbackKind.AR, invoice_ref))
        doc = found[1] if found else None
        if isinstance(doc, ArDocument) and doc.ref == invoice_ref:
            balance = (doc.balance if doc.balance is not None else doc.amount) - amount
            # A payment taken back (a negative amount) can leave it unpaid again.
            status = (
                "Paid" if balance <= 0 else "Unpaid" if balance >= doc.amount else "Partially Paid"
            )
            self.put(dataclasses.replace(doc, balance=balance, status=status))

    async def update_credit_status(
        self, external_ref: str, status: CustomerCreditStatusChanged
    ) -> str:
        await self._call("update_credit_status")
        async with self._txn(lossy=True):
            key = status.customer_id or self._account_of(status.erp_customer_number)
            self.accounts.setdefault(key, {}).update(
                {
                    "erp_customer_number": status.erp_customer_number,
                    "credit_hold": status.credit_hold,
                    "credit_limit": (
                        str(status.credit_limit) if status.credit_limit is not None else None
                    ),
                    "payment_terms": status.payment_terms,
                    "status": status.status,
                }
            )
            self.writes[external_ref] = {"kind": "credit_status", "account": key}
        return external_ref

    def _account_of(self, erp_number: str) -> str:
        """The Account holding ``erp_number``, as the real write-back queries it; an ERP
        customer no Account knows is refused, never written to an Account of its own."""
        for account_id, fields in self.accounts.items():
            if fields.get("erp_customer_number") == erp_number:
                return account_id
        raise TerminalError(
            f"no Salesforce Account has ERP customer number {erp_number!r}: the customer "
            "must be synced (or linked in the crosswalk) before its ERP records"
        )

    async def revert_account_fields(self, account_id: str, fields: Mapping[str, Any]) -> None:
        """Write the owner's values back over a non-owner's change on the Account."""
        await self._call("revert_account_fields")
        async with self._txn():
            self.accounts.setdefault(account_id, {}).update(fields)

    async def _upsert(self, external_ref: str, record: dict[str, Any]) -> str:
        async with self._txn(lossy=True):
            self.writes[external_ref] = record
        return external_ref

    async def record_gl_posting(self, external_ref: str, journal: GlPosted) -> str:
        await self._call("record_gl_posting")
        return await self._upsert(external_ref, {"kind": "gl", "journal": journal.erp_journal_id})

    async def refresh_reporting(self, external_ref: str, report: ReportingRefreshed) -> str:
        await self._call("refresh_reporting")
        return await self._upsert(
            external_ref, {"kind": "reporting", "customers": len(report.balances)}
        )

    async def find(self, external_ref: str) -> str | None:
        await self._call("find")
        async with self._txn(write=False):
            return external_ref if external_ref in self.writes else None

    async def close(self) -> None:
        self._file.close()

    def save(self) -> None:
        """Write the org to ``state_file`` (when it has one), for the next process to load.
        A shared org is written by each change; use ``changing`` to make some."""
        if self.shared:
            raise FakeSetupError(
                "a shared fake org is saved by each change: make changes inside changing()"
            )
        self._file.save()
