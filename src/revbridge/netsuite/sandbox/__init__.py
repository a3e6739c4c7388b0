"""A protocol-faithful NetSuite SuiteTalk REST sandbox (see README.md in this folder)."""

from revbridge.netsuite.sandbox.app import Sandbox, create_app
from revbridge.netsuite.sandbox.config import (
    DEMO_ACCOUNT_ID,
    DEMO_CONSUMER_KEY,
    DEMO_CONSUMER_SECRET,
    DEMO_TOKEN_ID,
    DEMO_TOKEN_SECRET,
    SandboxConfig,
)
from revbridge.netsuite.sandbox.faults import FaultSpec, parse_fault_spec
from revbridge.netsuite.sandbox.server import RunningSandbox, running_sandbox, serve

__all__ = [
    "DEMO_ACCOUNT_ID",
    "DEMO_CONSUMER_KEY",
    "DEMO_CONSUMER_SECRET",
    "DEMO_TOKEN_ID",
    "DEMO_TOKEN_SECRET",
    "FaultSpec",
    "RunningSandbox",
    "Sandbox",
    "SandboxConfig",
    "create_app",
    "parse_fault_spec",
    "running_sandbox",
    "serve",
]
