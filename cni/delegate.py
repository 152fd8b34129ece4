"""IPAM delegation (SPEC.md section 4): find the plugin named in ipam.type on CNI_PATH and run it
with the same environment and config."""
from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Mapping

from cni.errors import DECODING_FAILURE, INTERNAL, INVALID_NETWORK_CONFIG, CniError
from cni.spec import normalize_result

# First lines of the executables cni.install writes; seeing it lets us run our own IPAM in this
# process instead of paying for another interpreter start.
SHIM_MARKER = b"# kubeling-cni-shim: "


def find_plugin(plugin_type: str, path: list[str]) -> str:
    if not plugin_type or "/" in plugin_type or plugin_type in (".", ".."):
        raise CniError(INVALID_NETWORK_CONFIG, f"invalid plugin type {plugin_type!r}")
    for d in path:
        candidate = os.path.join(d, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CniError(INTERNAL, f'failed to find plugin "{plugin_type}" in path {path}')


def _own_plugin(exe: str) -> str | None:
    try:
        with open(exe, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    for line in head.splitlines()[:3]:
        if line.startswith(SHIM_MARKER):
            return line[len(SHIM_MARKER):].decode().strip()
    return None


def run_ipam(command: str, plugin_type: str, env: Mapping[str, str], stdin: bytes) -> dict[str, Any] | None:
    """Run the IPAM plugin for `command`; returns its result (1.x shape) for ADD, else None."""
    path = [p for p in env.get("CNI_PATH", "").split(":") if p]
    exe = find_plugin(plugin_type, path)
    sub_env = dict(env)
    sub_env["CNI_COMMAND"] = command
    if _own_plugin(exe) == "ipam":
        from cni import runner

        out = runner.run("ipam", sub_env, stdin)
        code, stdout, stderr = out.exit_code, out.stdout, out.stderr
    else:
        proc = subprocess.run([exe], input=stdin, env=sub_env, capture_output=True)
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    if code != 0:
        raise _error_from(plugin_type, stdout, stderr)
    if command != "ADD":
        return None
    try:
        result = json.loads(stdout)
    except ValueError as e:
        raise CniError(DECODING_FAILURE, f"cannot decode {plugin_type} result: {e}") from None
    return normalize_result(result)


def _error_from(plugin_type: str, stdout: bytes, stderr: bytes) -> CniError:
    # libcni reads a failing plugin's error from stdout and falls back to stderr text.
    try:
        err = json.loads(stdout)
        if isinstance(err, dict) and "code" in err:
            return CniError(int(err["code"]), str(err.get("msg", "")), str(err.get("details", "")))
    except ValueError:
        pass
    text = (stderr or stdout).decode(errors="replace").strip()
    return CniError(INTERNAL, f"{plugin_type} failed: {text}")
