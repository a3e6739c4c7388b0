"""revbridge.netsuite."""
