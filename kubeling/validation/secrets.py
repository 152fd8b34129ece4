"""Secret and ServiceAccount validation (ValidateSecret, ValidateSecretUpdate,
ValidateServiceAccount), with the required keys of each standard Secret type."""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from kubeling.errors import FieldError, forbidden, invalid_value, required, too_long
from kubeling.validation import formats
from kubeling.validation.fields import Checker, index, key
from kubeling.validation.meta import validate_object_meta, validate_object_meta_update

MAX_SECRET_SIZE = 1024 * 1024
REDACTED = "<secret contents redacted>"

OPAQUE = "Opaque"
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"
DOCKERCFG = "kubernetes.io/dockercfg"
DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
BASIC_AUTH = "kubernetes.io/basic-auth"
SSH_AUTH = "kubernetes.io/ssh-auth"
TLS = "kubernetes.io/tls"
BOOTSTRAP_TOKEN = "bootstrap.kubernetes.io/token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"

IMMUTABLE = "field is immutable when `immutable` is set"


def decoded(value: Any) -> bytes | None:
    """The bytes of one base64 `data` value; None when it is not base64 text."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _data_keys(c: Checker, data: dict) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    total = 0
    for k, v in data.items():
        c.messages(key("data", k), k, formats.config_map_key(k))
        raw = decoded(v)
        if raw is None:
            c.add(invalid_value(key("data", k), REDACTED, "must be base64-encoded"))
            continue
        out[k] = raw
        total += len(raw)
    if total > MAX_SECRET_SIZE:
        c.add(too_long("data", "", MAX_SECRET_SIZE))
    return out


def _json_key(c: Checker, data: dict[str, bytes], name: str) -> None:
    if name not in data:
        c.add(required(key("data", name), ""))
        return
    try:
        json.loads(data[name])
    except ValueError as exc:
        c.add(invalid_value(key("data", name), REDACTED, str(exc)))


def _type_rules(c: Checker, obj: dict, typ: str, data: dict[str, bytes]) -> None:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    if typ == SERVICE_ACCOUNT_TOKEN:
        annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
        if not annotations.get(SA_NAME_ANNOTATION):
            c.add(required(f"metadata.annotations[{SA_NAME_ANNOTATION}]", ""))
    elif typ == DOCKERCFG:
        _json_key(c, data, ".dockercfg")
    elif typ == DOCKERCONFIGJSON:
        _json_key(c, data, ".dockerconfigjson")
    elif typ == BASIC_AUTH:
        # Either may be empty, but one of the keys must be there.
        if "username" not in data and "password" not in data:
            c.add(required(key("data", "username"), ""))
            c.add(required(key("data", "password"), ""))
    elif typ == SSH_AUTH:
        if "ssh-privatekey" not in data:
            c.add(required(key("data", "ssh-privatekey"), ""))
    elif typ == TLS:
        for name in ("tls.key", "tls.crt"):
            if name not in data:
                c.add(required(key("data", name), ""))


def validate_secret(obj: dict, old: dict | None) -> list[FieldError]:
    c = Checker()
    validate_object_meta(c, obj, True, formats.dns1123_subdomain)
    data = _data_keys(c, c.obj(obj, "data", "data") or {})
    typ = c.str(obj, "type", "type") or OPAQUE
    _type_rules(c, obj, typ, data)
    c.bool(obj, "immutable", "immutable")
    if isinstance(old, dict):
        validate_object_meta_update(c, obj, old)
        if (obj.get("type") or OPAQUE) != (old.get("type") or OPAQUE):
            c.add(invalid_value("type", obj.get("type"), "field is immutable"))
        if old.get("immutable") is True:
            if obj.get("immutable") is not True:
                c.add(forbidden("immutable", IMMUTABLE))
            if (obj.get("data") or {}) != (old.get("data") or {}):
                c.add(forbidden("data", IMMUTABLE))
    return c.errors


def validate_service_account(obj: dict, old: dict | None) -> list[FieldError]:
    c = Checker()
    validate_object_meta(c, obj, True, formats.dns1123_subdomain)
    for i, ref in enumerate(c.list(obj, "secrets", "secrets") or []):
        if not isinstance(ref, dict):
            c.add(invalid_value(index("secrets", i), ref, "must be an object"))
    for i, ref in enumerate(c.list(obj, "imagePullSecrets", "imagePullSecrets") or []):
        if not isinstance(ref, dict):
            c.add(invalid_value(index("imagePullSecrets", i), ref, "must be an object"))
    c.bool(obj, "automountServiceAccountToken", "automountServiceAccountToken")
    if isinstance(old, dict):
        validate_object_meta_update(c, obj, old)
    return c.errors
