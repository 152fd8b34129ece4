"""Run one plugin invocation (env + stdin -> exit code, stdout, stderr), in this process.

Used by the daemon for forwarded requests and by the executables when no daemon answers.
"""
from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass
from typing import Mapping

from cni.errors import INCOMPATIBLE_VERSION, INTERNAL, CniError
from cni.spec import config_version_or_default, parse_config, parse_env, version_key, version_result

PLUGINS = ("bridge", "ipam")


@dataclass
class Outcome:
    exit_code: int
    stdout: bytes
    stderr: bytes = b""


def _dump(obj: object) -> bytes:
    return (json.dumps(obj, indent=4) + "\n").encode()


def _handler(plugin: str):
    # Imported lazily: the bridge handler pulls in pyroute2, which IPAM never needs.
    if plugin == "bridge":
        from cni import bridge_plugin

        return bridge_plugin.handle
    if plugin == "ipam":
        from cni import ipam_plugin

        return ipam_plugin.handle
    raise ValueError(f"unknown plugin {plugin!r}")


def run(plugin: str, env: Mapping[str, str], stdin: bytes) -> Outcome:
    try:
        args = parse_env(env)
        if args.command == "VERSION":
            return Outcome(0, _dump(version_result(stdin)))
        conf = parse_config(stdin)
        version = version_key(conf["cniVersion"])
        if args.command == "CHECK" and version < (0, 4, 0):
            raise CniError(INCOMPATIBLE_VERSION, "config version does not allow CHECK")
        if args.command in ("STATUS", "GC") and version < (1, 1, 0):
            raise CniError(INCOMPATIBLE_VERSION, f"config version does not allow {args.command}")
        result = _handler(plugin)(args, conf, stdin)
        return Outcome(0, _dump(result) if result is not None else b"")
    except CniError as e:
        return Outcome(1, _dump(e.to_result(config_version_or_default(stdin))))
    except Exception as e:  # a bug or an unexpected OS error must still yield a CNI error
        tb = traceback.format_exc()
        err = CniError(INTERNAL, f"{type(e).__name__}: {e}")
        return Outcome(1, _dump(err.to_result(config_version_or_default(stdin))), tb.encode())


def main(plugin: str) -> None:
    """Entry point of an in-process invocation: the real environment and stdin."""
    import os

    out = run(plugin, os.environ, sys.stdin.buffer.read())
    sys.stdout.buffer.write(out.stdout)
    sys.stdout.flush()
    if out.stderr:
        sys.stderr.buffer.write(out.stderr)
    sys.exit(out.exit_code)
