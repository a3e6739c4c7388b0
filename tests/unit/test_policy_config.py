import re
from pathlib import Path

import pytest

from revbridge.config import INIT_TEMPLATE, load_settings
from revbridge.core.events import EventType
from revbridge.core.policy import CashHandler, Pattern, build_policy, policy_markdown, policy_rows
from revbridge.errors import ConfigError


def test_default_policy_is_the_classic_hybrid_map() -> None:
    policy = build_policy()
    realtime = {p.type for p in policy.events if p.pattern is Pattern.REALTIME}
    assert realtime == {
        EventType.INVOICE_POSTED,
        EventType.PAYMENT_RECEIVED,
        EventType.CREDIT_MEMO_ISSUED,
        EventType.ERP_PAYMENT_RECEIVED,
        EventType.CUSTOMER_CREDIT_STATUS_CHANGED,
    }
    assert policy.for_type(EventType.REVENUE_RECOGNIZED).schedule == "0 3 1 * *"
    assert all(p.rationale for p in policy.events)


@pytest.mark.parametrize(
    ("handler", "off"),
    [
        (CashHandler.SALESFORCE, EventType.ERP_PAYMENT_RECEIVED),
        (CashHandler.ERP, EventType.PAYMENT_RECEIVED),
    ],
)
def test_the_payment_flow_that_does_not_apply_is_off_and_the_table_says_so(
    handler: CashHandler, off: EventType
) -> None:
    policy = build_policy(cash_handled_in=handler)
    assert not policy.is_enabled(off)
    row = next(r for r in policy_rows(policy) if r["type"] == off.value)
    assert row["pattern"] == "off"
    assert f"cash is handled in {handler.value}" in str(row["rationale"])
    assert f"| `{off.value}` | " in policy_markdown(policy)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "revbridge.toml"
    path.write_text(text)
    return path


def test_the_init_template_loads_and_resolves_sqlite_next_to_the_file(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, INIT_TEMPLATE))
    assert settings.store_url == f"sqlite:///{(tmp_path / 'revbridge.db').resolve()}"
    assert settings.policy.cash_handled_in is CashHandler.BOTH


def test_the_init_template_shows_where_the_api_limits_go(tmp_path: Path) -> None:
    """The rate limit and the daily call budget (what `status` counts calls against) are
    in the written config, commented, for both sides: uncommented, they load as given."""
    text = re.sub(
        r"^# ((?:rate_limit_per_s|daily_call_budget) = )", r"\1", INIT_TEMPLATE, flags=re.M
    )
    raw = load_settings(_write(tmp_path, text)).raw
    assert (raw.erp.rate_limit_per_s, raw.erp.daily_call_budget) == (10, 100000)
    assert (raw.salesforce.rate_limit_per_s, raw.salesforce.daily_call_budget) == (20, 100000)


def test_an_operator_moves_an_event_type_to_batch_in_config(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[policy.events."invoice.posted"]\npattern = "batch"\nschedule = "*/15 * * * *"\n'
        'rationale = "Low-cost ERP plan: 15-minute batches."\n',
    )
    rule = load_settings(path).policy.for_type(EventType.INVOICE_POSTED)
    assert (rule.pattern, rule.schedule) == (Pattern.BATCH, "*/15 * * * *")


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (
            '[policy.events."invoice.paid"]\npattern="realtime"\nrationale="x"\n',
            "policy.events.invoice.paid",
            "unknown event type",
        ),
        (
            '[policy.events."gl.posted"]\npattern="batch"\nschedule="61 * * * *"\nrationale="x"\n',
            "policy.events.gl.posted.schedule",
            "bad cron schedule",
        ),
        (
            '[policy.events."gl.posted"]\nschedule="0 1 * * *"\nrationale="x"\n',
            "policy.events.gl.posted.pattern",
            "missing",
        ),
        (
            '[policy.events."gl.posted"]\npattern="batch"\nrationale="x"\n',
            "policy.events.gl.posted",
            "needs a cron schedule",
        ),
        ("[store]\nurll = 'sqlite:///x.db'\n", "store.urll", "unknown key"),
        ("[policy]\ncash_handled_in = 'bank'\n", "policy.cash_handled_in", "salesforce"),
        ("[store\n", "(syntax)", "Expected"),
    ],
)
def test_a_bad_config_fails_at_load_naming_file_key_and_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.path == str(path)
    assert info.value.key == key
    assert reason in info.value.reason


def test_config_is_found_through_env_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env_file = _write(elsewhere, "[store]\nurl = 'sqlite:///env.db'\n")
    _write(tmp_path, "[store]\nurl = 'sqlite:///cwd.db'\n")
    monkeypatch.setenv("REVBRIDGE_CONFIG", str(env_file))
    assert load_settings(cwd=tmp_path).store_url.endswith("elsewhere/env.db")
    monkeypatch.delenv("REVBRIDGE_CONFIG")
    assert load_settings(cwd=tmp_path).store_url.endswith(f"{tmp_path.name}/cwd.db")
    explicit = _write(elsewhere, "[store]\nurl = 'postgresql://u@h/db'\n")
    assert load_settings(explicit, cwd=tmp_path).store_url == "postgresql://u@h/db"


def test_summarized_netsuite_revenue_needs_revenue_to_be_a_batch_class(tmp_path: Path) -> None:
    """Summarized revenue is posted by the batch route: configured with revenue.recognized in
    real time, the file is refused at load instead of dead-lettering at month end."""
    base = '[erp]\nkind = "netsuite"\n\n[erp.netsuite]\nrevenue_posting = "summarized"\n'
    good = tmp_path / "good.toml"
    good.write_text(base)
    assert load_settings(good).raw.erp.netsuite.revenue_posting == "summarized"
    bad = tmp_path / "bad.toml"
    bad.write_text(
        base + '\n[policy.events."revenue.recognized"]\npattern = "realtime"\n'
        'rationale = "Revenue as it is recognized."\n'
    )
    with pytest.raises(ConfigError, match=r"erp\.netsuite\.revenue_posting.*batch"):
        load_settings(bad)


def test_every_problem_in_a_config_file_is_reported_at_once(tmp_path: Path) -> None:
    """A file with several bad settings names each, with its key and reason, in one error:
    the user fixes them all in one go instead of one per run."""
    path = _write(
        tmp_path,
        "[store]\nurll = 'sqlite:///x.db'\n\n"
        "[engine]\nmax_attempts = 0\nlease_s = 'long'\n\n"
        '[policy.events."gl.posted"]\npattern = "batch"\nrationale = "nightly"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    error = info.value
    assert error.path == str(path)
    assert [key for key, _ in error.problems] == [
        "store.urll",
        "policy.events.gl.posted",
        "engine.lease_s",
        "engine.max_attempts",
    ]
    reasons = dict(error.problems)
    assert reasons["store.urll"] == "unknown key"
    assert reasons["policy.events.gl.posted"] == "a batch event type needs a cron schedule"
    assert "valid number" in reasons["engine.lease_s"]
    assert "greater than or equal to 1" in reasons["engine.max_attempts"]
    # One message, a line per problem: the file first, then each key and its reason.
    assert str(error).splitlines() == [
        f"{path}: 4 problems",
        *(f"  {key}: {reason}" for key, reason in error.problems),
    ]


def test_a_check_across_tables_is_reported_with_the_other_problems(tmp_path: Path) -> None:
    """Summarized NetSuite revenue with revenue.recognized in real time is reported beside a
    problem elsewhere in the file, not only once that one is fixed."""
    path = _write(
        tmp_path,
        "[store]\nurll = 'sqlite:///x.db'\n\n"
        "[erp]\nkind = 'netsuite'\n\n[erp.netsuite]\nrevenue_posting = 'summarized'\n\n"
        '[policy.events."revenue.recognized"]\npattern = "realtime"\nrationale = "at once"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert [key for key, _ in info.value.problems] == [
        "store.urll",
        "erp.netsuite.revenue_posting",
    ]


def test_a_single_problem_stays_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "[engine]\nmax_attempts = 0\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value) == (
        f"{path}: engine.max_attempts: Input should be greater than or equal to 1"
    )
    assert info.value.problems == ((info.value.key, info.value.reason),)
