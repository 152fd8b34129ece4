"""The executables' body: hand the request to the kubeling CNI daemon, or do it here.

Imported by a Python started with -I -S, possibly not kubeling's own interpreter: the
forwarding path needs nothing but the standard library, so cni.install may pick the fastest
starting python3 on the machine. Every import here is paid on each CNI call, so only built-in
modules are used on that path (no json, no socket wrapper): a forwarded call costs about an
interpreter start plus one unix-socket round trip, instead of importing pyroute2 (~200 ms).
"""
from __future__ import annotations

import _socket
import os
import sys

from cni import wire

CONNECT_TIMEOUT = 1.0
REPLY_TIMEOUT = 300.0
STATE_ENV = "KUBELING_CNI_SHIM_STATE"


def _write(stdout, stderr, code):
    sys.stdout.buffer.write(stdout)
    sys.stdout.flush()
    if stderr:
        sys.stderr.buffer.write(stderr)
        sys.stderr.flush()
    sys.exit(code)


def _forward(path, items):
    """("reply", items) on an answer, ("absent", None) when nobody took the request,
    ("lost", None) when the daemon went away after taking it."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(path)
        except OSError:
            return "absent", None
        sock.settimeout(REPLY_TIMEOUT)
        try:
            sock.sendall(wire.encode(items))
            verdict = sock.recv(1)
        except OSError:
            return "absent", None
        if verdict != wire.ACCEPTED:
            return "absent", None
        try:
            reply = wire.recv(sock)
        except (OSError, ValueError):
            reply = None
        return ("lost", None) if reply is None else ("reply", reply)
    finally:
        sock.close()


def main(plugin, fallback_paths, python=None):
    """Serve one CNI call. `fallback_paths` (repo root, site-packages) and `python` (the
    interpreter they belong to) are what the in-process path needs."""
    stdin = sys.stdin.buffer.read()
    path = os.environ.get(wire.SOCKET_ENV, wire.DEFAULT_SOCKET)
    # Set by the compiled forwarder (cni/shim.c) when it already asked the daemon.
    state = os.environ.pop(STATE_ENV, None)
    os.environb.pop(STATE_ENV.encode(), None)
    if state == "lost" and os.environ.get("CNI_COMMAND") == "ADD":
        _write(_try_again(stdin), b"", 1)
    # IPAM is stdlib-only and cheap, so it always runs here; the bridge needs pyroute2.
    if plugin != "ipam" and path not in ("", "none") and state is None:
        env = [k + b"=" + v for k, v in os.environb.items()]
        status, reply = _forward(path, [plugin.encode(), stdin] + env)
        if status == "reply":
            _write(reply[1], reply[2], int(reply[0]))
        if status == "lost" and os.environ.get("CNI_COMMAND") == "ADD":
            # The daemon may have done part of the ADD; let the runtime tear down and retry
            # rather than guess. DEL/CHECK/STATUS/GC are safe to redo here.
            _write(_try_again(stdin), b"", 1)
    if plugin != "ipam" and python and os.path.realpath(python) != os.path.realpath(sys.executable):
        _run_under(python, plugin, fallback_paths, stdin)
    sys.path.extend(p for p in fallback_paths if p not in sys.path)
    from cni import runner

    out = runner.run(plugin, os.environ, stdin)
    _write(out.stdout, out.stderr, out.exit_code)


def _run_under(python, plugin, paths, stdin):
    """Do the work with kubeling's interpreter (where pyroute2 lives), same env and stdin."""
    code = f"import sys; sys.path[:0] = {paths!r}; from cni.runner import main; main({plugin!r})"
    argv = [python, "-I", "-S", "-c", code]
    sys.stdout.flush()
    if len(stdin) < 65536:  # fits a pipe buffer: hand it over and become the other interpreter
        r, w = os.pipe()
        os.write(w, stdin)
        os.close(w)
        os.dup2(r, 0)
        os.close(r)
        os.execv(python, argv)
    import subprocess

    sys.exit(subprocess.run(argv, input=stdin).returncode)


def _try_again(stdin):
    import json

    from cni.spec import config_version_or_default

    err = {"cniVersion": config_version_or_default(stdin), "code": 11,
           "msg": "kubeling CNI daemon went away during ADD; try again"}
    return (json.dumps(err, indent=4) + "\n").encode()
