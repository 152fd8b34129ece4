"""Kubernetes API errors as `Status` objects, and field errors for validation.

The shapes follow apimachinery's `pkg/api/errors` and `pkg/util/validation/field`,
because kubectl prints them verbatim ("Error from server (NotFound): ...",
"The Pod "x" is invalid: spec.containers[0].image: Required value").
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One validation failure at a field path, like apimachinery's field.Error."""

    field: str
    reason: str  # FieldValueRequired, FieldValueInvalid, ...
    detail: str  # the human part, e.g. "Required value" or 'Invalid value: "x": must be ...'

    def message(self) -> str:
        return f"{self.field}: {self.detail}" if self.field else self.detail

    def cause(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.detail, "field": self.field}


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(field, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))


def invalid_value(field: str, value: Any, detail: str = "") -> FieldError:
    text = f"Invalid value: {_show(value)}"
    return FieldError(field, "FieldValueInvalid", text + (f": {detail}" if detail else ""))


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    options = ", ".join(json.dumps(s) for s in supported)
    return FieldError(field, "FieldValueNotSupported",
                      f"Unsupported value: {_show(value)}: supported values: {options}")


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError(field, "FieldValueDuplicate", f"Duplicate value: {_show(value)}")


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(field, "FieldValueForbidden", f"Forbidden: {detail}")


def too_long(field: str, value: Any, limit: int) -> FieldError:
    return FieldError(field, "FieldValueTooLong", f"Too long: may not be more than {limit} bytes")


def type_invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError(field, "FieldValueTypeInvalid", f"Invalid value: {_show(value)}: {detail}")


class ApiError(Exception):
    """An error the API answers with; `status()` is the wire body."""

    def __init__(self, code: int, reason: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body

    @classmethod
    def from_status(cls, body: dict[str, Any], code: int) -> "ApiError":
        return cls(int(body.get("code") or code), body.get("reason") or "Unknown",
                   body.get("message") or f"status {code}", body.get("details"))


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def _details(name: str, resource: str, group: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        d["group"] = group
    return d


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(resource, group)} "{name}" not found',
                    _details(name, resource, group))


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(409, "AlreadyExists", f'{_qualified(resource, group)} "{name}" already exists',
                    _details(name, resource, group))


def conflict(resource: str, name: str, why: str, group: str = "") -> ApiError:
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
                    _details(name, resource, group))


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(kind: str, name: str, errors: list[FieldError], group: str = "") -> ApiError:
    """422 Invalid; kubectl prefixes the message with "The "."""
    qualified = f"{kind}.{group}" if group else kind
    if len(errors) == 1:
        listed = errors[0].message()
    else:
        listed = "[" + ", ".join(e.message() for e in errors) + "]"
    details: dict[str, Any] = {"name": name, "kind": kind,
                               "causes": [e.cause() for e in errors]}
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {listed}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"application/json, application/yaml, application/merge-patch+json, "
                    f"application/json-patch+json, application/strategic-merge-patch+json, "
                    f"application/apply-patch+yaml (got {content_type!r})")


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")


def timeout(message: str) -> ApiError:
    return ApiError(504, "Timeout", message)
