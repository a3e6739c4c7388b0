"""The Tryton target from the configuration: the managed local instance, or a server you run.

``[erp.tryton] url`` unset: the managed instance of ``erp.tryton_home`` (started if it is not
running). Set: that server, with ``database`` and ``login`` from the file and the password
from the environment variable ``password_env`` names; the managed instance is never started
nor read then. Every command that reaches Tryton builds it here (``build_erp``).

``check_tryton`` logs in and looks up the configured account codes: what a user gets wrong
(the URL, the database, the login, a code their chart does not have) is a ``ConfigError``
naming the setting, before a delivery fails on it.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from revbridge.config import Settings, TrytonSection
from revbridge.errors import ConfigError
from revbridge.tryton.adapter import DEFAULT_GL_ACCOUNTS, AccountMap, TrytonErp
from revbridge.tryton.rpc import TrytonAuthError, TrytonNoDatabase, TrytonUnreachable

__all__ = ["TrytonServerCheck", "account_map", "check_tryton", "tryton_erp"]


def _where(settings: Settings) -> str:
    return str(settings.path or "revbridge.toml")


def account_map(section: TrytonSection) -> AccountMap:
    """The account codes of ``[erp.tryton]``; ``gl_account_map`` merged over the defaults."""
    return AccountMap(
        gl_accounts={**DEFAULT_GL_ACCOUNTS, **section.gl_account_map},
        revenue=section.revenue_account,
        receivable=section.receivable_account,
        cash=section.cash_account,
        tax=section.tax_account,
        tax_name=section.tax_name or None,
    )


def tryton_erp(settings: Settings) -> TrytonErp:
    """The configured Tryton adapter (it logs in on its first call)."""
    erp = settings.raw.erp
    section = erp.tryton
    if section.url is None:
        from revbridge.tryton.instance import TrytonInstance

        # The managed local instance: started if it is not running (a second or so once its
        # template is cached), so that init, ingest and worker need nothing else.
        info = TrytonInstance(settings.path_in_base(erp.tryton_home)).up()
        return TrytonErp.connect(
            info.url,
            info.database,
            info.api_user,
            info.api_password,
            accounts=account_map(section),
            concurrency_limit=section.concurrency_limit,
            timeout=dt.timedelta(seconds=section.timeout_s),
        )
    password = os.environ.get(section.password_env)
    if not password:
        raise ConfigError(
            "environment",
            section.password_env,
            f"is not set: erp.tryton.url is set in {_where(settings)}, and the password of "
            f"Tryton user {section.login!r} comes from this variable (erp.tryton.password_env)",
        )
    return TrytonErp.connect(
        section.url,
        section.database or "",  # both set with url (TrytonSection checks it)
        section.login or "",
        password,
        accounts=account_map(section),
        concurrency_limit=section.concurrency_limit,
        timeout=dt.timedelta(seconds=section.timeout_s),
    )


@dataclass(frozen=True, slots=True)
class TrytonServerCheck:
    """What ``check_tryton`` found: where, as whom, which company and currency."""

    url: str
    database: str
    login: str
    company: str
    currency: str
    accounts: int  # account codes checked


def _account_settings(section: TrytonSection) -> list[tuple[str, str]]:
    """Each configured account code with the setting it comes from."""
    named = [
        ("erp.tryton.revenue_account", section.revenue_account),
        ("erp.tryton.receivable_account", section.receivable_account),
        ("erp.tryton.cash_account", section.cash_account),
        ("erp.tryton.tax_account", section.tax_account),
    ]
    for name, code in {**DEFAULT_GL_ACCOUNTS, **section.gl_account_map}.items():
        default = "" if name in section.gl_account_map else " (a default: map it to your code)"
        named.append((f'erp.tryton.gl_account_map."{name}"{default}', code))
    return named


async def check_tryton(settings: Settings, erp: TrytonErp) -> TrytonServerCheck:
    """Log in and look up every configured account code in the company's chart.

    Raises ``ConfigError`` naming the setting at fault: the URL (nothing answers there), the
    database (the server has none of that name), the login or password (refused), an account
    code (not in the chart). Transient trouble (a timeout, a 5xx) is left as it is.
    """
    section = settings.raw.erp.tryton
    where = _where(settings)
    client = erp.client
    managed = section.url is None
    try:
        await client.ensure_login()
    except TrytonNoDatabase as exc:
        key = "erp.tryton_home" if managed else "erp.tryton.database"
        raise ConfigError(
            where,
            key,
            f"{exc}: check the database name, and that the URL is the server's root "
            "(revbridge calls <url>/<database>/rpc/)",
        ) from exc
    except TrytonAuthError as exc:
        key = "erp.tryton_home" if managed else "erp.tryton.login"
        source = "" if managed else f" with the password in ${section.password_env}"
        raise ConfigError(
            where,
            key,
            f"Tryton at {client.url} (database {client.database!r}) refused user "
            f"{client.login_name!r}{source}: check the login and the password",
        ) from exc
    except TrytonUnreachable as exc:
        key = "erp.tryton_home" if managed else "erp.tryton.url"
        raise ConfigError(
            where,
            key,
            f"nothing answers at {client.url}: is the server running, and are the scheme, "
            f"host and port right? ({exc.__cause__!r})",
        ) from exc
    named = _account_settings(section)
    found = await erp.ops.existing_account_codes(sorted({code for _, code in named}))
    company, currency = await erp.company_name_and_currency()
    missing = [
        (
            key,
            f"no account with code {code!r} in the chart of {company!r} (database "
            f"{client.database!r})",
        )
        for key, code in named
        if code not in found
    ]
    if missing:
        raise ConfigError.of(where, missing)
    return TrytonServerCheck(
        url=client.url,
        database=client.database,
        login=client.login_name,
        company=company,
        currency=currency,
        accounts=len({code for _, code in named}),
    )
