"""Per-thread network namespace switching.

setns(CLONE_NEWNET) affects only the calling thread, and a netlink socket stays bound to the
namespace it was created in; so a socket for the pod's namespace can be made from any thread
without forking, and concurrent requests in other threads are not disturbed.
"""
from __future__ import annotations

import ctypes
import os
from contextlib import contextmanager
from typing import Iterator

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextmanager
def entered(path: str) -> Iterator[None]:
    """Run the body in the netns at `path` (a bind mount or /proc/<pid>/ns/net)."""
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                yield
            finally:
                # Failing to come back would leave this thread in the pod's namespace; better
                # to die loudly than to configure the wrong namespace later.
                try:
                    _setns(own)
                except OSError:
                    os.abort()
        finally:
            os.close(own)
    finally:
        os.close(target)


def same_netns(pid: int) -> bool:
    """True when process `pid` lives in the same network namespace as this thread."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/thread-self/ns/net").st_ino
    except OSError:
        return False
