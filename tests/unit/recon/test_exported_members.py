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
        ]
    )
    assert all(hasattr(revbridge.recon, name) for name in revbridge.recon.__all__)
