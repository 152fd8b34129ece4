"""ConfigMap validation (ValidateConfigMap / ValidateConfigMapUpdate)."""
from __future__ import annotations

import base64
import binascii

from kubeling.errors import FieldError, forbidden, invalid_value, too_long
from kubeling.validation import formats
from kubeling.validation.fields import Checker, key
from kubeling.validation.meta import validate_object_meta, validate_object_meta_update

MAX_SIZE = 1024 * 1024


def validate_configmap(obj: dict, old: dict | None) -> list[FieldError]:
    c = Checker()
    validate_object_meta(c, obj, True, formats.dns1123_subdomain)
    total = 0
    data = c.obj(obj, "data", "data") or {}
    for k, v in data.items():
        c.messages(key("data", k), k, formats.config_map_key(k))
        if c.as_str(v, key("data", k)) is not None:
            total += len(v.encode())
    binary = c.obj(obj, "binaryData", "binaryData") or {}
    for k, v in binary.items():
        c.messages(key("binaryData", k), k, formats.config_map_key(k))
        if k in data:
            c.add(invalid_value("binaryData", k, "duplicate of key present in data"))
        if c.as_str(v, key("binaryData", k)) is None:
            continue
        try:
            total += len(base64.b64decode(v, validate=True))
        except (binascii.Error, ValueError):
            c.add(invalid_value(key("binaryData", k), "<binary>", "must be base64-encoded"))
    if total > MAX_SIZE:
        c.add(too_long("", "", MAX_SIZE))
    c.bool(obj, "immutable", "immutable")
    if isinstance(old, dict):
        validate_object_meta_update(c, obj, old)
        if old.get("immutable") is True:
            if obj.get("immutable") is not True:
                c.add(forbidden("immutable", "field is immutable when `immutable` is set"))
            if obj.get("data") != old.get("data"):
                c.add(forbidden("data", "field is immutable when `immutable` is set"))
            if obj.get("binaryData") != old.get("binaryData"):
                c.add(forbidden("binaryData", "field is immutable when `immutable` is set"))
    return c.errors
