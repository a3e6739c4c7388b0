"""revbridge.store."""
