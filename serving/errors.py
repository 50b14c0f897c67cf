"""Error types and the one place that maps them to HTTP status codes.

Every error a caller can meet is a ``ReengageError`` carrying its own status. They are
plain picklable exceptions (all state passed through ``Exception.__init__``), since
they cross Ray handles between replicas.
"""

from __future__ import annotations

from typing import Any

from feature_store.errors import OnlineStoreUnavailable
from feature_store.redact import redact


class ReengageError(Exception):
    status_code: int = 500
    error_type: str = "internal_error"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message, field)
        self.message = message
        self.field = field

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.field))

    def __str__(self) -> str:
        return self.message if self.field is None else f"{self.field}: {self.message}"

    def to_body(self) -> dict[str, Any]:
        return error_body(self.error_type, self.message, self.field)


class InvalidRequest(ReengageError):
    """The caller's payload is malformed or violates the schema."""

    status_code = 422
    error_type = "invalid_request"


class MalformedBody(ReengageError):
    """The body is not parseable at all (bad JSON, bad binary framing)."""

    status_code = 400
    error_type = "malformed_body"


class Unauthenticated(ReengageError):
    """No bearer token, or one the server does not know (the message never holds the token)."""

    status_code = 401
    error_type = "unauthenticated"


class PermissionDenied(ReengageError):
    """A known token without the role of the route group it called."""

    status_code = 403
    error_type = "permission_denied"


class NotFound(ReengageError):
    status_code = 404
    error_type = "not_found"


class ModelNotFound(NotFound):
    error_type = "model_not_found"


class DecisionNotFound(NotFound):
    error_type = "decision_not_found"


class Conflict(ReengageError):
    status_code = 409
    error_type = "conflict"


class ExplainerUnavailable(Conflict):
    """The model version asked to explain has no explainer (built before explainers, or
    its files are missing): refused, never answered without its explanation."""

    error_type = "explainer_unavailable"


class OptedOut(Conflict):
    """A forced contact action for a customer who opted out (or was erased): refused."""

    error_type = "opted_out"


class ModelNotReady(ReengageError):
    status_code = 503
    error_type = "model_not_ready"


class DependencyUnavailable(ReengageError):
    """A backing service (feature store, bandit state, LLM) is down or too slow."""

    status_code = 503
    error_type = "dependency_unavailable"


class Overloaded(ReengageError):
    """A bounded queue is full, or the component is shutting down: nothing was done, so the
    caller may retry after ``retry_after_s`` (the HTTP layer's ``Retry-After``)."""

    status_code = 503
    error_type = "overloaded"

    def __init__(self, message: str, field: str | None = None, retry_after_s: float = 1.0) -> None:
        super().__init__(message, field)
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.field, self.retry_after_s))


class Timeout(ReengageError):
    status_code = 504
    error_type = "timeout"


def error_body(error_type: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The error body of docs/api.md; the message is redacted (no credential of a URL built from
    settings, nor a token, reaches a caller whatever raised it)."""
    return {"error": {"type": error_type, "message": redact(message), "field": field}}


def status_and_body(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """The one mapper: any exception to (HTTP status, the error body of docs/api.md).

    Ray wraps exceptions raised in another replica (``RayTaskError``); unwrap them so a
    caller's mistake found two hops away is still a 4xx, not a 500.
    """
    exc = _unwrap(exc)
    if isinstance(exc, ReengageError):
        return exc.status_code, exc.to_body()
    if isinstance(
        exc, OnlineStoreUnavailable
    ):  # feature_store's own error (it never imports serving)
        return DependencyUnavailable.status_code, error_body(
            DependencyUnavailable.error_type, str(exc)
        )
    name = type(exc).__name__
    if name in {
        "BackPressureError",
        "DeploymentUnavailableError",
        "ActorUnavailableError",
        "ActorDiedError",
    }:
        return 503, error_body(
            "dependency_unavailable", f"a serving component is unavailable: {name}"
        )
    if isinstance(exc, TimeoutError):
        return 504, error_body("timeout", "the request timed out")
    return 500, error_body("internal_error", f"{name}: internal error")


def _unwrap(exc: BaseException) -> BaseException:
    seen = 0
    while seen < 5:
        seen += 1
        cause = getattr(exc, "cause", None)  # ray.exceptions.RayTaskError.cause
        if isinstance(cause, BaseException) and cause is not exc:
            exc = cause
            continue
        inner = getattr(exc, "as_instanceof_cause", None)
        if callable(inner) and type(exc).__name__.startswith("RayTaskError"):
            try:
                unwrapped = inner()
            except Exception:  # pragma: no cover - defensive
                break
            if unwrapped is exc:
                break
            exc = unwrapped
            continue
        break
    return exc


def grpc_code(status: int) -> Any:
    """The gRPC status for an HTTP status from ``status_and_body`` (same mapping as MLServer)."""
    import grpc

    return {
        400: grpc.StatusCode.INVALID_ARGUMENT,
        422: grpc.StatusCode.INVALID_ARGUMENT,
        401: grpc.StatusCode.UNAUTHENTICATED,
        403: grpc.StatusCode.PERMISSION_DENIED,
        404: grpc.StatusCode.NOT_FOUND,
        409: grpc.StatusCode.ALREADY_EXISTS,
        503: grpc.StatusCode.UNAVAILABLE,
        504: grpc.StatusCode.DEADLINE_EXCEEDED,
    }.get(status, grpc.StatusCode.INTERNAL)


def retry_after(exc: BaseException) -> dict[str, str] | None:
    """``Retry-After`` for errors that say when to come back (an overloaded queue)."""
    seconds = getattr(_unwrap(exc), "retry_after_s", None)
    return None if seconds is None else {"Retry-After": str(max(1, int(round(seconds))))}


# Errors the one mapper knows besides ours: the HTTP layer answers them like ours (no
# traceback, their own status), since they are expected states, not server bugs.
MAPPED_ERRORS: tuple[type[Exception], ...] = (ReengageError, OnlineStoreUnavailable)
