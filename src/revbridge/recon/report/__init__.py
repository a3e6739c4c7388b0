"""Reconciliation reports: one value (``model.ReconReport``), four layouts (``render``)."""
