"""RFC 7386 JSON merge patch (`application/merge-patch+json`)."""

from __future__ import annotations

from typing import Any

from .errors import PatchError
from .jsonvalue import deep_copy


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return deep_copy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def apply_merge_patch(original: Any, patch: Any) -> Any:
    """Return `original` with the merge patch applied, as a new value; inputs are untouched."""
    try:
        return _merge(deep_copy(original), patch)
    except RecursionError:
        raise PatchError("merge patch is nested too deeply") from None
