"""certificates.k8s.io/v1 CertificateSigningRequest validation
(ValidateCertificateSigningRequestCreate/Update, shortened)."""
from __future__ import annotations

import base64
import binascii

from kubeling.errors import FieldError, invalid_value, not_supported, required
from kubeling.validation import formats
from kubeling.validation.fields import Checker
from kubeling.validation.meta import validate_object_meta, validate_object_meta_update

KEY_USAGES = ["signing", "digital signature", "content commitment", "key encipherment", "key agreement",
              "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
              "server auth", "client auth", "code signing", "email protection", "s/mime",
              "ipsec end system", "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing",
              "microsoft sgc", "netscape sgc"]
CONDITION_TYPES = ["Approved", "Denied", "Failed"]


def _pem_request(value: str) -> bool:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return b"-----BEGIN CERTIFICATE REQUEST-----" in raw


def validate_csr(obj: dict, old: dict | None) -> list[FieldError]:
    c = Checker()
    validate_object_meta(c, obj, False, formats.dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec") or {}
    request = c.str(spec, "request", "spec.request")
    if not request:
        c.add(required("spec.request"))
    elif not _pem_request(request):
        c.add(invalid_value("spec.request", "<request>", "PEM block type must be CERTIFICATE REQUEST"))
    signer = c.str(spec, "signerName", "spec.signerName")
    if not signer:
        c.add(required("spec.signerName"))
    elif "/" not in signer or not signer.split("/", 1)[0] or formats.dns1123_subdomain(signer.split("/", 1)[0]):
        c.add(invalid_value("spec.signerName", signer, "must be a fully qualified domain and path of the form "
                            "'example.com/signer-name'"))
    usages = c.list(spec, "usages", "spec.usages")
    if not usages:
        c.add(required("spec.usages"))
    else:
        for i, u in enumerate(usages):
            if u not in KEY_USAGES:
                c.add(not_supported(f"spec.usages[{i}]", u, KEY_USAGES))
    seconds = c.int(spec, "expirationSeconds", "spec.expirationSeconds")
    if seconds is not None and seconds < 600:
        c.add(invalid_value("spec.expirationSeconds", seconds, "may not specify a duration less than 600 seconds (10 minutes)"))
    status = c.obj(obj, "status", "status") or {}
    conds = c.list(status, "conditions", "status.conditions") or []
    seen: set[str] = set()
    for i, cond in enumerate(conds):
        path = f"status.conditions[{i}]"
        typ = c.str(cond, "type", f"{path}.type") if isinstance(cond, dict) else None
        if not typ:
            c.add(required(f"{path}.type"))
            continue
        if typ not in CONDITION_TYPES:
            c.add(not_supported(f"{path}.type", typ, CONDITION_TYPES))
        if typ in seen:
            c.add(invalid_value(f"{path}.type", typ, "only one condition of this type is allowed"))
        seen.add(typ)
        if c.str(cond, "status", f"{path}.status") not in ("True", "False", "Unknown"):
            c.add(not_supported(f"{path}.status", cond.get("status"), ["False", "True", "Unknown"]))
    if {"Approved", "Denied"} <= seen:
        c.add(invalid_value("status.conditions", "Approved", "Approved and Denied conditions are mutually exclusive"))
    cert = c.str(status, "certificate", "status.certificate")
    if cert:
        try:
            raw = base64.b64decode(cert, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if b"-----BEGIN CERTIFICATE-----" not in raw:
            c.add(invalid_value("status.certificate", "<certificate data>", "must contain at least one CERTIFICATE PEM block"))
    if isinstance(old, dict):
        validate_object_meta_update(c, obj, old)
        old_cert = (old.get("status") or {}).get("certificate") if isinstance(old.get("status"), dict) else None
        if old_cert and cert != old_cert:
            c.add(invalid_value("status.certificate", "<certificate data>",
                                "updates may not modify existing certificate content"))
    return c.errors
