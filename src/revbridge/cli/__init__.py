"""revbridge.cli."""
