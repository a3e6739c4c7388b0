"""The public API of revbridge.recon is pinned: a rename is a deliberate, visible change."""

from __future__ import annotations

import revbridge.recon


def test_public_api() -> None:
    """Users import exactly these names from ``revbridge.recon``."""
    assert sorted(revbridge.recon.__all__) == sorted(
        [
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
            # the three reconciliations over a period, from the read-back store
            "DEFAULT_STATUS_MAP",
            "DEFAULT_THRESHOLDS_BY_RECONCILIATION",
            "NOT_A_RECORD",
            "PaymentTables",
            "PeriodRecon",
            "ReadbackStore",
            "Reconciliation",
            "StatusMap",
            "ThresholdsByReconciliation",
            "match_documents",
            "parse_thresholds",
            "reconcile_payments",
            "reconcile_period",
            "reconcile_period_async",
            "reconcile_revenue",
            "reconcile_store",
        ]
    )
    assert all(hasattr(revbridge.recon, name) for name in revbridge.recon.__all__)
