"""How an ERP's reading of a customer's master attributes compares with the synced value."""

from __future__ import annotations

from revbridge.mdm.erp_reading import reading_of_address, reads_as_synced

SYNCED = {
    "line1": "12 Main Street",
    "line2": "Suite 4",
    "city": "Springfield",
    "region": "IL",
    "postal_code": "62701",
    "country": "US",
}


def test_an_address_is_compared_on_the_components_the_erp_reported() -> None:
    """No region in the ERP, the city in capitals: the synced address; a new street is not."""
    own_form = {k: v for k, v in SYNCED.items() if k != "region"} | {"city": "SPRINGFIELD"}
    assert reads_as_synced("billing_address", own_form, SYNCED)
    assert not reads_as_synced("billing_address", {**own_form, "line1": "9 Elm St"}, SYNCED)
    assert not reads_as_synced("billing_address", {}, SYNCED)


def test_a_postal_code_is_compared_without_spacing() -> None:
    synced = {**SYNCED, "postal_code": "SW1A 1AA", "country": "GB"}
    assert reads_as_synced("billing_address", {"postal_code": "sw1a1aa"}, synced)
    assert not reads_as_synced("billing_address", {"postal_code": "SW1A 2AA"}, synced)


def test_a_web_site_is_its_domain_and_a_tax_id_its_letters_and_digits() -> None:
    assert reads_as_synced("website", "https://www.acme.com/", "acme.com")
    assert not reads_as_synced("website", "https://acme.org", "acme.com")
    assert reads_as_synced("tax_id", "de 123.456.789", "DE123456789")
    assert not reads_as_synced("tax_id", "DE123456780", "DE123456789")


def test_text_differs_only_by_its_words() -> None:
    assert reads_as_synced("name", "ACME  WIDGETS", "Acme Widgets")
    assert not reads_as_synced("industry", "Banking", "Construction")
    assert not reads_as_synced("name", "Acme", None)


def test_an_erp_street_in_one_field_splits_into_the_address_lines() -> None:
    """Tryton's one street text: first line, the rest; empty components left out."""
    assert reading_of_address("12 Main Street\nSuite 4\n", "Springfield", "", "us") == {
        "line1": "12 Main Street",
        "line2": "Suite 4",
        "city": "Springfield",
        "country": "US",
    }
    assert reading_of_address(None, None, None, None) is None
