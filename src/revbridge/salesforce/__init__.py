"""revbridge.salesforce."""
