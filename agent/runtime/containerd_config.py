"""The configuration of kubeling's own containerd: its own root, state and
socket (nothing shared with Docker's containerd), the CRI plugin on, CNI from the
agent's conf dir, our pause image as the sandbox image, cgroupfs (no systemd
cgroup driver: PID 1 is not always systemd), no AppArmor (not in every kernel)."""
from __future__ import annotations

import json
from dataclasses import dataclass

DEFAULT_ROOT = "/var/lib/kubeling/containerd"
DEFAULT_STATE = "/run/kubeling/containerd"
DEFAULT_SOCKET = f"{DEFAULT_STATE}/containerd.sock"
DEFAULT_ENDPOINT = f"unix://{DEFAULT_SOCKET}"
# Only this containerd namespace is visible through CRI.
CRI_NAMESPACE = "k8s.io"


@dataclass(frozen=True)
class ContainerdConfig:
    root: str = DEFAULT_ROOT
    state: str = DEFAULT_STATE
    socket: str = DEFAULT_SOCKET
    cni_conf_dir: str = "/etc/cni/net.d"
    # containerd 1.6 takes one plugin directory, and always runs `loopback` from it too.
    cni_bin_dir: str = "/opt/cni/bin"
    pause_image: str = "kubeling/pause:3.9"
    runc: str = "/usr/sbin/runc"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    def render(self) -> str:
        """config.toml (version 2), key names as containerd 1.6 prints them."""
        q = json.dumps  # a TOML basic string is a JSON string for these values
        cri = '[plugins."io.containerd.grpc.v1.cri"]'
        return "\n".join([
            "version = 2",
            f"root = {q(self.root)}",
            f"state = {q(self.state)}",
            "[grpc]",
            f"  address = {q(self.socket)}",
            # The ttrpc socket sits beside the gRPC one by default; nothing else to set.
            cri,
            f"  sandbox_image = {q(cri_image_name(self.pause_image))}",
            "  disable_apparmor = true",
            # Without CAP_SYS_RESOURCE (nested or unprivileged hosts) runc may not lower
            # oom_score_adj below its own: every RunPodSandbox would fail.
            "  restrict_oom_score_adj = true",
            f'{cri[:-1]}.containerd]',
            '  snapshotter = "overlayfs"',
            '  default_runtime_name = "runc"',
            f'{cri[:-1]}.containerd.runtimes.runc]',
            '  runtime_type = "io.containerd.runc.v2"',
            f'{cri[:-1]}.containerd.runtimes.runc.options]',
            "  SystemdCgroup = false",
            f"  BinaryName = {q(self.runc)}",
            # runc's state beside ours, not shared with another containerd's under /run/containerd.
            f"  Root = {q(self.state + '/runc')}",
            f'{cri[:-1]}.cni]',
            f"  bin_dir = {q(self.cni_bin_dir)}",
            f"  conf_dir = {q(self.cni_conf_dir)}",
            "  max_conf_num = 1",
            "",
        ])


def cri_image_name(image: str) -> str:
    """The name containerd stores a Docker-style reference under (`foo:tag` ->
    `docker.io/library/foo:tag`, `a/b:t` -> `docker.io/a/b:t`), as `ctr images
    import` and CRI's image resolution both normalise it."""
    name = image
    first = name.split("/", 1)[0]
    has_registry = "/" in name and ("." in first or ":" in first or first == "localhost")
    if not has_registry:
        if "/" not in name:
            name = f"library/{name}"
        name = f"docker.io/{name}"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        name += ":latest"
    return name
