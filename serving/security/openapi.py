"""The bearer scheme in the OpenAPI schema: which operations need a token, and their
401 and 403 answers (the check itself is ``serving.middleware.auth``)."""

from __future__ import annotations

from typing import Any

from serving.security.groups import group_of_path

BEARER_SCHEME = "bearerAuth"


def declare_security(schema: dict[str, Any], protected: frozenset[str]) -> dict[str, Any]:
    """Add the bearer scheme, and on each operation its group (``x-route-group``) and, when
    the group needs a token, ``security`` plus the 401 and 403 answers in its error body."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "a reengage token (`reengage token create`, or the admin token a first "
        "`reengage serve` writes to <data_dir>/auth/admin.token)",
    }
    for path, operations in schema.get("paths", {}).items():
        group = group_of_path(path)
        if group is None:
            continue
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            operation["x-route-group"] = group
            if group not in protected:
                continue
            operation["security"] = [{BEARER_SCHEME: []}]
            answers = operation.setdefault("responses", {})
            error = answers.get("default", {}).get("content")
            for status, text in (
                ("401", "no token, or an unknown one"),
                ("403", f"the token lacks the '{group}' role"),
            ):
                answers.setdefault(
                    status, {"description": text, **({"content": error} if error else {})}
                )
    return schema
