"""Feed the fake org: Salesforce-side changes posted to its change feed, for its capture.

A user trying a set-up end to end without an org posts generated events here
(``revbridge generate --into-salesforce``), then runs ``revbridge capture salesforce`` and
a worker: the same path a real org's changes take (capture, ledger, delivery).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from revbridge.config import Settings
from revbridge.core.events import FROM_ERP
from revbridge.services.targets import fake_salesforce


@dataclass(frozen=True, slots=True)
class Posted:
    posted: int
    erp_side: int  # left out: they happen in the ERP, not in the org


def post_to_fake_org(settings: Settings, envelopes: Iterable[Mapping[str, Any]]) -> Posted:
    """Post the Salesforce-side envelopes to the configured fake org's change feed and save
    it. Raises ``UsageError`` unless ``salesforce.kind = "fake"``."""
    org = fake_salesforce(settings)
    posted = erp_side = 0
    with org.changing():
        for envelope in envelopes:
            if envelope.get("type") in FROM_ERP:
                erp_side += 1
                continue
            org.post(envelope)
            posted += 1
    return Posted(posted=posted, erp_side=erp_side)
