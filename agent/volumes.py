"""Pod volumes on the node: emptyDir under the pod's directory, hostPath as
given; volumeMounts become bind mounts."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any


class VolumeError(Exception):
    pass


# The directories of kubelet's volume plugins for the kinds agent.projected writes.
OBJECT_VOLUME_DIRS = {"configMap": "kubernetes.io~configmap", "secret": "kubernetes.io~secret",
                      "downwardAPI": "kubernetes.io~downward-api", "projected": "kubernetes.io~projected"}


def pod_dir(root: str, uid: str) -> Path:
    return Path(root, "pods", uid)


def prepare_volumes(root: str, pod: dict[str, Any]) -> dict[str, str]:
    """Host paths for every supported volume of the pod, created as needed."""
    uid = pod["metadata"]["uid"]
    out: dict[str, str] = {}
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        name = vol.get("name", "")
        if "emptyDir" in vol:
            path = pod_dir(root, uid) / "volumes" / "kubernetes.io~empty-dir" / name
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o777)  # as kubelet: any container user may write
            if ((vol.get("emptyDir") or {}).get("medium") == "Memory"
                    and not os.path.ismount(path)):
                subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(path)], check=True)
            out[name] = str(path)
        elif "hostPath" in vol:
            hp = vol["hostPath"] or {}
            path = hp.get("path", "")
            typ = hp.get("type") or ""
            if typ == "DirectoryOrCreate":
                Path(path).mkdir(parents=True, exist_ok=True)
            elif typ == "FileOrCreate" and not os.path.exists(path):
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).touch()
            elif typ == "Directory" and not os.path.isdir(path):
                raise VolumeError(f"hostPath type check failed: {path} is not a directory")
            elif typ == "File" and not os.path.isfile(path):
                raise VolumeError(f"hostPath type check failed: {path} is not a file")
            out[name] = path
        else:
            # configMap, secret, downwardAPI, projected: written by agent.projected before the
            # containers start; a volume not (yet) written is not available.
            kind = next((k for k in OBJECT_VOLUME_DIRS if vol.get(k) is not None), None)
            if kind is not None:
                path = pod_dir(root, uid) / "volumes" / OBJECT_VOLUME_DIRS[kind] / name
                if (path / "..data").is_symlink():
                    out[name] = str(path)
    return out


def binds(container: dict[str, Any], volumes: dict[str, str]) -> list[str]:
    out = []
    for m in container.get("volumeMounts") or []:
        host = volumes.get(m.get("name", ""))
        if host is None:
            raise VolumeError(f"volume {m.get('name')!r} is not available on this node")
        if m.get("subPath"):
            host = os.path.join(host, m["subPath"])
            os.makedirs(host, exist_ok=True)
        out.append(f"{host}:{m['mountPath']}:{'ro' if m.get('readOnly') else 'rw'}")
    return out


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` (from /proc/mounts), deepest first."""
    prefix = str(path).rstrip("/") + "/"
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[1].replace("\\040", " ") for line in lines if len(line.split()) > 1]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def remove_pod_dir(root: str, uid: str) -> None:
    d = pod_dir(root, uid)
    # tmpfs of memory emptyDirs, secret and projected volumes: unmounted before the files go.
    for m in mounts_under(d):
        subprocess.run(["umount", m], check=False)
    shutil.rmtree(d, ignore_errors=True)
