"""Contract tests of the Salesforce connector against the sandbox org, over real HTTP."""
