"""The app's pure-ASGI middleware, one module each, outermost first as ``serving.http``
stacks them: ``request_log`` (request id, the log line), ``drain``, ``metrics``, ``auth``
and ``fast_path``.

Middleware here means an ASGI app wrapping the next one that sees every request and
passes on what it does not answer itself; all are plain ASGI (no
``BaseHTTPMiddleware``, which runs each request through an extra task and memory stream).
``fast_path`` belongs with them though it serves a route: it sits in the same stack,
passes everything else on, and the order of the stack decides what it sees. What the
middleware serves stays where it belongs: the request log's line and sink in
``serving.request_log``, the drain state in ``serving.drain``, the tokens and route
groups in ``serving.security``.
"""
