"""Sandbox checkpoints on disk: what tearing a sandbox down needs (CNI DEL's pod
namespace/name, host network or not) and its IPs, kept even when the container
is gone or the agent restarted (cri-dockerd keeps the same)."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class SandboxCheckpoint:
    sandbox_id: str
    pod_uid: str
    pod_name: str
    pod_namespace: str
    host_network: bool = False
    pod_ips: list[str] = field(default_factory=list)
    network_torn_down: bool = False


class CheckpointStore:
    def __init__(self, root: str) -> None:
        self.dir = Path(root, "sandboxes")

    def _path(self, sandbox_id: str) -> Path:
        return self.dir / f"{sandbox_id}.json"

    def save(self, cp: SandboxCheckpoint) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{cp.sandbox_id}.tmp"
        tmp.write_text(json.dumps(asdict(cp)))
        os.replace(tmp, self._path(cp.sandbox_id))

    def get(self, sandbox_id: str) -> SandboxCheckpoint | None:
        try:
            return SandboxCheckpoint(**json.loads(self._path(sandbox_id).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def remove(self, sandbox_id: str) -> None:
        self._path(sandbox_id).unlink(missing_ok=True)

    def all(self) -> list[SandboxCheckpoint]:
        if not self.dir.is_dir():
            return []
        out = []
        for p in self.dir.glob("*.json"):
            cp = self.get(p.stem)
            if cp is not None:
                out.append(cp)
        return out

    def for_pod(self, pod_uid: str) -> list[SandboxCheckpoint]:
        return [cp for cp in self.all() if cp.pod_uid == pod_uid]
