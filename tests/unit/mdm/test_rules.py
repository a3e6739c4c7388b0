"""The customer master's pure rules: normalization, hierarchy, ownership, matching."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revbridge.mdm.hierarchy import describe_cycle, find_cycle, parents_first
from revbridge.mdm.match import Candidate, propose_links, score_pair
from revbridge.mdm.normalize import (
    normalize_address,
    normalize_domain,
    normalize_name,
    normalize_tax_id,
)
from revbridge.mdm.ownership import (
    ERP,
    SALESFORCE,
    Action,
    Ownership,
    SyncModel,
    decide,
    value_hash,
)

# ---------------------------------------------------------------------- normalization


def test_legal_forms_and_punctuation_do_not_make_two_companies() -> None:
    """``ACME, Inc.`` and ``Acme Incorporated`` are the same name to the matcher."""
    assert normalize_name("ACME, Inc.") == normalize_name("Acme Incorporated") == "acme"
    assert normalize_name("Müller & Söhne GmbH") == "muller and sohne"


def test_web_sites_and_mail_addresses_give_the_same_domain() -> None:
    """A web site and a sales address of one company share its domain; free mail does not."""
    assert normalize_domain("https://www.Acme.com/about") == "acme.com"
    assert normalize_domain("sales@acme.com") == "acme.com"
    assert normalize_domain("someone@gmail.com") == ""


def test_tax_ids_and_addresses_compare_without_formatting() -> None:
    """Spacing, dots and street abbreviations do not hide an equal tax id or address."""
    assert normalize_tax_id("de 123.456.789") == "DE123456789"
    assert normalize_address("12 Main Street", "Suite 4") == normalize_address("12 main st ste 4")


# ---------------------------------------------------------------------- hierarchy


def test_a_cycle_built_across_several_events_is_named() -> None:
    """A under B, B under C, then C under A is refused, naming the whole cycle."""
    parents = {"A": "B", "B": "C", "C": None}
    cycle = find_cycle(parents, "C", "A")
    assert cycle == ("C", "A", "B", "C")
    assert describe_cycle(cycle) == "C -> A -> B -> C"
    assert find_cycle(parents, "C", None) is None
    assert find_cycle({"A": None, "B": "A"}, "C", "B") is None


def test_parents_come_before_children_at_any_depth() -> None:
    """A four-level hierarchy is ordered root first, then each level."""
    parents = {"D": "C", "C": "B", "B": "A", "A": None, "E": "A"}
    order = parents_first(parents)
    for child, parent in parents.items():
        if parent is not None:
            assert order.index(parent) < order.index(child)


# ---------------------------------------------------------------------- ownership


def test_the_owner_propagates_and_the_other_side_is_reverted_or_flagged() -> None:
    """Salesforce's name change propagates; its change to the ERP's credit limit does not."""
    revert = Ownership()
    synced = value_hash("1000")
    assert decide(revert, "name", SALESFORCE, value_hash("x"), value_hash("y")).action is (
        Action.PROPAGATE
    )
    assert decide(revert, "credit_limit", SALESFORCE, value_hash("5"), synced).action is (
        Action.REVERT
    )
    flag = Ownership(on_conflict="flag")
    assert decide(flag, "credit_limit", SALESFORCE, value_hash("5"), synced).action is Action.FLAG
    assert decide(flag, "credit_limit", ERP, synced, synced).action is Action.UNCHANGED


def test_configured_owners_override_defaults_and_unknown_names_are_refused() -> None:
    """``addresses = "erp"`` moves both addresses; a typo is refused with the known names."""
    o = Ownership.from_config({"addresses": "erp"})
    assert o.owner_of("billing_address") == o.owner_of("shipping_address") == ERP
    assert o.owner_of("name") == SALESFORCE
    for bad in ({"nmae": "erp"}, {"name": "sap"}):
        with pytest.raises(ValueError, match=r"mdm\.owners"):
            Ownership.from_config(bad)


ATTRS = ("name", "industry", "credit_limit", "payment_terms")
edits = st.lists(
    st.tuples(
        st.sampled_from(["edit", "sync"]),
        st.sampled_from([SALESFORCE, ERP]),
        st.sampled_from(ATTRS),
        st.integers(0, 3),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=edits, mode=st.sampled_from(["revert", "flag"]))
def test_any_interleaving_of_edits_converges_to_the_owners_values(
    steps: list[tuple[str, str, str, int]], mode: str
) -> None:
    """Whatever both sides edit and in whatever order the hub syncs, each attribute ends as
    its owner last set it: on both sides when reverting, on the owner's side when flagging."""
    ownership = Ownership.from_config({}, mode)
    model = SyncModel(ownership)
    owner_last: dict[str, int] = {}
    for op, side, attr, value in steps:
        if op == "edit":
            model.edit(side, attr, value)  # type: ignore[arg-type]
            if ownership.owner_of(attr) == side:
                owner_last[attr] = value
        else:
            model.sync(side)  # type: ignore[arg-type]
    model.sync(SALESFORCE)
    model.sync(ERP)
    model.sync(SALESFORCE)
    for attr, value in owner_last.items():
        owner = ownership.owner_of(attr)
        assert model.values[owner][attr] == value
        assert model.synced[attr] == value
        if mode == "revert":
            other = ERP if owner == SALESFORCE else SALESFORCE
            assert model.values[other][attr] == value


# ---------------------------------------------------------------------- matching


def _c(i: str, name: str, **kw: str) -> Candidate:
    return Candidate.of(i, name, **kw)


def test_tax_id_and_domain_make_a_sure_link_a_name_alone_only_a_review() -> None:
    """Equal tax id with a suffix-changed name is accepted; a name alone goes to review."""
    sure, why = score_pair(_c("a", "Acme Inc", tax_id="DE1"), _c("b", "ACME GmbH", tax_id="de-1"))
    assert sure >= 0.9
    assert "tax_id" in why
    name_only, _ = score_pair(_c("a", "Globex Corporation"), _c("b", "Globex Corp"))
    assert 0.7 <= name_only < 0.9
    differs, why = score_pair(_c("a", "Acme Inc", tax_id="1"), _c("b", "Acme Inc", tax_id="2"))
    assert differs < 0.7
    assert "tax_id_differs" in why


def test_a_name_alone_is_never_linked_automatically_whatever_accept_at_says() -> None:
    """An operator who lowers ``accept_at`` to 0.8 links more tax id and domain matches, but
    a pair with only its name in common still goes to a person (its score is 0.89 at most,
    which 0.8 would have accepted before)."""
    (name_only,) = propose_links([_c("a", "Globex Corporation")], [_c("b", "Globex Corp")])
    assert not name_only.corroborated
    assert name_only.score >= 0.8
    assert name_only.status(accept_at=0.8, review_at=0.7) == "review"
    (sure,) = propose_links(
        [_c("a", "Acme Inc", website="acme.com")],
        [_c("b", "Acme Incorporated", email="ap@acme.com")],
    )
    assert sure.corroborated
    assert sure.status(accept_at=0.8, review_at=0.7) == "accepted"
    street = {"street": "1 Main St", "city": "Springfield", "postal_code": "12345"}
    (same_place,) = propose_links([_c("a", "Initrode", **street)], [_c("b", "Initrode", **street)])
    assert same_place.corroborated


def test_each_record_is_linked_at_most_once_best_first() -> None:
    """Two Accounts that look like one ERP customer: only the better one gets it."""
    sf = [
        _c("s1", "Initech", website="initech.com", tax_id="X1"),
        _c("s2", "Initech Labs", website="initech.com"),
    ]
    erp = [_c("e1", "Initech LLC", website="https://initech.com", tax_id="X1")]
    found = propose_links(sf, erp)
    assert [(p.sf_id, p.erp_id) for p in found] == [("s1", "e1")]
