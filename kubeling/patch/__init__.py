"""Patch machinery: JSON merge patch, JSON patch, strategic merge patch (and kubectl's
three-way apply patch), server-side apply. Pure functions over JSON values; they never
modify their inputs and raise only PatchError."""

from .errors import PatchError
from .json_patch import apply_json_patch
from .merge_patch import apply_merge_patch
from .server_side_apply import apply_patch, fields_v1, record_update
from .strategic_merge import (
    LAST_APPLIED_ANNOTATION,
    apply_strategic_merge_patch,
    create_three_way_merge_patch,
    create_two_way_merge_patch,
    last_applied_configuration,
    with_last_applied_annotation,
)

__all__ = [
    "LAST_APPLIED_ANNOTATION",
    "PatchError",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_patch",
    "apply_strategic_merge_patch",
    "create_three_way_merge_patch",
    "create_two_way_merge_patch",
    "fields_v1",
    "last_applied_configuration",
    "record_update",
    "with_last_applied_annotation",
]
