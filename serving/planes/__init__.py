"""The data plane's parts, one per concern (``serving.dataplane`` composes them)."""
