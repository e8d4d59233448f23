"""
OpenAPI that says what really happens: every authenticated operation can answer with the API's
error shape, and every such POST honours `Idempotency-Key`, so the schema lists both (a drf-spectacular
postprocessing hook, see settings).
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string", "example": "invalid"},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    "description": "Validation errors by field (dotted for nested fields).",
                },
            },
        }
    },
}

ALWAYS = {
    "400": "Invalid input: `fields` names each problem.",
    "401": "Missing or invalid credentials (`not_authenticated`, `invalid_api_key`).",
    "403": "The key lacks the scope this needs (`missing_scope`), or CSRF failed for a session.",
    "404": "No such object, or not yours (`not_found`).",
    "429": "Too many requests (`throttled`); see `Retry-After`.",
}
WRITES = {
    "409": "The object's state does not allow this (`conflict`).",
    "422": "`Idempotency-Key` reused with a different request (`idempotency_key_reused`).",
}


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": "Repeat the POST safely: the same key and body get the first answer for 24 hours.",
}


def add_error_responses(result: dict, generator: Any, request: Any, public: bool) -> dict:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path in result.get("paths", {}).values():
        for method, operation in path.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if not operation.get("security"):
                # Called without credentials (Stripe's webhook): its view declares its own answers,
                # and none of the API's authentication, throttling or idempotency applies.
                continue
            answers = {**ALWAYS, **(WRITES if method in {"post", "put", "patch", "delete"} else {})}
            if method == "post":  # every authenticated POST honours it (apps.users.api.base.ApiMixin)
                parameters = operation.setdefault("parameters", [])
                if not any(parameter.get("name") == "Idempotency-Key" for parameter in parameters):
                    parameters.append(IDEMPOTENCY_KEY)
            for status, description in answers.items():
                operation["responses"].setdefault(status, {"description": description, "content": reference})
    return result
