"""revbridge.engine."""
