"""OpenAPI declarations for routes that read raw bytes and answer with orjson.

The routes never hand FastAPI a body parameter or a model to serialise (that would
validate every request twice and every answer once more), so FastAPI cannot see their
request and error bodies: these helpers state them for the schema. Documentation only;
nothing here runs per request.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

# what each status means on our routes (serving.errors maps every error to one of them)
ERROR_STATUS: dict[int | str, str] = {
    400: "malformed body: not JSON, or bad binary framing",
    404: "not found (the message and field say what)",
    403: "the token lacks the role this needs (a version pin needs admin)",
    409: "conflict: a second reward for the same decision, a contact forced for a customer who "
    "opted out, or explanations asked of a model version that has no explainer",
    422: "invalid request: the field names the offending value",
    503: "a dependency is down or disabled (the message names it), or the model is not ready",
    504: "timed out",
    "default": "internal error",
}


def error_responses(model: type[BaseModel], *codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the error body ``model`` under each status in
    ``codes``, and as the ``default`` (an unexpected failure is a 500 with the same body).

    Declaring ``default`` also keeps FastAPI from adding its own 422 body
    (``HTTPValidationError``), which our error handler never sends.
    """
    keys: list[int | str] = [*codes, "default"]
    return {key: {"model": model, "description": ERROR_STATUS[key]} for key in keys}


def request_body(
    model: type[BaseModel],
    *,
    required: bool = True,
    extra: dict[str, dict[str, Any]] | None = None,
    examples: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``openapi_extra=`` declaring ``model`` as the JSON request body (plus ``extra``
    media types, e.g. the binary tensor extension). ``examples``: named OpenAPI examples
    (``{"summary", "value"}``) of a valid body, for readers of /docs and for schema-driven
    testers, which send them as they are."""
    body: dict[str, Any] = {"schema": inline_schema(model)}
    if examples:
        body["examples"] = examples
    content: dict[str, dict[str, Any]] = {"application/json": body}
    content.update(extra or {})
    return {"requestBody": {"required": required, "content": content}}


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its ``$defs`` inlined, so it stands alone inside an
    operation (the app's ``components`` only hold the types FastAPI saw itself)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**resolve(defs[ref.removeprefix("#/$defs/")]), **rest}
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
