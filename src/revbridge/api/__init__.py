"""The HTTP edge: webhooks, the ops API, the console, metrics and health."""
