"""Cheap interface lookups through ioctls, without pyroute2 decoding.

pyroute2 decodes every attribute of a link message (~1-2 ms each); an ADD needs only indexes,
MACs and flags. A socket answers ioctls in the network namespace it was created in, so a
Devices made inside a pod's namespace looks there.
"""
from __future__ import annotations

import fcntl
import socket
import struct

SIOCGIFFLAGS = 0x8913
SIOCGIFMTU = 0x8921
SIOCGIFHWADDR = 0x8927
SIOCGIFINDEX = 0x8933


class Devices:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def _ifreq(self, request: int, name: str) -> bytes | None:
        buf = struct.pack("16s24s", name.encode(), b"")
        try:
            return fcntl.ioctl(self.sock.fileno(), request, buf)
        except OSError:
            return None

    def index(self, name: str) -> int | None:
        res = self._ifreq(SIOCGIFINDEX, name)
        return struct.unpack_from("i", res, 16)[0] if res else None

    def mac(self, name: str) -> str | None:
        res = self._ifreq(SIOCGIFHWADDR, name)
        return ":".join(f"{b:02x}" for b in res[18:24]) if res else None

    def flags(self, name: str) -> int | None:
        res = self._ifreq(SIOCGIFFLAGS, name)
        return struct.unpack_from("H", res, 16)[0] if res else None

    def mtu(self, name: str) -> int | None:
        res = self._ifreq(SIOCGIFMTU, name)
        return struct.unpack_from("i", res, 16)[0] if res else None

    def close(self) -> None:
        self.sock.close()
