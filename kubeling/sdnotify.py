"""Tell systemd a `Type=notify` service is ready (sd_notify(3), no dependency).

The protocol is one datagram of `KEY=VALUE` lines to the AF_UNIX socket named in
$NOTIFY_SOCKET; a leading `@` means the abstract namespace. It is stable and meant
to be reimplemented. Outside systemd (no $NOTIFY_SOCKET) this does nothing.
"""
from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("kubeling.sdnotify")


def notify(state: str = "READY=1") -> bool:
    """Send `state` to the service manager; True when a manager was there to tell."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    addr = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(state.encode())
    except OSError as exc:
        # A unit that waits for READY times out and says so; a crash here would hide why.
        log.warning("sd_notify to %s failed: %s", path, exc)
        return False
    return True
