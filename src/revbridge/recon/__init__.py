"""Reconciliation: Salesforce against the ERP (AR, payments, revenue; see README.md)."""

from __future__ import annotations

from revbridge.recon.hub_state import (
    IN_TRANSIT,
    NEVER_CAPTURED,
    NOT_A_RECORD,
    QUARANTINED,
    FindingWithHubState,
    HubState,
    attach_hub_state,
)
from revbridge.recon.match import (
    DEFAULT_STATUS_MAP,
    Finding,
    FindingKind,
    MatchedTotal,
    ReconResult,
    StatusMap,
    match_documents,
    reconcile_ar,
)
from revbridge.recon.payments import PaymentTables, reconcile_payments
from revbridge.recon.period import (
    PeriodRecon,
    Reconciliation,
    reconcile_period,
    reconcile_period_async,
    reconcile_store,
)
from revbridge.recon.readback import ReadbackStore
from revbridge.recon.revenue import reconcile_revenue
from revbridge.recon.thresholds import (
    DEFAULT_THRESHOLDS,
    DEFAULT_THRESHOLDS_BY_RECONCILIATION,
    AmountTolerance,
    ReconThresholds,
    ThresholdsByReconciliation,
    Verdict,
    judge_amount,
    judge_date_days,
    parse_thresholds,
)

__all__ = [
    "DEFAULT_STATUS_MAP",
    "DEFAULT_THRESHOLDS",
    "DEFAULT_THRESHOLDS_BY_RECONCILIATION",
    "IN_TRANSIT",
    "NEVER_CAPTURED",
    "NOT_A_RECORD",
    "QUARANTINED",
    "AmountTolerance",
    "Finding",
    "FindingKind",
    "FindingWithHubState",
    "HubState",
    "MatchedTotal",
    "PaymentTables",
    "PeriodRecon",
    "ReadbackStore",
    "ReconResult",
    "ReconThresholds",
    "Reconciliation",
    "StatusMap",
    "ThresholdsByReconciliation",
    "Verdict",
    "attach_hub_state",
    "judge_amount",
    "judge_date_days",
    "match_documents",
    "parse_thresholds",
    "reconcile_ar",
    "reconcile_payments",
    "reconcile_period",
    "reconcile_period_async",
    "reconcile_revenue",
    "reconcile_store",
]
