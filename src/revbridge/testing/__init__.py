"""Fakes for tests and for users testing their own set-up: an ERP and a Salesforce side.

Both implement the engine's ports, keep their records in memory (optionally persisted to a
JSON file), and take injected faults: outages, failures, throttling, lost responses.
"""

from revbridge.testing.fakes import FakeErp, FakeSalesforce, Faults
from revbridge.testing.rates import most_calls_in_one_second

__all__ = ["FakeErp", "FakeSalesforce", "Faults", "most_calls_in_one_second"]
