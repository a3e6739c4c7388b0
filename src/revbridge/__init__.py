"""revbridge: the integration hub between Salesforce Revenue Cloud and the ERP of record."""

__version__ = "0.1.0"
