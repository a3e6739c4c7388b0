"""Go-live linking: propose Salesforce Account <-> ERP customer links, with scores.

Records are normalized once (``Candidate.of``), grouped into blocks (same tax id, same web
domain, same first name word, same postal code and name start) so that only records sharing
a block are compared: the cost follows the number of plausible pairs, not n x m. A pair's
score (0..1) combines name similarity (rapidfuzz), tax id, domain and address; a tax id or
domain present on both sides and different is strong evidence against. Each record ends in
at most one link (best score first, one to one). ``accept_at`` and ``review_at`` split the
proposals into links made automatically and links queued for a person.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz

from revbridge.mdm.normalize import (
    normalize_address,
    normalize_domain,
    normalize_name,
    normalize_postal_code,
    normalize_tax_id,
)

# Blocks larger than this are too common to say anything (e.g. the word "global"): skipped.
MAX_BLOCK = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One side's record, raw fields kept for the report, normalized fields for scoring."""

    record_id: str
    name: str
    tax_id: str = ""
    domain: str = ""
    address: str = ""
    postal_code: str = ""
    country: str = ""
    norm_name: str = ""

    @classmethod
    def of(
        cls,
        record_id: str,
        name: str,
        *,
        tax_id: str | None = None,
        website: str | None = None,
        email: str | None = None,
        street: str | None = None,
        city: str | None = None,
        postal_code: str | None = None,
        country: str | None = None,
    ) -> Candidate:
        return cls(
            record_id=record_id,
            name=name,
            tax_id=normalize_tax_id(tax_id),
            domain=normalize_domain(website) or normalize_domain(email),
            address=normalize_address(street, city),
            postal_code=normalize_postal_code(postal_code),
            country=(country or "").upper(),
            norm_name=normalize_name(name),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    sf_id: str
    erp_id: str
    score: float
    evidence: str  # e.g. "tax_id name=0.97 domain"
    # Something besides the name agrees (tax id, web domain, or the same street and postal
    # code). Without it a pair is never linked automatically, whatever ``accept_at`` says.
    corroborated: bool = True

    def status(self, accept_at: float, review_at: float) -> str:
        if self.score >= accept_at and self.corroborated:
            return "accepted"
        return "review" if self.score >= review_at else "rejected"


def _keys(c: Candidate) -> Iterable[str]:
    """Block keys: exact tax id and domain, and name keys that survive one typo in either of
    the first two words (each key holds one word whole and the start of the other)."""
    if c.tax_id:
        yield "t:" + c.tax_id
    if c.domain:
        yield "d:" + c.domain
    words = c.norm_name.split()
    if not words:
        return
    if len(words) == 1:
        yield "n:" + words[0]
    else:
        yield "n:" + words[0] + "|" + words[1][:2]
        yield "m:" + words[0][:2] + "|" + words[1]
    if c.postal_code:
        yield "p:" + c.postal_code + "|" + c.norm_name[:3]


def score_pair(a: Candidate, b: Candidate) -> tuple[float, str]:
    """How likely ``a`` and ``b`` are one company (0..1), and the evidence that said so."""
    name = fuzz.token_sort_ratio(a.norm_name, b.norm_name) / 100.0
    evidence = [f"name={name:.2f}"]
    score = name * 0.55
    weight = 0.55
    if a.tax_id and b.tax_id:
        if a.tax_id != b.tax_id:
            return min(score / weight, 1.0) * 0.3, " ".join([*evidence, "tax_id_differs"])
        score += 0.35
        weight += 0.35
        evidence.append("tax_id")
    if a.domain and b.domain:
        weight += 0.2
        if a.domain == b.domain:
            score += 0.2
            evidence.append("domain")
        else:
            evidence.append("domain_differs")
    if a.address and b.address:
        addr = fuzz.token_set_ratio(a.address, b.address) / 100.0
        if a.postal_code and b.postal_code and a.postal_code != b.postal_code:
            addr *= 0.5
        score += 0.15 * addr
        weight += 0.15
        evidence.append(f"address={addr:.2f}")
    if a.country and b.country and a.country != b.country:
        score *= 0.5
        evidence.append("country_differs")
    result = score / weight
    if not corroborated(a, b):
        # A name alone (or with a vague address) scores below the default ``accept_at``;
        # ``Proposal.corroborated`` keeps it out of automatic links at any setting.
        result = min(result, 0.89)
    return result, " ".join(evidence)


def corroborated(a: Candidate, b: Candidate) -> bool:
    """Whether more than the name says ``a`` and ``b`` are one company: the same tax id, the
    same web domain, or the same postal code with (nearly) the same street."""
    if (a.tax_id and a.tax_id == b.tax_id) or (a.domain and a.domain == b.domain):
        return True
    return (
        bool(a.postal_code)
        and a.postal_code == b.postal_code
        and bool(a.address)
        and fuzz.token_set_ratio(a.address, b.address) >= 90
    )


def propose_links(
    sf: Sequence[Candidate],
    erp: Sequence[Candidate],
    *,
    review_at: float = 0.7,
    exclude: Collection[tuple[str, str]] = (),
) -> list[Proposal]:
    """One-to-one proposals at or above ``review_at``, best first. ``exclude`` holds the
    (Salesforce id, ERP id) pairs a person has said are not one customer: they are not
    proposed, and do not keep either record from its next best partner."""
    blocks: dict[str, list[int]] = defaultdict(list)
    for j, c in enumerate(erp):
        for key in _keys(c):
            blocks[key].append(j)
    scored: list[tuple[float, int, int, str]] = []
    for i, a in enumerate(sf):
        seen: set[int] = set()
        for key in _keys(a):
            members = blocks.get(key)
            if not members or len(members) > MAX_BLOCK:
                continue
            for j in members:
                if j in seen:
                    continue
                seen.add(j)
                if exclude and (a.record_id, erp[j].record_id) in exclude:
                    continue
                s, why = score_pair(a, erp[j])
                if s >= review_at:
                    scored.append((s, i, j, why))
    scored.sort(key=lambda t: (-t[0], t[1], t[2]))
    used_sf: set[int] = set()
    used_erp: set[int] = set()
    out = []
    for s, i, j, why in scored:
        if i in used_sf or j in used_erp:
            continue
        used_sf.add(i)
        used_erp.add(j)
        out.append(
            Proposal(
                sf_id=sf[i].record_id,
                erp_id=erp[j].record_id,
                score=s,
                evidence=why,
                corroborated=corroborated(sf[i], erp[j]),
            )
        )
    return out


def likely_match(
    account: Candidate, erp: Sequence[Candidate], *, review_at: float = 0.7
) -> Proposal | None:
    """The best ERP customer ``account`` probably is, if any (before creating a new one)."""
    found = propose_links([account], erp, review_at=review_at)
    return found[0] if found else None
