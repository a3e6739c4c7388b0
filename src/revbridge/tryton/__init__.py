"""revbridge.tryton."""
