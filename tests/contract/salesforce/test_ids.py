"""Record ids: the 15/18-character checksum rule from the fact sheet, and ids in either form."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revbridge.salesforce.sandbox.ids import is_valid_id, make_id, to15, to18

from .conftest import API, Org


@pytest.mark.parametrize(
    ("id15", "id18"),
    [
        ("0019000000B98de", "0019000000B98deAAB"),
        ("a0D30000001n7Pi", "a0D30000001n7PiEAI"),
        ("00190000001pPvH", "00190000001pPvHAAU"),
    ],
)
def test_documented_examples_get_their_checksum(id15: str, id18: str) -> None:
    """The fact sheet's examples convert both ways, and the 18-char form ignores case."""
    assert to18(id15) == id18
    assert to15(id18) == id15
    assert to18(id18.lower()) == id18
    assert to18(id18.upper()) == id18


@given(st.text(alphabet=string.ascii_letters + string.digits, min_size=15, max_size=15))
def test_any_15_char_id_round_trips(id15: str) -> None:
    """Every 15-char id survives 15 → 18 → any case → 18 → 15."""
    id18 = to18(id15)
    assert to15(id18) == id15
    assert to18(id18.lower()) == id18
    assert to18(id18.upper()) == id18


def test_malformed_ids_are_refused() -> None:
    """Ids of the wrong length, with stray characters or a wrong checksum are not ids."""
    assert not is_valid_id("001")
    assert not is_valid_id("0019000000B98de!")
    assert not is_valid_id("0019000000B98deAAC")
    assert is_valid_id(make_id("001", "5e", 42))


def test_api_accepts_15_and_18_char_ids(org: Org) -> None:
    """A record created through the API reads back by its 15-char, 18-char and lower-cased id."""
    record_id = org.create("Account", {"Name": "Checksum Ltd"})
    assert len(record_id) == 18
    assert to18(record_id[:15]) == record_id
    for form in (record_id, record_id[:15], record_id.lower()):
        response = org.client.get(f"{API}/sobjects/Account/{form}")
        assert response.status_code == 200, form
        assert response.json()["Id"] == record_id
    child = org.create("Account", {"Name": "Child", "ParentId": record_id[:15]})
    rows = org.records(f"SELECT Id FROM Account WHERE ParentId = '{record_id[:15]}'")
    assert [r["Id"] for r in rows] == [child]
