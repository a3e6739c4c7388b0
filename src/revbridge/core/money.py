"""Money: ``Decimal`` with an ISO 4217 currency, checked against the currency's minor unit.

An amount with more precision than its currency allows is rejected, never rounded: rounding
is a business decision and belongs to the source system that issued the document.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from revbridge.errors import InvalidMoney

# ISO 4217 active codes and their minor units (number of decimal places).
_MINOR_UNITS_BY_DIGITS: dict[int, str] = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
    2: (
        "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN "
        "BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN "
        "ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES "
        "KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK "
        "MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR "
        "SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD "
        "TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
    ),
}
MINOR_UNITS: dict[str, int] = {
    code: digits for digits, codes in _MINOR_UNITS_BY_DIGITS.items() for code in codes.split()
}
_QUANTUM_BY_CURRENCY: dict[str, Decimal] = {
    code: Decimal(1).scaleb(-digits) for code, digits in MINOR_UNITS.items()
}


def minor_unit(currency: str) -> int:
    """The number of decimal places of ``currency``; an unknown code raises ``InvalidMoney``."""
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise InvalidMoney(f"unknown currency {currency!r}: not an ISO 4217 code") from None


def check_amount(amount: Decimal, currency: str, *, what: str = "amount") -> Decimal:
    """Return ``amount`` at exactly the currency's scale, or raise if it is more precise.

    ``10.5`` USD becomes ``10.50``; ``10.005`` USD and ``1.5`` JPY are rejected.
    """
    quantum = _QUANTUM_BY_CURRENCY.get(currency)
    if quantum is None:
        minor_unit(currency)  # raises with the reason
    if type(amount) is not Decimal:
        raise InvalidMoney(f"{what}: {amount!r} is not a Decimal")
    if not amount.is_finite():
        raise InvalidMoney(f"{what}: {amount} is not a finite number")
    exact = amount.quantize(quantum)  # type: ignore[arg-type]
    if exact != amount:
        raise InvalidMoney(
            f"{what}: {amount} {currency} has more decimals than {currency} allows "
            f"({minor_unit(currency)}); amounts are never rounded silently"
        )
    return exact


def at_minor_unit(value: Decimal, currency: str | None) -> Decimal:
    """``value`` at its currency's minor unit when that loses nothing (1200.5000 USD -> 1200.50).

    Stores may keep more decimals than a currency has (four for every currency); a person sees
    the currency's own scale. A value more precise than its currency (or of an unknown
    currency) is kept whole: never rounded silently.
    """
    places = MINOR_UNITS.get(currency or "")
    if places is None or not value.is_finite():
        return value
    exact = value.quantize(_QUANTUM_BY_CURRENCY[currency or ""])
    return exact if exact == value else value


def format_money(value: Decimal | str | None, currency: str | None, *, code: bool = True) -> str:
    """An amount for a person: at its currency's minor unit, thousands grouped, the ISO code
    after it unless ``code`` is false (``315,801.24 EUR``, ``5,816,332 JPY``); ``""`` for no
    amount.

    ``value`` may be the exact decimal text a ledger column holds (``"9886.3200"``).
    """
    if value is None or value == "":
        return ""
    amount = Decimal(value) if isinstance(value, str) else value
    shown = at_minor_unit(amount, currency)
    text = f"{shown:,f}" if shown.is_finite() else str(shown)
    return f"{text} {currency}" if currency and code else text


@dataclass(frozen=True, slots=True, kw_only=True)
class Money:
    """An exact amount in one currency."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", check_amount(self.amount, self.currency))

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(amount=self.amount - other.amount, currency=self.currency)

    def __neg__(self) -> Money:
        return Money(amount=-self.amount, currency=self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(amount=Decimal(0), currency=currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise InvalidMoney(f"cannot combine {self.currency} with {other.currency}")


def total(amounts: Iterable[Decimal], currency: str) -> Money:
    """Sum exact amounts into one ``Money`` of ``currency``."""
    return Money(amount=sum(amounts, Decimal(0)), currency=currency)
