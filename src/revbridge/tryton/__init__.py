"""Tryton as the ERP of record: a managed local instance, a JSON-RPC client, accounting operations.

Import the submodules directly (``revbridge.tryton.instance``, ``.rpc``, ``.operations``,
``.cli``). This package imports nothing itself: the trytond server imports
``revbridge.tryton.server_cache`` through it and should not pay for the hub's modules.
"""
