"""The customer master's pure rules: normalization, ownership, hierarchy, matching (no I/O)."""
