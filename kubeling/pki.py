"""Certificates: a cluster CA, certificates it issues, and certificate requests.

The control plane has one CA. It signs the apiserver's serving certificate (whose
SANs are every address the apiserver is reached on), the components' client
certificates (CN = user, O = groups, as kube-apiserver reads them) and, through
the controller-manager's signer, the nodes' client certificates. Keys are EC
P-256 and are written 0600. Everything goes through the `cryptography` package:
one code path, no openssl binary needed on a node.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
import subprocess
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
CERT_DAYS = 365
# Clocks of freshly booted machines disagree a little: certificates are valid from a bit ago.
BACKDATE = dt.timedelta(minutes=5)


class PKIError(ValueError):
    """A certificate, key or request that cannot be used (one-line message)."""


# ---- keys and names ------------------------------------------------------------------

def new_key_pem() -> bytes:
    """A fresh EC P-256 private key, PEM (PKCS#8, unencrypted)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key_pem(private_pem: bytes) -> bytes:
    """The public half of a PEM private key, PEM (SubjectPublicKeyInfo)."""
    return _load_key(private_pem).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_key(pem: bytes):  # type: ignore[no-untyped-def]
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PKIError(f"not a usable PEM private key: {exc}") from None


def load_cert(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise PKIError(f"not a PEM certificate: {exc}") from None


def _name(cn: str, orgs: Iterable[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _sans(hosts: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for h in dict.fromkeys(h for h in hosts if h):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            out.append(x509.DNSName(h))
    return out


def subject_of(cert_or_csr: x509.Certificate | x509.CertificateSigningRequest) -> tuple[str, list[str]]:
    """(CN, [O...]) of a certificate or request: the user and groups it claims."""
    subj = cert_or_csr.subject
    cns = subj.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = [str(a.value) for a in subj.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return (str(cns[0].value) if cns else ""), orgs


# ---- building certificates -----------------------------------------------------------

def _build(subject: x509.Name, public_key, issuer: x509.Name, signing_key, *,  # type: ignore[no-untyped-def]
           days: int, ca: bool, client: bool, server: bool,
           hosts: Iterable[str] = (), ca_public_key=None) -> x509.Certificate:  # type: ignore[no-untyped-def]
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - BACKDATE).not_valid_after(now + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                          content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False,
                                          encipher_only=False, decipher_only=False), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                          content_commitment=False, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=False, crl_sign=False,
                                          encipher_only=False, decipher_only=False), critical=True)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
                 ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        if usages:
            b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if ca_public_key is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public_key), critical=False)
    sans = _sans(hosts)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(signing_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with `mode` from the start (a key is never world-readable, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    tmp.replace(path)


def make_ca(cert: Path, key: Path, cn: str = "kubeling-ca", days: int = CA_DAYS) -> None:
    """Write a new self-signed CA certificate and its key (0600)."""
    key_pem = new_key_pem()
    k = _load_key(key_pem)
    name = _name(cn)
    ca = _build(name, k.public_key(), name, k, days=days, ca=True, client=False, server=False)
    _write(Path(key), key_pem, 0o600)
    _write(Path(cert), _pem(ca), 0o644)


def issue_cert_pem(ca_cert_pem: bytes, ca_key_pem: bytes, cn: str, orgs: Iterable[str] = (),
                   hosts: Iterable[str] = (), *, client: bool = True, server: bool = False,
                   days: int = CERT_DAYS, key_pem: bytes | None = None) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a new certificate signed by the CA."""
    ca = load_cert(ca_cert_pem)
    ca_key = _load_key(ca_key_pem)
    key_pem = key_pem or new_key_pem()
    k = _load_key(key_pem)
    cert = _build(_name(cn, orgs), k.public_key(), ca.subject, ca_key, days=days, ca=False,
                  client=client, server=server, hosts=hosts, ca_public_key=ca_key.public_key())
    return _pem(cert), key_pem


def issue_cert(ca_cert: Path, ca_key: Path, cert: Path, key: Path, cn: str, orgs: Iterable[str] = (),
               hosts: Iterable[str] = (), client: bool = True, server: bool = False,
               days: int = CERT_DAYS) -> None:
    """Write a certificate for `cn` (the user), `orgs` (its groups) and `hosts` (its SANs)
    signed by the CA, and its new key (0600). A serving certificate: server=True, client=False."""
    cert_pem, key_pem = issue_cert_pem(Path(ca_cert).read_bytes(), Path(ca_key).read_bytes(), cn, orgs,
                                       hosts, client=client, server=server, days=days)
    _write(Path(key), key_pem, 0o600)
    _write(Path(cert), cert_pem, 0o644)


# ---- certificate signing requests ----------------------------------------------------

def make_csr(key_pem: bytes, cn: str, orgs: Iterable[str] = ()) -> bytes:
    """A PKCS#10 request (PEM) for `cn`/`orgs`, signed with the requester's own key."""
    k = _load_key(key_pem)
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(cn, orgs)).sign(k, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def load_csr(pem: bytes) -> x509.CertificateSigningRequest:
    """A parsed request whose self-signature verifies (PKIError otherwise)."""
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        raise PKIError(f"not a PEM certificate request: {exc}") from None
    if not csr.is_signature_valid:
        raise PKIError("the certificate request's signature does not verify")
    return csr


def sign_csr(ca_cert_pem: bytes, ca_key_pem: bytes, csr_pem: bytes, *, days: int = CERT_DAYS,
             client: bool = True, server: bool = False) -> bytes:
    """Sign a request's subject and public key with the CA (extensions the requester
    asked for are ignored: the signer decides the usages). Returns the certificate PEM."""
    csr = load_csr(csr_pem)
    ca = load_cert(ca_cert_pem)
    ca_key = _load_key(ca_key_pem)
    hosts: list[str] = []
    if server:
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            hosts = [str(v) for v in san.get_values_for_type(x509.DNSName)] + \
                    [str(v) for v in san.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            pass
    cert = _build(csr.subject, csr.public_key(), ca.subject, ca_key, days=days, ca=False,
                  client=client, server=server, hosts=hosts, ca_public_key=ca_key.public_key())
    return _pem(cert)


def verify_signed_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    """Whether `cert_pem` was issued by the CA in `ca_pem` (signature check only)."""
    try:
        load_cert(cert_pem).verify_directly_issued_by(load_cert(ca_pem))
        return True
    except (PKIError, ValueError, TypeError, InvalidSignature):
        return False


# ---- the single-machine serving certificate (`kubeling up`) --------------------------

def default_hosts() -> list[str]:
    hosts = ["127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local", socket.gethostname()]
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout
        hosts += out.split()
    except (OSError, subprocess.SubprocessError):
        pass
    return hosts


def self_signed(cert: Path, key: Path, hosts: list[str], days: int = CA_DAYS) -> None:
    """Write a self-signed serving certificate for hosts. It is its own CA, so a
    kubeconfig may name this very file as certificate-authority-data."""
    key_pem = new_key_pem()
    k = _load_key(key_pem)
    name = _name("kubeling-apiserver")
    c = _build(name, k.public_key(), name, k, days=days, ca=True, client=False, server=True, hosts=hosts)
    _write(Path(key), key_pem, 0o600)
    _write(Path(cert), _pem(c), 0o644)


def server_tls_context(cert: str, key: str | None, client_ca: str | None = None) -> ssl.SSLContext:
    """A TLS server context (the apiserver's, the node agent's). With a client CA, a
    client may present a certificate signed by it: optional at the handshake, so a
    request without one is answered (anonymous, or a readable 401), while one that
    does not verify fails the handshake, as with kube-apiserver."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(cafile=client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


# The apiserver's identity towards node agents (kubeadm's apiserver-kubelet-client).
KUBELET_CLIENT_CN = "kube-apiserver-kubelet-client"
KUBELET_CLIENT_GROUPS = ("system:masters",)


def ensure_kubelet_client(ca_cert: Path, ca_key: Path, cert: Path, key: Path) -> None:
    """The apiserver's client certificate for the agents' port (made once, with its CA
    when that does not exist yet; agents take the CA as --client-ca-file)."""
    if not (Path(ca_cert).exists() and Path(ca_key).exists()):
        make_ca(Path(ca_cert), Path(ca_key), cn="kubeling-kubelet-client-ca")
    if not (Path(cert).exists() and Path(key).exists()):
        issue_cert(Path(ca_cert), Path(ca_key), Path(cert), Path(key), KUBELET_CLIENT_CN, KUBELET_CLIENT_GROUPS)


def ensure(cert: Path, key: Path, hosts: list[str] | None = None) -> None:
    """The serving certificate `kubeling up` uses: made once, kept across restarts."""
    if not (Path(cert).exists() and Path(key).exists()):
        self_signed(Path(cert), Path(key), hosts or default_hosts())
