"""Reconciliation: Salesforce AR documents against the ERP's AR records (see README.md)."""

from __future__ import annotations

from revbridge.recon.hub_state import (
    IN_TRANSIT,
    NEVER_CAPTURED,
    QUARANTINED,
    FindingWithHubState,
    HubState,
    attach_hub_state,
)
from revbridge.recon.match import Finding, FindingKind, MatchedTotal, ReconResult, reconcile_ar
from revbridge.recon.thresholds import (
    DEFAULT_THRESHOLDS,
    AmountTolerance,
    ReconThresholds,
    Verdict,
    judge_amount,
    judge_date_days,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "IN_TRANSIT",
    "NEVER_CAPTURED",
    "QUARANTINED",
    "AmountTolerance",
    "Finding",
    "FindingKind",
    "FindingWithHubState",
    "HubState",
    "MatchedTotal",
    "ReconResult",
    "ReconThresholds",
    "Verdict",
    "attach_hub_state",
    "judge_amount",
    "judge_date_days",
    "reconcile_ar",
]
