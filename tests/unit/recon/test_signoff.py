"""Month-end sign-off rules: two different people, no open case, void on a changed balance."""

from __future__ import annotations

import pytest

from revbridge.errors import DomainError
from revbridge.recon.signoff import changed_reconciliations, check_prepare, check_review


def test_a_period_with_open_cases_cannot_be_prepared() -> None:
    """The preparer must first resolve or accept every case of the period."""
    check_prepare(current=None, active_cases=0)
    with pytest.raises(DomainError, match="2 cases of the period are still open"):
        check_prepare(current=None, active_cases=2)
    with pytest.raises(DomainError, match="1 case of the period is still open"):
        check_prepare(current=None, active_cases=1)
    with pytest.raises(DomainError, match="already prepared"):
        check_prepare(current="prepared", active_cases=0)


def test_the_reviewer_is_someone_else_and_reviews_a_prepared_period() -> None:
    """The preparer cannot review their own sign-off; an unprepared period cannot be reviewed."""
    check_review(current="prepared", preparer="ana", reviewer="ben")
    with pytest.raises(DomainError, match="someone else"):
        check_review(current="prepared", preparer="ana", reviewer="ana")
    with pytest.raises(DomainError, match="not prepared"):
        check_review(current=None, preparer=None, reviewer="ben")


def test_a_changed_balance_names_the_reconciliation_that_moved() -> None:
    """Only the reconciliations whose fingerprint differs are reported as changed."""
    signed = {"ar": "a", "payments": "p", "revenue": "r"}
    assert changed_reconciliations(signed, dict(signed)) == ()
    assert changed_reconciliations(signed, {**signed, "payments": "p2"}) == ("payments",)
