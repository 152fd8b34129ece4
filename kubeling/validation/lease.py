"""coordination.k8s.io/v1 Lease validation (ValidateLease)."""
from __future__ import annotations

import datetime

from kubeling.errors import FieldError, invalid_value
from kubeling.validation import formats
from kubeling.validation.fields import Checker
from kubeling.validation.meta import validate_object_meta, validate_object_meta_update


def _micro_time(value: str) -> bool:
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def validate_lease(obj: dict, old: dict | None) -> list[FieldError]:
    c = Checker()
    validate_object_meta(c, obj, True, formats.dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec") or {}
    c.str(spec, "holderIdentity", "spec.holderIdentity")
    duration = c.int(spec, "leaseDurationSeconds", "spec.leaseDurationSeconds")
    if duration is not None and duration <= 0:
        c.add(invalid_value("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = c.int(spec, "leaseTransitions", "spec.leaseTransitions")
    if transitions is not None and transitions < 0:
        c.add(invalid_value("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
    for field in ("acquireTime", "renewTime"):
        t = c.str(spec, field, f"spec.{field}")
        if t is not None and not _micro_time(t):
            c.add(invalid_value(f"spec.{field}", t, "must be an RFC 3339 time"))
    if isinstance(old, dict):
        validate_object_meta_update(c, obj, old)
    return c.errors
