from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revbridge.core.money import MINOR_UNITS, Money, check_amount, minor_unit
from revbridge.errors import InvalidMoney


def test_minor_units_follow_iso_4217() -> None:
    """JPY has no decimals, USD two, BHD three: the table behind every amount check."""
    assert (minor_unit("JPY"), minor_unit("USD"), minor_unit("BHD")) == (0, 2, 3)
    assert len(MINOR_UNITS) > 150


def test_over_precise_amount_is_rejected_not_rounded() -> None:
    """10.005 USD is an error; silently rounding it would misstate the books."""
    with pytest.raises(InvalidMoney, match=r"10\.005 USD has more decimals"):
        check_amount(Decimal("10.005"), "USD")
    with pytest.raises(InvalidMoney, match="JPY"):
        Money(amount=Decimal("1.5"), currency="JPY")


def test_trailing_zeros_are_fine_and_normalized_to_the_currency_scale() -> None:
    assert str(check_amount(Decimal("10.5"), "USD")) == "10.50"
    assert str(check_amount(Decimal("100.000"), "JPY")) == "100"


def test_unknown_currency_and_non_finite_amounts_are_rejected() -> None:
    with pytest.raises(InvalidMoney, match="unknown currency 'XYZ'"):
        check_amount(Decimal(1), "XYZ")
    with pytest.raises(InvalidMoney, match="not a finite"):
        check_amount(Decimal("NaN"), "USD")


def test_money_refuses_to_mix_currencies() -> None:
    with pytest.raises(InvalidMoney, match="cannot combine USD with EUR"):
        _ = Money(amount=Decimal(1), currency="USD") + Money(amount=Decimal(1), currency="EUR")


@given(
    st.lists(st.integers(min_value=-(10**12), max_value=10**12), min_size=1, max_size=20),
    st.sampled_from(["USD", "JPY", "BHD", "EUR"]),
)
def test_sums_of_exact_amounts_stay_exact(cents: list[int], currency: str) -> None:
    """Adding Money never loses or invents a minor unit, whatever the amounts."""
    scale = minor_unit(currency)
    amounts = [Decimal(c).scaleb(-scale) for c in cents]
    total = Money.zero(currency)
    for a in amounts:
        total = total + Money(amount=a, currency=currency)
    assert total.amount == Decimal(sum(cents)).scaleb(-scale)
    assert total.amount.as_tuple().exponent == -scale


def test_format_money_shows_the_currencys_minor_unit_grouped() -> None:
    """A person reads an amount at its currency's scale with thousands grouped; the ledger's
    four-decimal text is accepted; more precision than the currency has is never rounded."""
    from revbridge.core.money import format_money

    assert format_money("315801.2400", "EUR") == "315,801.24 EUR"
    assert format_money(Decimal("5816332.0000"), "JPY") == "5,816,332 JPY"
    assert format_money("-51973.2500", "EUR", code=False) == "-51,973.25"
    assert format_money("1.5000", "KWD") == "1.500 KWD"
    assert format_money("0.0050", "USD") == "0.0050 USD"  # not rounded away
    assert format_money("7.5", None) == "7.5"
    assert format_money(None, "EUR") == ""
