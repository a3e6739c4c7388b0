"""revbridge.testing."""
