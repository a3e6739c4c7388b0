"""The NetSuite sandbox fixtures, shared with the connector's contract tests."""

from tests.contract.netsuite_adapter.conftest import admin, sandbox, sandbox_config

__all__ = ["admin", "sandbox", "sandbox_config"]
