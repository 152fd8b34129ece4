"""core/v1 Event validation (the legacy rules of ValidateEventCreate)."""
from __future__ import annotations

from kubeling.errors import FieldError, invalid_value, not_supported
from kubeling.validation import formats
from kubeling.validation.fields import Checker, child
from kubeling.validation.meta import validate_object_meta, validate_object_meta_update

EVENT_TYPES = ["Normal", "Warning"]


def validate_event(obj: dict, old: dict | None) -> list[FieldError]:
    c = Checker()
    meta = validate_object_meta(c, obj, True, formats.dns1123_subdomain)
    involved = c.obj(obj, "involvedObject", "involvedObject") or {}
    for field in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"):
        c.str(involved, field, child("involvedObject", field))
    ns = meta.get("namespace") if isinstance(meta.get("namespace"), str) else ""
    ins = involved.get("namespace") if isinstance(involved.get("namespace"), str) else ""
    # A cluster-scoped object's events live in "default" (or no namespace).
    if (not ins and ns not in ("", "default")) or (ins and ins != ns):
        c.add(invalid_value("involvedObject.namespace", ins, "does not match event.namespace"))
    for field in ("reason", "message", "firstTimestamp", "lastTimestamp", "eventTime", "action",
                  "reportingComponent", "reportingInstance"):
        c.str(obj, field, field)
    count = c.int(obj, "count", "count")
    if count is not None and count < 0:
        c.add(invalid_value("count", count, "must be greater than or equal to 0"))
    etype = c.str(obj, "type", "type")
    if etype and etype not in EVENT_TYPES:
        c.add(not_supported("type", etype, EVENT_TYPES))
    source = c.obj(obj, "source", "source") or {}
    c.str(source, "component", "source.component")
    c.str(source, "host", "source.host")
    c.obj(obj, "related", "related")
    c.obj(obj, "series", "series")
    if isinstance(old, dict):
        validate_object_meta_update(c, obj, old)
    return c.errors
