"""Joining: trade a bootstrap token for a node's own client certificate.

As a kubelet's TLS bootstrap does: make a private key on this machine (it never
leaves it), send a CertificateSigningRequest for `system:node:<name>` in
`system:nodes` to the apiserver with the bootstrap token, and wait until the
controller-manager approves and signs it. The apiserver is trusted only through
the CA given (no trust on first use).
"""
from __future__ import annotations

import asyncio
import base64
import ssl
import time
from typing import Any

import aiohttp

from kubeling import errors, pki
from kubeling.client import Client
from kubeling.resources import lookup
from kubeling.validation.formats import dns1123_subdomain

CSRS = lookup("certificatesigningrequests")
KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
NODE_USAGES = ["digital signature", "client auth"]  # an EC key: no key encipherment


class JoinError(Exception):
    """Joining failed; the message is one line, fit for the CLI."""


def _cause(exc: BaseException) -> BaseException | None:
    seen = exc
    while seen.__cause__ is not None:
        seen = seen.__cause__
    return seen


def _explain(server: str, exc: errors.ApiError) -> JoinError:
    if exc.code == 401:
        return JoinError(f"the apiserver at {server} refused the token (401 Unauthorized): "
                         "is it the token `kubeling init` printed?")
    if exc.code == 403:
        return JoinError(f"the token may not request node credentials at {server} (403 Forbidden): {exc.message}")
    root = _cause(exc)
    if isinstance(root, (aiohttp.ClientConnectorCertificateError, ssl.SSLCertVerificationError)) \
            or "CERTIFICATE_VERIFY_FAILED" in str(root) or "certificate verify failed" in str(root):
        detail = getattr(root, "certificate_error", None) or root
        text = str(getattr(detail, "verify_message", "") or detail).splitlines()[0]
        return JoinError(f"the CA certificate does not verify the apiserver at {server}: {text}")
    if exc.code == 503 and isinstance(root, (aiohttp.ClientConnectionError, OSError)):
        return JoinError(f"cannot reach the apiserver at {server}: {str(root).splitlines()[0] if str(root) else type(root).__name__}")
    return JoinError(f"the apiserver at {server} answered {exc.code} {exc.reason}: {exc.message.splitlines()[0]}")


def _conditions(csr: dict[str, Any]) -> dict[str, dict[str, Any]]:
    conds = (csr.get("status") or {}).get("conditions") or []
    return {c.get("type"): c for c in conds if isinstance(c, dict)}


async def request_node_credentials_async(server: str, token: str, ca_pem: bytes, node_name: str,
                                         timeout: float = 60) -> tuple[bytes, bytes]:
    """(client certificate PEM, private key PEM) for `system:node:<node_name>`."""
    if not ca_pem or b"-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise JoinError("the CA file holds no PEM certificate")
    try:
        pki.load_cert(ca_pem)
    except pki.PKIError as exc:
        raise JoinError(f"the CA file is not usable: {exc}") from None
    bad_name = dns1123_subdomain(node_name) if node_name else ["must not be empty"]
    if bad_name:
        raise JoinError(f"node name {node_name!r} is not valid: {bad_name[0]}")
    if not server.startswith("https://"):
        raise JoinError(f"the apiserver URL must be https://HOST:PORT, got {server!r}")
    deadline = time.monotonic() + timeout
    key_pem = pki.new_key_pem()
    request = pki.make_csr(key_pem, f"system:node:{node_name}", ["system:nodes"])
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "node-csr-"},
            "spec": {"request": base64.b64encode(request).decode(), "signerName": KUBELET_CLIENT_SIGNER,
                     "usages": NODE_USAGES}}
    client = Client(server, token, "kubeling-join", ca_pem)
    try:
        try:
            csr = await asyncio.wait_for(client.create(CSRS, body), max(0.1, deadline - time.monotonic()))
        except errors.ApiError as exc:
            raise _explain(server, exc) from None
        except asyncio.TimeoutError:
            raise JoinError(f"the apiserver at {server} did not answer within {timeout:g}s") from None
        name = csr["metadata"]["name"]
        while True:
            conds = _conditions(csr)
            for bad in ("Denied", "Failed"):
                if bad in conds:
                    why = conds[bad].get("message") or conds[bad].get("reason") or ""
                    raise JoinError(f"the certificate request {name} was {bad.lower()}: {why}")
            cert_b64 = (csr.get("status") or {}).get("certificate")
            if cert_b64:
                cert_pem = base64.b64decode(cert_b64)
                if not pki.verify_signed_by(cert_pem, ca_pem):
                    raise JoinError(f"the certificate issued for {name} is not signed by the given CA "
                                    "(does the controller-manager sign with another CA?)")
                return cert_pem, key_pem
            left = deadline - time.monotonic()
            if left <= 0:
                raise JoinError(f"no certificate for request {name} within {timeout:g}s: is the controller-manager "
                                "running with --cluster-signing-cert-file?")
            await asyncio.sleep(min(0.2, left))
            try:
                csr = await asyncio.wait_for(client.get(CSRS, name), max(0.1, deadline - time.monotonic()))
            except errors.ApiError as exc:
                raise _explain(server, exc) from None
            except asyncio.TimeoutError:
                continue  # the deadline check above answers
    finally:
        await client.close()


def request_node_credentials(server: str, token: str, ca_pem: bytes, node_name: str,
                             timeout: float = 60) -> tuple[bytes, bytes]:
    """Blocking form of request_node_credentials_async (for the CLI)."""
    return asyncio.run(request_node_credentials_async(server, token, ca_pem, node_name, timeout))
