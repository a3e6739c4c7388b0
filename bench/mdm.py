"""``mdm_match``: go-live matching of 100k Salesforce Accounts against 100k ERP customers.

80,000 companies are planted on both sides with the noise a real go-live shows: legal forms
changed or dropped (``Inc`` / ``Incorporated`` / none, ``GmbH``), a typo in the name, tax ids
missing on one side or both, a web site on one side and only a mail address on the other,
street words abbreviated. 20,000 more companies exist on each side only (some sharing words
with planted ones). Reported: time, peak memory, and the precision and recall of the links
made automatically (``accepted``, score >= 0.9) against the planted truth, plus how many
planted pairs were at least proposed for review.

Targets: under 60 s, precision >= 0.99, recall >= 0.95.
"""

from __future__ import annotations

import random
import resource
import string
import time

from bench.common import emit, progress
from revbridge.mdm.match import Candidate, propose_links

N = 100_000
PLANTED = 80_000
SUFFIXES = ["Inc", "Inc.", "Incorporated", "LLC", "Ltd", "Limited", "GmbH", "Corp", "Co", ""]
INDUSTRY = [
    "Systems", "Logistics", "Foods", "Labs", "Partners", "Holdings", "Software", "Energy",
    "Health", "Capital", "Media", "Robotics", "Textiles", "Pharma", "Freight", "Analytics",
]  # fmt: skip
STREETS = ["Street", "Avenue", "Road", "Boulevard", "Drive"]
ABBREV = {"Street": "St", "Avenue": "Ave", "Road": "Rd", "Boulevard": "Blvd", "Drive": "Dr"}
CITIES = ["Springfield", "Riverton", "Lakeside", "Fairview", "Greenville", "Madison", "Berlin"]


def _word(rng: random.Random) -> str:
    syllables = rng.randint(2, 3)
    out = "".join(
        rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") + rng.choice(["", "n", "r", "l"])
        for _ in range(syllables)
    )
    return out.capitalize()


def _typo(rng: random.Random, name: str) -> str:
    """One substitution, deletion or swap inside a word (never the first two letters)."""
    if len(name) < 6:
        return name
    i = rng.randint(2, len(name) - 2)
    if name[i] == " " or name[i - 1] == " ":
        return name
    kind = rng.random()
    if kind < 0.4:
        return name[:i] + rng.choice(string.ascii_lowercase) + name[i + 1 :]
    if kind < 0.7:
        return name[:i] + name[i + 1 :]
    return name[: i - 1] + name[i] + name[i - 1] + name[i + 1 :]


def _company(rng: random.Random, vocab: list[str], i: int) -> dict[str, str]:
    words = [rng.choice(vocab) for _ in range(rng.choice([1, 2, 2, 3]))]
    base = " ".join([*words, rng.choice(INDUSTRY)])
    slug = "".join(w.lower() for w in words) + str(i % 97)
    return {
        "base": base,
        "tax": f"TX{rng.randrange(10**9):09d}",
        "domain": f"{slug}.example.com",
        "street": f"{rng.randint(1, 999)} {rng.choice(vocab)} {rng.choice(STREETS)}",
        "city": rng.choice(CITIES),
        "postal": f"{rng.randint(10000, 99999)}",
    }


def _side(
    rng: random.Random, co: dict[str, str], record_id: str, *, noisy: bool, sf: bool
) -> Candidate:
    name = co["base"] + " " + rng.choice(SUFFIXES)
    if noisy and rng.random() < 0.3:
        name = _typo(rng, name)
    if noisy and rng.random() < 0.2:
        name = name.upper()
    street = co["street"]
    if noisy and rng.random() < 0.5:
        for full, short in ABBREV.items():
            street = street.replace(full, short)
    tax = co["tax"] if rng.random() < 0.65 else None  # missing on one side or both
    website = email = None
    if sf:
        website = f"https://www.{co['domain']}/" if rng.random() < 0.85 else None
    else:
        r = rng.random()
        if r < 0.5:
            email = f"ap@{co['domain']}"
        elif r < 0.85:
            website = co["domain"]
    return Candidate.of(
        record_id,
        name.strip(),
        tax_id=tax,
        website=website,
        email=email,
        street=street,
        city=co["city"],
        postal_code=co["postal"],
        country="US",
    )


def generate(seed: int = 7) -> tuple[list[Candidate], list[Candidate], set[tuple[str, str]]]:
    rng = random.Random(seed)
    vocab = sorted({_word(rng) for _ in range(6000)})
    sf: list[Candidate] = []
    erp: list[Candidate] = []
    truth: set[tuple[str, str]] = set()
    for i in range(PLANTED):
        co = _company(rng, vocab, i)
        s_id, e_id = f"S{i:07d}", f"E{i:07d}"
        sf.append(_side(rng, co, s_id, noisy=False, sf=True))
        erp.append(_side(rng, co, e_id, noisy=True, sf=False))
        truth.add((s_id, e_id))
    for i in range(PLANTED, N):
        sf.append(_side(rng, _company(rng, vocab, i), f"S{i:07d}", noisy=False, sf=True))
        erp.append(_side(rng, _company(rng, vocab, i + N), f"E{i:07d}", noisy=True, sf=False))
    rng.shuffle(erp)
    return sf, erp, truth


def bench_mdm_match() -> None:
    progress("mdm_match: generating 100k accounts and 100k ERP customers")
    sf, erp, truth = generate()
    progress("mdm_match: matching")
    start = time.perf_counter()
    proposals = propose_links(sf, erp, review_at=0.7)
    elapsed = time.perf_counter() - start
    accepted = {(p.sf_id, p.erp_id) for p in proposals if p.score >= 0.9}
    proposed = {(p.sf_id, p.erp_id) for p in proposals}
    right = len(accepted & truth)
    precision = right / len(accepted) if accepted else 0.0
    recall = right / len(truth)
    proposed_recall = len(proposed & truth) / len(truth)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    emit(
        "mdm_match",
        elapsed,
        "s",
        "target",
        60.0,
        "< 60 s, precision >= 0.99, recall >= 0.95",
        elapsed < 60 and precision >= 0.99 and recall >= 0.95,
        sf_accounts=len(sf),
        erp_customers=len(erp),
        planted=len(truth),
        accepted=len(accepted),
        review=len(proposed) - len(accepted),
        precision=round(precision, 4),
        recall=round(recall, 4),
        recall_with_review=round(proposed_recall, 4),
        peak_memory_mb=round(peak_mb),
    )
