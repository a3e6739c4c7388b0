"""SQLite storage for the sandbox: one connection, its schema, its seed data and its clock.

One connection serves everything (record service, SuiteQL, admin, CSV jobs) behind one lock:
the sandbox is an emulator, and serialising writes keeps every rule check and the write it
guards in one transaction. Money is stored NUMERIC and read back through ``to_decimal``;
no arithmetic on money is done in SQL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

# (id, name, ISO code, symbol, precision, rate to the base currency USD)
_CURRENCIES = (
    (1, "US Dollar", "USD", "$", 2, "1"),
    (2, "Euro", "EUR", "€", 2, "1.08"),
    (3, "British Pound", "GBP", "£", 2, "1.27"),
    (4, "Japanese Yen", "JPY", "¥", 0, "0.0067"),
)
# (id, number, name, type, special type)
_ACCOUNTS = (
    (1, "1100", "Accounts Receivable", "AcctRec", "AcctRec"),
    (2, "1000", "Checking", "Bank", None),
    (3, "1010", "Undeposited Funds", "OthCurrAsset", "UndepFunds"),
    (4, "4000", "Subscription Revenue", "Income", None),
    (5, "4100", "Services Revenue", "Income", None),
    (6, "2400", "Deferred Revenue", "DeferRevenue", "DeferRevenue"),
    (7, "2200", "Sales Tax Payable", "OthCurrLiab", "SalesTaxPay"),
    (8, "3000", "Opening Balance Equity", "Equity", "OpeningBalEquity"),
    (9, "6100", "Bad Debt Expense", "Expense", None),
)
AR_ACCOUNT_ID = 1
UNDEPOSITED_FUNDS_ACCOUNT_ID = 3
# (id, name, days until net due)
_TERMS = ((1, "Due on receipt", 0), (2, "Net 15", 15), (3, "Net 30", 30), (4, "Net 60", 60))
# (id, item id, display name, income account)
_ITEMS = (
    (1, "SUB-ANNUAL", "Subscription - Annual", 4),
    (2, "SUB-MONTHLY", "Subscription - Monthly", 4),
    (3, "PS-HOURLY", "Professional Services", 5),
    (4, "SETUP", "Setup Fee", 5),
    (5, "USAGE", "Usage", 4),
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def to_decimal(value: object) -> Decimal:
    """A NUMERIC value read from SQLite as an exact Decimal (``str`` keeps its shortest form)."""
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | float | str):
        return Decimal(str(value))
    raise TypeError(f"not a number: {value!r}")


def round_money(amount: Decimal, precision: int) -> Decimal:
    """NetSuite rounds computed amounts half up to the currency's precision."""
    return amount.quantize(Decimal(1).scaleb(-precision), rounding=ROUND_HALF_UP)


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


class Storage:
    """The sandbox database. ``write()`` is a transaction; ``read()`` a locked connection."""

    def __init__(self, path: Path | None, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self.conn = sqlite3.connect(
            ":memory:" if path is None else str(path),
            check_same_thread=False,  # the lock, not the thread, guards the connection
            isolation_level=None,  # explicit BEGIN/COMMIT in write()
        )
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys = ON")
        schema = resources.files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")
        self.conn.executescript(schema)
        self._last_stamp = self._latest_stamp()
        if self.conn.execute("SELECT COUNT(*) FROM currency").fetchone()[0] == 0:
            with self.write() as conn:
                self._seed(conn)

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self.conn

    def now(self) -> datetime:
        return self._clock()

    def today(self) -> date:
        return self._clock().astimezone(UTC).date()

    def stamp(self) -> str:
        """A lastmodifieddate strictly later than every earlier one.

        Strictly increasing stamps let a caller page changes with ``lastmodifieddate > :mark``
        and never miss or repeat a row, even when two writes share a clock tick.
        """
        with self._lock:
            moment = max(self._clock(), self._last_stamp + timedelta(microseconds=1))
            self._last_stamp = moment
            return format_timestamp(moment)

    def _latest_stamp(self) -> datetime:
        row = self.conn.execute(
            "SELECT MAX(m) FROM (SELECT MAX(lastmodifieddate) AS m FROM customer"
            ' UNION ALL SELECT MAX(lastmodifieddate) FROM "transaction"'
            " UNION ALL SELECT MAX(lastmodifieddate) FROM accountingperiod)"
        ).fetchone()
        return parse_timestamp(row[0]) if row[0] else datetime.min.replace(tzinfo=UTC)

    def _seed(self, conn: sqlite3.Connection) -> None:
        stamp = self.stamp()
        conn.executemany(
            "INSERT INTO currency (id, name, symbol, displaysymbol, currencyprecision,"
            " exchangerate, isbasecurrency, lastmodifieddate) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(*c, "T" if c[2] == "USD" else "F", stamp) for c in _CURRENCIES],
        )
        conn.execute(
            "INSERT INTO subsidiary (id, name, fullname, currency, country, lastmodifieddate)"
            " VALUES (1, 'Parent Company', 'Parent Company', 1, 'US', ?)",
            (stamp,),
        )
        conn.executemany(
            "INSERT INTO account (id, acctnumber, fullname, accountsearchdisplayname, accttype,"
            " specialaccounttype, lastmodifieddate) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(i, n, name, f"{n} {name}", t, s, stamp) for i, n, name, t, s in _ACCOUNTS],
        )
        conn.executemany(
            "INSERT INTO term (id, name, daysuntilnetdue, lastmodifieddate) VALUES (?, ?, ?, ?)",
            [(*t, stamp) for t in _TERMS],
        )
        conn.executemany(
            "INSERT INTO item (id, itemid, displayname, itemtype, incomeaccount, lastmodifieddate)"
            " VALUES (?, ?, ?, 'Service', ?, ?)",
            [(*i, stamp) for i in _ITEMS],
        )
        self.open_year(conn, self.today().year)

    def open_year(self, conn: sqlite3.Connection, year: int) -> list[int]:
        """Create the twelve monthly posting periods of ``year`` (those missing); return ids."""
        stamp = self.stamp()
        created: list[int] = []
        for month in range(1, 13):
            start = date(year, month, 1)
            end = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
            cursor = conn.execute(
                "INSERT OR IGNORE INTO accountingperiod (periodname, startdate, enddate,"
                " lastmodifieddate) VALUES (?, ?, ?, ?)",
                (f"{_MONTHS[month - 1]} {year}", start.isoformat(), end.isoformat(), stamp),
            )
            if cursor.rowcount and cursor.lastrowid is not None:
                created.append(cursor.lastrowid)
        return created
