"""The NetSuite sandbox fixtures (shared with the connector's contract tests) and the real
Tryton server (shared with the Tryton scenarios)."""

from tests.contract.netsuite_adapter.conftest import admin, sandbox, sandbox_config
from tests.scenarios.tryton.conftest import tryton, tryton_instance

__all__ = ["admin", "sandbox", "sandbox_config", "tryton", "tryton_instance"]
