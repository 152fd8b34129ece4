"""CertificateSigningRequests: the approver and the signer of nodes' client certificates.

Kubernetes' csrapproving controller approves a kubelet's client CSR when its
requester may ask for one (a bootstrap token, or the node itself renewing) and
the request is exactly a node client request: signer
`kubernetes.io/kube-apiserver-client-kubelet`, CN `system:node:<name>`, O
`system:nodes`, no SANs, client-auth usages. The csrsigning controller then signs
approved requests of the signers it serves with the cluster CA. Here both are one
controller; a bootstrapper's request that is anything else is Denied, so a leaked
join token buys nothing but a node identity.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from kubeling import errors, pki
from kubeling.client import Client, resource_path
from kubeling.informer import Informer
from kubeling.resources import lookup
from kubeling.timefmt import format_time

log = logging.getLogger("kubeling.csr")
CSRS = lookup("certificatesigningrequests")

KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
APISERVER_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
SIGNERS = (KUBELET_CLIENT_SIGNER, APISERVER_CLIENT_SIGNER)
BOOTSTRAPPERS = "system:bootstrappers"
NODES = "system:nodes"
NODE_PREFIX = "system:node:"
# Kubernetes' kubelet client usages: with or without key encipherment (RSA vs EC keys).
KUBELET_USAGES = ({"digital signature", "client auth"}, {"key encipherment", "digital signature", "client auth"})
MAX_DURATION = 365 * 24 * 3600


@dataclass(frozen=True)
class Review:
    approve: bool  # False: deny
    reason: str
    message: str


def conditions(csr: dict[str, Any]) -> dict[str, dict[str, Any]]:
    conds = (csr.get("status") or {}).get("conditions") or []
    return {c["type"]: c for c in conds if isinstance(c, dict) and c.get("status", "True") == "True"
            and isinstance(c.get("type"), str)}


def decode_request(csr: dict[str, Any]) -> x509.CertificateSigningRequest:
    raw = (csr.get("spec") or {}).get("request") or ""
    try:
        pem = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise pki.PKIError("spec.request is not base64") from None
    return pki.load_csr(pem)


def node_client_problem(csr: dict[str, Any]) -> str | None:
    """Why this is not a node client request (None: it is one)."""
    spec = csr.get("spec") or {}
    if spec.get("signerName") != KUBELET_CLIENT_SIGNER:
        return f"signerName must be {KUBELET_CLIENT_SIGNER}"
    try:
        req = decode_request(csr)
    except pki.PKIError as exc:
        return str(exc)
    cn, orgs = pki.subject_of(req)
    if orgs != [NODES]:
        return f'subject organization must be exactly ["{NODES}"], got {orgs}'
    if not cn.startswith(NODE_PREFIX) or len(cn) == len(NODE_PREFIX):
        return f'subject common name must be "{NODE_PREFIX}<nodeName>", got "{cn}"'
    try:
        req.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return "a node client request may not carry subject alternative names"
    except x509.ExtensionNotFound:
        pass
    usages = set(spec.get("usages") or [])
    if usages not in KUBELET_USAGES:
        return f"usages must be {sorted(KUBELET_USAGES[0])} (optionally with key encipherment), got {sorted(usages)}"
    return None


def review(csr: dict[str, Any]) -> Review | None:
    """The approver's decision; None when it is not this approver's to make."""
    spec = csr.get("spec") or {}
    groups = spec.get("groups") or []
    bootstrapper = BOOTSTRAPPERS in groups
    if spec.get("signerName") != KUBELET_CLIENT_SIGNER and not bootstrapper:
        return None  # someone else's request: an admin approves it (or not)
    problem = node_client_problem(csr)
    if problem is not None:
        return Review(False, "NotANodeClientRequest", problem)
    cn, _ = pki.subject_of(decode_request(csr))
    if bootstrapper:
        return Review(True, "AutoApproved", "Auto approving kubelet client certificate after bootstrap token")
    if spec.get("username") == cn and NODES in groups:
        return Review(True, "AutoApproved", "Auto approving self kubelet client certificate")
    return Review(False, "RequesterMayNotAsk",
                  f'user "{spec.get("username")}" may not request a certificate for "{cn}"')


def sign_problem(csr: dict[str, Any]) -> str | None:
    """Why an approved request of a signer we serve cannot be signed."""
    signer = (csr.get("spec") or {}).get("signerName")
    if signer == KUBELET_CLIENT_SIGNER:
        return node_client_problem(csr)
    try:
        decode_request(csr)
    except pki.PKIError as exc:
        return str(exc)
    if "client auth" not in ((csr.get("spec") or {}).get("usages") or []):
        return f"{APISERVER_CLIENT_SIGNER} signs client certificates only: usages must include \"client auth\""
    return None


def _condition(typ: str, reason: str, message: str) -> dict[str, Any]:
    from datetime import datetime, timezone
    now = format_time(datetime.now(timezone.utc))
    return {"type": typ, "status": "True", "reason": reason, "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now}


class CSRSigningController:
    def __init__(self, client: Client, ca_cert: str, ca_key: str) -> None:
        self.client = client
        # Read once at start: a broken CA file stops the controller-manager with a clear message.
        self.ca_pem = Path(ca_cert).read_bytes()
        self.ca_key_pem = Path(ca_key).read_bytes()
        pki.issue_cert_pem(self.ca_pem, self.ca_key_pem, "kubeling-signer-selftest", days=1)
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.informer = Informer(client, CSRS, on_add=self._enqueue, on_update=lambda _o, n: self._enqueue(n))

    def _enqueue(self, csr: dict[str, Any]) -> None:
        self.queue.put_nowait(csr["metadata"]["name"])

    async def sync(self, name: str) -> None:
        csr = self.informer.get("", name)
        if csr is None:
            return
        conds = conditions(csr)
        if "Denied" in conds or "Failed" in conds or (csr.get("status") or {}).get("certificate"):
            return
        if "Approved" not in conds:
            decision = review(csr)
            if decision is None:
                return
            cond = _condition("Approved" if decision.approve else "Denied", decision.reason, decision.message)
            csr = await self._write(csr, "approval", cond)
            log.info("%s %s: %s", "approved" if decision.approve else "denied", name, decision.message)
            if not decision.approve:
                return
        if (csr.get("spec") or {}).get("signerName") not in SIGNERS:
            return
        problem = sign_problem(csr)
        if problem is not None:
            await self._write(csr, "status", _condition("Failed", "SignerValidationFailure", problem))
            log.info("not signing %s: %s", name, problem)
            return
        seconds = (csr.get("spec") or {}).get("expirationSeconds")
        days = max(1, min(int(seconds), MAX_DURATION) // 86400) if isinstance(seconds, int) else 365
        pem = base64.b64decode(csr["spec"]["request"])
        cert = pki.sign_csr(self.ca_pem, self.ca_key_pem, pem, days=days, client=True)
        body = dict(csr)
        body["status"] = {**(csr.get("status") or {}), "certificate": base64.b64encode(cert).decode()}
        await self.client.request("PUT", resource_path(CSRS, None, name, "status"), body)
        log.info("signed %s for %s", name, pki.subject_of(pki.load_cert(cert))[0])

    async def _write(self, csr: dict[str, Any], sub: str, cond: dict[str, Any]) -> dict[str, Any]:
        body = dict(csr)
        status = dict(csr.get("status") or {})
        status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]] + [cond]
        body["status"] = status
        return await self.client.request("PUT", resource_path(CSRS, None, csr["metadata"]["name"], sub), body)

    async def run(self) -> None:
        task = asyncio.create_task(self.informer.run())
        try:
            while True:
                name = await self.queue.get()
                try:
                    await self.sync(name)
                except errors.ApiError as exc:
                    if exc.code == 409:  # a newer version is on its way through the informer
                        continue
                    if exc.code != 404:
                        log.warning("csr %s: %s", name, exc.message)
                        await asyncio.sleep(1)
                        self.queue.put_nowait(name)
                except Exception:  # a bug must not stop the other requests
                    log.exception("csr %s", name)
        finally:
            task.cancel()
