"""A protocol-faithful Salesforce org for tests and demos.

Public entry points: :class:`SandboxConfig`, :func:`create_app`, :func:`serve`,
:func:`run_in_thread` (yields a :class:`RunningSandbox`) and :func:`parse_faults`.
The CLI entry point is :func:`revbridge.salesforce.sandbox.cli.salesforce_command`.
"""

from revbridge.salesforce.sandbox.app import Sandbox, create_app
from revbridge.salesforce.sandbox.clock import SandboxClock
from revbridge.salesforce.sandbox.config import SandboxConfig
from revbridge.salesforce.sandbox.faults import FaultSpec, format_faults, parse_faults
from revbridge.salesforce.sandbox.ids import to15, to18
from revbridge.salesforce.sandbox.server import RunningSandbox, run_in_thread, serve

__all__ = [
    "FaultSpec",
    "RunningSandbox",
    "Sandbox",
    "SandboxClock",
    "SandboxConfig",
    "create_app",
    "format_faults",
    "parse_faults",
    "run_in_thread",
    "serve",
    "to15",
    "to18",
]
