"""Reading and writing kubeconfig files (the format kubectl uses)."""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ADMIN_KUBECONFIG = "/etc/kubeling/admin.kubeconfig"


@dataclass(frozen=True)
class Connection:
    server: str
    token: str | None = None
    namespace: str = "default"
    ca_pem: bytes | None = None
    insecure: bool = False
    cert_pem: bytes | None = None  # client certificate (client-certificate[-data])
    key_pem: bytes | None = None  # its private key (client-key[-data])


def default_path() -> str:
    """$KUBECONFIG, else the admin kubeconfig `kubeling up` writes, else ~/.kube/config."""
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    if os.path.exists(ADMIN_KUBECONFIG):
        return ADMIN_KUBECONFIG
    return str(Path.home() / ".kube" / "config")


def _named(entries: Any, name: str, field: str) -> dict[str, Any]:
    for e in entries or []:
        if isinstance(e, dict) and e.get("name") == name:
            return e.get(field) or {}
    raise ValueError(f"kubeconfig has no {field} named {name!r}")


def load(path: str | None = None, context: str | None = None) -> Connection:
    path = path or default_path()
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ValueError(f"no kubeconfig at {path} (run `kubeling up` or set KUBECONFIG)")
    except yaml.YAMLError as exc:
        raise ValueError(f"kubeconfig {path} is not valid YAML: {exc}")
    ctx_name = context or doc.get("current-context")
    if not ctx_name:
        raise ValueError(f"kubeconfig {path} has no current-context")
    ctx = _named(doc.get("contexts"), ctx_name, "context")
    cluster = _named(doc.get("clusters"), ctx.get("cluster", ""), "cluster")
    user = _named(doc.get("users"), ctx["user"], "user") if ctx.get("user") else {}
    server = cluster.get("server")
    if not server:
        raise ValueError(f"kubeconfig {path}: cluster {ctx.get('cluster')!r} has no server")
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    cert_pem = _data_or_file(user, "client-certificate")
    key_pem = _data_or_file(user, "client-key")
    if bool(cert_pem) != bool(key_pem):
        raise ValueError(f"kubeconfig {path}: user {ctx.get('user')!r} needs both client-certificate and client-key")
    ca = None
    if cluster.get("certificate-authority-data"):
        ca = base64.b64decode(cluster["certificate-authority-data"])
    elif cluster.get("certificate-authority"):
        ca = Path(cluster["certificate-authority"]).read_bytes()
    return Connection(server=server.rstrip("/"), token=token, namespace=ctx.get("namespace") or "default",
                      ca_pem=ca, insecure=bool(cluster.get("insecure-skip-tls-verify")),
                      cert_pem=cert_pem, key_pem=key_pem)


def _data_or_file(entry: dict[str, Any], field: str) -> bytes | None:
    if entry.get(f"{field}-data"):
        return base64.b64decode(entry[f"{field}-data"])
    if entry.get(field):
        return Path(entry[field]).read_bytes()
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def render(server: str, token: str | None = None, ca_pem: bytes | None = None, name: str = "kubeling",
           user: str = "admin", *, cert_pem: bytes | None = None, key_pem: bytes | None = None) -> str:
    """A kubeconfig with one cluster, one user and one context. The user has a
    bearer token, or a client certificate and key (embedded, as kubeadm writes them)."""
    cluster: dict[str, Any] = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = _b64(ca_pem)
    if bool(cert_pem) != bool(key_pem):
        raise ValueError("a client certificate needs its key (and a key its certificate)")
    credentials: dict[str, Any] = {}
    if cert_pem and key_pem:
        credentials = {"client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)}
    if token:
        credentials["token"] = token
    doc = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": f"{user}@{name}", "context": {"cluster": name, "user": user}}],
        "current-context": f"{user}@{name}",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write(path: str, server: str, token: str | None = None, ca_pem: bytes | None = None, *,
          cert_pem: bytes | None = None, key_pem: bytes | None = None, user: str = "admin",
          name: str = "kubeling") -> None:
    """Write a kubeconfig 0600 (it holds credentials), atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = render(server, token, ca_pem, name, user, cert_pem=cert_pem, key_pem=key_pem)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(p)
