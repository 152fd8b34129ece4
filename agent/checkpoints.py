"""Sandbox checkpoints on disk: what tearing a sandbox down needs (CNI DEL's pod
namespace/name, host network or not) and its IPs, kept even when the container
is gone or the agent restarted (cri-dockerd keeps the same)."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path


# A checkpoint is a few hundred bytes; more than this is not one.
MAX_CHECKPOINT_BYTES = 64 * 1024
_TYPES = {"sandbox_id": str, "pod_uid": str, "pod_name": str, "pod_namespace": str,
          "host_network": bool, "pod_ips": list, "network_torn_down": bool}
_REQUIRED = {"sandbox_id", "pod_uid", "pod_name", "pod_namespace"}


@dataclass
class SandboxCheckpoint:
    sandbox_id: str
    pod_uid: str
    pod_name: str
    pod_namespace: str
    host_network: bool = False
    pod_ips: list[str] = field(default_factory=list)
    network_torn_down: bool = False
    # Read from a corrupt file: only the sandbox ID (its file name) is known. CNI DEL
    # still runs for it (the IPAM keys on that ID; DEL of nothing is a no-op), and the
    # pod fields stay empty rather than guessed.
    recovered: bool = False


class CheckpointStore:
    def __init__(self, root: str) -> None:
        self.dir = Path(root, "sandboxes")

    def _path(self, sandbox_id: str) -> Path:
        return self.dir / f"{sandbox_id}.json"

    def save(self, cp: SandboxCheckpoint) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{cp.sandbox_id}.tmp"
        tmp.write_text(json.dumps(asdict(cp)))
        target = self._path(cp.sandbox_id)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)  # a corrupt node where our file belongs
        os.replace(tmp, target)

    def get(self, sandbox_id: str) -> SandboxCheckpoint | None:
        """The checkpoint; None when there is none; a `recovered` one when the file is
        there but truncated, corrupt or of the wrong shape (a crash mid-write of an
        older agent, a full disk, a hand edit)."""
        path = self._path(sandbox_id)
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_CHECKPOINT_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError:
            return SandboxCheckpoint(sandbox_id, "", "", "", recovered=True)
        return _parse(sandbox_id, raw) or SandboxCheckpoint(sandbox_id, "", "", "", recovered=True)

    def remove(self, sandbox_id: str) -> None:
        path = self._path(sandbox_id)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        path.unlink(missing_ok=True)

    def all(self) -> list[SandboxCheckpoint]:
        """Every checkpoint that names its pod (a recovered one names none: the agent's
        pod lists must not see a pod uid "")."""
        if not self.dir.is_dir():
            return []
        out = []
        for p in self.dir.glob("*.json"):
            cp = self.get(p.stem)
            if cp is not None and not cp.recovered:
                out.append(cp)
        return out

    def unreadable(self) -> list[str]:
        """The sandbox IDs whose checkpoint is corrupt: they name no pod, so no pod's
        teardown reaches them."""
        if not self.dir.is_dir():
            return []
        return [p.stem for p in self.dir.glob("*.json")
                if (cp := self.get(p.stem)) is not None and cp.recovered]

    def for_pod(self, pod_uid: str) -> list[SandboxCheckpoint]:
        return [cp for cp in self.all() if cp.pod_uid == pod_uid]


def _parse(sandbox_id: str, raw: bytes) -> SandboxCheckpoint | None:
    if len(raw) > MAX_CHECKPOINT_BYTES:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    # Fields with a default may be missing (a file from an older agent); the rest may not.
    if not isinstance(doc, dict) or not _REQUIRED <= set(doc) <= set(_TYPES) | {"recovered"}:
        return None
    types = {**_TYPES, "recovered": bool}
    if any(type(v) is not types[k] for k, v in doc.items()):  # exact: "false" is not False, 1 not True
        return None
    if doc["sandbox_id"] != sandbox_id or not all(isinstance(ip, str) for ip in doc.get("pod_ips", [])):
        return None
    return SandboxCheckpoint(**doc)
