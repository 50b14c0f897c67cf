"""Plain-Python components: feature lookup, model service, bandit, email writer.

They import neither Ray nor FastAPI (an import-linter contract checks it); the
deployments in ``serving.deployments`` wrap them, and the dataplane calls them through
the structural types in ``components.api``.
"""
