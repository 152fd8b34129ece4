"""The `fieldValidation` query parameter: what to do with fields the schema does not know.

Like kube-apiserver, unknown fields never reach storage; the mode only decides
whether the client hears about it: Ignore (silently dropped), Warn (dropped, one
`Warning` header per field; the default) or Strict (the request fails with 400).
"""
from __future__ import annotations

from typing import Any

from kubeling import errors
from kubeling.resources import Resource
from kubeling.schema import unknown_fields

MODES = ("Ignore", "Warn", "Strict")
DEFAULT_MODE = "Warn"


class FieldValidator:
    """Checks (and prunes) request objects of one resource; collects warnings."""

    def __init__(self, res: Resource, mode: str | None) -> None:
        mode = mode or DEFAULT_MODE
        if mode not in MODES:
            raise errors.bad_request(f'fieldValidation must be one of "Ignore", "Strict", or "Warn", got "{mode}"')
        self.res = res
        self.mode = mode
        self.warnings: list[str] = []

    def check(self, obj: Any, *, decoding: bool = True) -> None:
        """Drop unknown fields from `obj`; raise BadRequest for them in Strict mode.

        `decoding` says the object is a request body (the error then names the
        decoding step, as kube-apiserver's does) rather than the result of a patch."""
        found = unknown_fields(self.res.kind, obj, prune=True)
        if not found:
            return
        messages = [f'unknown field "{path}"' for path in found]
        if self.mode == "Strict":
            detail = "strict decoding error: " + ", ".join(messages)
            if decoding:
                kind, version = self.res.kind, self.res.api_version
                detail = f'{kind} in version "{version}" cannot be handled as a {kind}: {detail}'
            raise errors.bad_request(detail)
        if self.mode == "Warn":
            self.warnings.extend(m for m in messages if m not in self.warnings)

    def patched(self, obj: Any) -> None:
        """The hook the registry calls on the result of a patch."""
        self.check(obj, decoding=False)

    def headers(self) -> list[tuple[str, str]]:
        """`Warning` headers in RFC 7234 form (code 299, unknown agent, quoted text)."""
        return [("Warning", '299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"') for w in self.warnings]
