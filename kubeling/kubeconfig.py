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
    ca = None
    if cluster.get("certificate-authority-data"):
        ca = base64.b64decode(cluster["certificate-authority-data"])
    elif cluster.get("certificate-authority"):
        ca = Path(cluster["certificate-authority"]).read_bytes()
    return Connection(server=server.rstrip("/"), token=token, namespace=ctx.get("namespace") or "default",
                      ca_pem=ca, insecure=bool(cluster.get("insecure-skip-tls-verify")))


def render(server: str, token: str, ca_pem: bytes | None = None, name: str = "kubeling",
           user: str = "admin") -> str:
    cluster: dict[str, Any] = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    doc = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": f"{user}@{name}", "context": {"cluster": name, "user": user}}],
        "current-context": f"{user}@{name}",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write(path: str, server: str, token: str, ca_pem: bytes | None = None) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(render(server, token, ca_pem))
    os.chmod(tmp, 0o600)
    tmp.replace(p)
