"""The apiserver's serving certificate: self-signed, made once with openssl.

kubectl sends a bearer token only over TLS, so a cluster that kubectl can use
must serve HTTPS; clients trust this certificate through the kubeconfig's
certificate-authority-data."""
from __future__ import annotations

import ipaddress
import socket
import subprocess
from pathlib import Path


def _san(hosts: list[str]) -> str:
    entries = []
    for h in dict.fromkeys(hosts):
        try:
            ipaddress.ip_address(h)
            entries.append(f"IP:{h}")
        except ValueError:
            entries.append(f"DNS:{h}")
    return ",".join(entries)


def default_hosts() -> list[str]:
    hosts = ["127.0.0.1", "localhost", "kubernetes", "kubernetes.default", socket.gethostname()]
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout
        hosts += out.split()
    except (OSError, subprocess.SubprocessError):
        pass
    return hosts


def self_signed(cert: Path, key: Path, hosts: list[str], days: int = 3650) -> None:
    """Write a self-signed serving certificate (EC P-256) for hosts."""
    cert.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", str(days),
                    "-subj", "/CN=kubeling-apiserver", "-addext", f"subjectAltName={_san(hosts)}"],
                   check=True, capture_output=True)
    key.chmod(0o600)


def ensure(cert: Path, key: Path, hosts: list[str] | None = None) -> None:
    if not (cert.exists() and key.exists()):
        self_signed(cert, key, hosts or default_hosts())
