"""The initialised Tryton database, built once and cached as a SQLite file.

Activating the accounting modules takes about 40 s; copying the result takes milliseconds. So
the first ``up`` builds a *template* (trytond-admin, then ``_bootstrap.py``, both in
subprocesses so that this process never imports trytond) and every later ``up`` or ``reset``
copies it.

A template is keyed by everything that changes its content: the versions of the installed
trytond distributions, the activated modules, the bootstrap script's own bytes and the year
around which its fiscal years are built. A new key simply builds a new file beside the old
ones; nothing is ever patched in place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from revbridge.errors import RevbridgeError

MODULES = (
    "account_invoice",
    "account_payment",
    "account_statement",
    "account_credit_limit",
    "account_product",
)
ADMIN_LOGIN = "admin"
API_LOGIN = "revbridge"
# Must match revbridge.tryton.server_cache.STAMP_SUFFIX, which this module cannot import
# (it imports trytond).
STAMP_SUFFIX = ".reset-stamp"
# Bumped when the layout of the cached files changes without the bootstrap script changing.
CACHE_FORMAT = 1
BOOTSTRAP = Path(__file__).with_name("_bootstrap.py")
# The template database is always built under this name; an instance may use another name,
# since a SQLite database's name is only its file name.
TEMPLATE_DATABASE = "template"


class TrytonSetupError(RevbridgeError):
    """The local Tryton instance could not be built, started or stopped.

    The message carries the tail of the failing command's output.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    """A cached, initialised database and what is needed to use it."""

    key: str
    path: Path
    admin_login: str
    admin_password: str
    api_login: str
    api_password: str
    company_id: int
    fiscal_years: tuple[int, ...]
    build_seconds: float


def default_cache_dir() -> Path:
    """``$REVBRIDGE_TRYTON_CACHE``, else ``$XDG_CACHE_HOME/revbridge/tryton``, else ``~/.cache``."""
    explicit = os.environ.get("REVBRIDGE_TRYTON_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "revbridge" / "tryton"


def trytond_versions() -> dict[str, str]:
    """Versions of every installed trytond distribution, read from metadata (no import)."""
    versions = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name == "trytond" or name.startswith("trytond-"):
            versions[name] = dist.version
    if "trytond" not in versions:
        raise TrytonSetupError(
            "trytond is not installed in this environment: install the project's "
            "'tryton' extra (pip install -e '.[tryton]')"
        )
    return dict(sorted(versions.items()))


def template_key(year: int) -> str:
    """The cache key: changes whenever the template's content would change."""
    versions = trytond_versions()
    material = {
        "format": CACHE_FORMAT,
        "versions": versions,
        "modules": MODULES,
        "bootstrap": hashlib.sha256(BOOTSTRAP.read_bytes()).hexdigest(),
        "year": year,
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    return f"trytond-{versions['trytond']}-{year}-{digest[:12]}"


def ensure_template(
    cache_dir: Path | None = None,
    *,
    year: int | None = None,
    timeout: dt.timedelta = dt.timedelta(minutes=5),
) -> Template:
    """Return the cached template, building it first if it is missing.

    Concurrent callers (two test runs, a CLI and a test) serialise on a lock file, so the
    template is built once; the loser of the race finds it ready.
    """
    cache_dir = cache_dir or default_cache_dir()
    year = year or dt.datetime.now(dt.UTC).year
    key = template_key(year)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / f"{key}.lock"):
        found = _load(cache_dir, key)
        if found is not None:
            return found
        return _build(cache_dir, key, year, timeout)


def _load(cache_dir: Path, key: str) -> Template | None:
    meta_path = cache_dir / f"{key}.json"
    db_path = cache_dir / f"{key}.sqlite"
    if not (meta_path.is_file() and db_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    return Template(
        key=key,
        path=db_path,
        admin_login=meta["admin_login"],
        admin_password=meta["admin_password"],
        api_login=meta["api_login"],
        api_password=meta["api_password"],
        company_id=int(meta["company_id"]),
        fiscal_years=tuple(int(y) for y in meta["fiscal_years"]),
        build_seconds=float(meta["build_seconds"]),
    )


def _build(cache_dir: Path, key: str, year: int, timeout: dt.timedelta) -> Template:
    if find_spec("trytond") is None:
        raise TrytonSetupError("trytond is not importable from " + sys.executable)
    started = time.monotonic()
    # Random passwords: the template is a local, loopback-only database, but a password that
    # is the same on every machine would still be one to forget to change.
    admin_password = secrets.token_urlsafe(18)
    api_password = secrets.token_urlsafe(18)
    with tempfile.TemporaryDirectory(prefix=f"{key}-", dir=cache_dir) as scratch:
        work = Path(scratch)
        (work / "db").mkdir()
        db_path = work / "db" / f"{TEMPLATE_DATABASE}.sqlite"
        db_path.touch()  # the sqlite backend refuses to create the file itself
        config = work / "trytond.conf"
        write_config(config, db_dir=work / "db", listen=None)
        pass_file = work / "admin.pass"
        pass_file.write_text(admin_password + "\n", encoding="utf-8")
        pass_file.chmod(0o600)
        settings = work / "settings.json"
        settings.write_text(
            json.dumps({"api_login": API_LOGIN, "api_password": api_password, "year": year}),
            encoding="utf-8",
        )
        settings.chmod(0o600)
        env = {**os.environ, "TRYTONPASSFILE": str(pass_file)}
        _run(
            [
                sys.executable,
                "-m",
                "trytond.cli.admin",
                "-c",
                str(config),
                "-d",
                TEMPLATE_DATABASE,
                "--email",
                "admin@localhost.invalid",
                "-u",
                *MODULES,
                "--activate-dependencies",
            ],
            env=env,
            timeout=timeout,
            what="trytond-admin",
        )
        output = _run(
            [sys.executable, str(BOOTSTRAP), str(config), TEMPLATE_DATABASE, str(settings)],
            env=env,
            timeout=timeout,
            what="bootstrap",
        )
        setup = json.loads(output.strip().splitlines()[-1])
        _make_self_contained(db_path)
        build_seconds = round(time.monotonic() - started, 3)
        meta = {
            "key": key,
            "admin_login": ADMIN_LOGIN,
            "admin_password": admin_password,
            "api_login": API_LOGIN,
            "api_password": api_password,
            "company_id": setup["company_id"],
            "fiscal_years": sorted(int(y) for y in setup["fiscal_years"]),
            "build_seconds": build_seconds,
            "built_at": dt.datetime.now(dt.UTC).isoformat(),
            "setup": setup,
        }
        final_db = cache_dir / f"{key}.sqlite"
        final_meta = cache_dir / f"{key}.json"
        # The database first, the metadata last: _load trusts a template only when both exist.
        os.replace(db_path, final_db)
        tmp_meta = work / "meta.json"
        tmp_meta.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        tmp_meta.chmod(0o600)
        os.replace(tmp_meta, final_meta)
    found = _load(cache_dir, key)
    if found is None:  # pragma: no cover - both files were just renamed into place
        raise TrytonSetupError(f"template {key} vanished from {cache_dir} right after its build")
    return found


def write_config(path: Path, *, db_dir: Path, listen: str | None) -> None:
    """Write a trytond configuration for a SQLite database folder.

    With ``listen`` (a server, as opposed to the build's admin steps), the cache class is
    revbridge's ``ResettableCache``, which lets ``copy_template`` reset a live server.
    """
    lines = [
        "[database]",
        "uri = sqlite://",
        f"path = {db_dir}",
        "language = en",
        "",
    ]
    if listen is not None:
        lines += [
            "[web]",
            f"listen = {listen}",
            "",
            "[cache]",
            "class = revbridge.tryton.server_cache.ResettableCache",
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")


def _make_self_contained(db_path: Path) -> None:
    """Fold the write-ahead log into the file, so that copying one file copies everything.

    The file stays in WAL mode, like every database trytond opens, so that copying it into a
    live database (``copy_template``) never has to switch journal modes under a reader.
    """
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)


def _run(command: list[str], *, env: dict[str, str], timeout: dt.timedelta, what: str) -> str:
    try:
        completed = subprocess.run(  # noqa: S603 - our own interpreter and arguments
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout.total_seconds(),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise TrytonSetupError(f"{what} did not finish within {timeout}") from exc
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-25:])
        raise TrytonSetupError(f"{what} failed with exit code {completed.returncode}:\n{tail}")
    return completed.stdout


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def copy_template(template: Template, target: Path) -> None:
    """Make ``target`` a copy of the template, also while a server has it open.

    SQLite's online backup writes the pages through SQLite's own locking, so a server
    connection opened afterwards sees the new content and one in flight is never torn; a file
    copy or rename under a WAL database could be. The reset stamp beside the database is then
    rewritten, which makes the server drop every cache it built from the old content (see
    ``server_cache``).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(template.path, target)
    else:
        # immutable: the template never changes once built, so no lock or -shm file is needed.
        source = sqlite3.connect(f"file:{template.path}?mode=ro&immutable=1", uri=True)
        try:
            with contextlib.closing(sqlite3.connect(target, timeout=30)) as dest:
                source.backup(dest)
        finally:
            source.close()
    stamp = target.with_name(target.stem + STAMP_SUFFIX)
    stamp.write_text(f"{template.key} {time.time_ns()}", encoding="utf-8")


def read_meta(cache_dir: Path, key: str) -> dict[str, Any]:
    """The raw metadata of a template (ids created by the bootstrap, build time)."""
    data: dict[str, Any] = json.loads((cache_dir / f"{key}.json").read_text(encoding="utf-8"))
    return data
