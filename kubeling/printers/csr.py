"""CertificateSigningRequest rows, as kube-apiserver prints them
(NAME, AGE, SIGNERNAME, REQUESTOR, REQUESTEDDURATION, CONDITION)."""
from __future__ import annotations

from datetime import datetime

from kubeling import timefmt
from kubeling.printers.access import get, text
from kubeling.printers.columns import age_column, column, name_column

COLUMNS = [
    name_column(),
    age_column(),
    column("SignerName", "Name of the signer the request is for."),
    column("Requestor", "Name of the user who created the request."),
    column("RequestedDuration", "Requested duration of the issued certificate."),
    column("Condition", "Approval, denial or failure of the request, and whether a certificate was issued."),
]


def condition_text(csr: dict) -> str:
    """`Approved,Issued`, `Denied`, `Pending`, ... (Kubernetes' extractCSRStatus)."""
    conds = get(csr, "status", "conditions")
    types = [c.get("type") for c in conds if isinstance(c, dict) and c.get("status", "True") == "True"] \
        if isinstance(conds, list) else []
    types = [t for t in types if isinstance(t, str)]
    if not types:
        types = ["Pending"]
    if get(csr, "status", "certificate"):
        types.append("Issued")
    return ",".join(types)


def row(csr: dict, now: datetime) -> dict:
    seconds = get(csr, "spec", "expirationSeconds")
    duration = timefmt.human_duration(float(seconds)) if isinstance(seconds, int) else "<none>"
    return {"cells": [text(csr, "metadata", "name"),
                      timefmt.since(get(csr, "metadata", "creationTimestamp"), now),
                      text(csr, "spec", "signerName"), text(csr, "spec", "username"), duration,
                      condition_text(csr)]}
