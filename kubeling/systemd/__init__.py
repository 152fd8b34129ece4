"""kubeling's systemd units: the unit files shipped with the package, their flag files
(`/etc/default/kubeling-<component>`), and the few `systemctl` calls init/join/reset make.

The unit files are package data (`kubeling-*.service` beside this module), so they
install with kubeling from a wheel. They name the default paths; `render_unit` moves
them when a config dir is moved (tests)."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

KUBELING_BIN = "/usr/local/bin/kubeling"
DEFAULTS_DIR = "/etc/default"
CONFIG_DIR = "/etc/kubeling"
UNIT_DIR = "/etc/systemd/system"

# Start order; stop in reverse. etcd and the apiserver only on the control plane.
CONTROL_PLANE = ("etcd", "apiserver", "controller-manager", "scheduler", "dns")
NODE = ("cni-daemon", "agent", "proxy")
ALL = CONTROL_PLANE + NODE
# A node's own containerd, only with `--runtime containerd`: it starts before the agent.
CONTAINERD = "containerd"
RUNTIMES = ("docker", "containerd")
# Every unit kubeling may install, in start order (what reset looks for and stops in reverse).
EVERY = CONTROL_PLANE + ("cni-daemon", CONTAINERD, "agent", "proxy")
# Where init/join's containerd keeps its state and socket (agent/runtime/containerd_config.py's
# defaults; kubeling/ imports nothing of the agent, a unit test keeps the two equal).
CONTAINERD_STATE = "/run/kubeling/containerd"
CONTAINERD_ENDPOINT = f"unix://{CONTAINERD_STATE}/containerd.sock"


def with_runtime(components: tuple[str, ...], runtime: str) -> tuple[str, ...]:
    """The units to start for a node on `runtime`, in order (containerd's before the agent)."""
    if runtime != "containerd" or "agent" not in components:
        return components
    i = components.index("agent")
    return (*components[:i], CONTAINERD, *components[i:])


def unit_name(component: str) -> str:
    return f"kubeling-{component}.service"


def env_var(component: str) -> str:
    """The variable in the defaults file that holds a component's flags."""
    return "KUBELING_" + component.upper().replace("-", "_") + "_ARGS"


def packaged_unit(component: str) -> str:
    return (resources.files(__package__) / unit_name(component)).read_text()


@dataclass(frozen=True)
class Dirs:
    """Where units, their defaults and the config live (defaults: the real machine's)."""
    unit_dir: Path = Path(UNIT_DIR)
    defaults_dir: Path = Path(DEFAULTS_DIR)
    config_dir: Path = Path(CONFIG_DIR)

    def unit(self, component: str) -> Path:
        return self.unit_dir / unit_name(component)

    def defaults(self, component: str) -> Path:
        return self.defaults_dir / f"kubeling-{component}"


def render_unit(component: str, dirs: Dirs = Dirs()) -> str:
    text = packaged_unit(component)
    # Only the leading path prefixes differ, and each appears in the units as a whole word.
    text = text.replace(f"{DEFAULTS_DIR}/kubeling-", f"{dirs.defaults_dir}/kubeling-")
    text = text.replace(f"{CONFIG_DIR}/", f"{dirs.config_dir}/")
    return text


def render_defaults(component: str, args: list[str]) -> str:
    """The EnvironmentFile: systemd splits an unquoted `$VAR` in ExecStart on whitespace and
    does not interpret quotes inside it, so no argument may contain whitespace or quotes."""
    for a in args:
        if not a or any(c.isspace() or c in "\"'\\$" for c in a):
            raise ValueError(f"{component}: argument {a!r} cannot be passed through an EnvironmentFile")
    return (f"# Flags of {unit_name(component)}, written by kubeling init/join.\n"
            f"# Edit, then `systemctl restart {unit_name(component)}`.\n"
            f'{env_var(component)}="{" ".join(args)}"\n')


def parse_defaults(text: str, component: str) -> list[str]:
    """The flags a defaults file holds (the inverse of render_defaults)."""
    prefix = env_var(component) + "="
    for line in text.splitlines():
        if line.startswith(prefix):
            return line[len(prefix):].strip().strip('"').split()
    return []


def booted() -> bool:
    """Whether systemd is this machine's init (sd_booted(3): /run/systemd/system exists)."""
    return os.path.isdir("/run/systemd/system")


def systemctl(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise RuntimeError(f"systemctl {' '.join(args)} failed: {msg[-1] if msg else proc.returncode}")
    return proc


def installed(dirs: Dirs = Dirs()) -> list[str]:
    """Components whose unit file is in the unit dir, in start order."""
    return [c for c in EVERY if dirs.unit(c).exists()]
