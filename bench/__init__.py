"""revbridge benchmarks: ``make bench`` (``python -m bench [NAME ...]``).

Each benchmark prints one JSON line per result:
``{"bench", "value", "unit", "baseline", "baseline_value", "target", "met"}``, with the
baseline (a peer or a floor) measured in the same run on the same machine. Values are medians.
"""
