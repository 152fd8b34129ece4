"""On-disk allocation store, file-compatible with host-local's disk backend.

<dataDir>/<network>/<ip> holds "<containerID>\\r\\n<ifname>"; last_reserved_ip.<rangeset index>
remembers where round-robin continues; <dataDir>/<network>/lock is flock'ed by every writer,
so kubeling-ipam and host-local can share one directory safely.
"""
from __future__ import annotations

import fcntl
import ipaddress
import os
from contextlib import contextmanager
from typing import Iterator

from cni.errors import IO_FAILURE, CniError

LAST_IP_PREFIX = "last_reserved_ip."
LINE_BREAK = "\r\n"


class DiskStore:
    def __init__(self, data_dir: str, network: str) -> None:
        self.dir = os.path.join(data_dir, network)
        try:
            os.makedirs(self.dir, mode=0o755, exist_ok=True)
        except OSError as e:
            raise CniError(IO_FAILURE, f"cannot create IPAM data dir {self.dir}: {e}") from None

    @contextmanager
    def locked(self) -> Iterator["DiskStore"]:
        fd = os.open(os.path.join(self.dir, "lock"), os.O_RDONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self
        finally:
            os.close(fd)  # closing drops the flock

    def reserve(self, container_id: str, ifname: str, ip: ipaddress._BaseAddress, range_id: str) -> bool:
        path = os.path.join(self.dir, str(ip))
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, (container_id.strip() + LINE_BREAK + ifname).encode())
        except OSError:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        self._write(LAST_IP_PREFIX + range_id, str(ip))
        return True

    def _write(self, name: str, content: str) -> None:
        tmp = os.path.join(self.dir, f".{name}.tmp")
        with open(tmp, "w") as f:
            f.write(content)
        os.replace(tmp, os.path.join(self.dir, name))

    def last_reserved_ip(self, range_id: str) -> ipaddress._BaseAddress | None:
        try:
            with open(os.path.join(self.dir, LAST_IP_PREFIX + range_id)) as f:
                return ipaddress.ip_address(f.read().strip())
        except (OSError, ValueError):
            return None

    def allocations(self) -> Iterator[tuple[ipaddress._BaseAddress, str]]:
        """Yield (ip, trimmed file content) for every allocation file."""
        for name in os.listdir(self.dir):
            try:
                ip = ipaddress.ip_address(name)
            except ValueError:
                continue
            try:
                with open(os.path.join(self.dir, name), encoding="utf-8", errors="replace", newline="") as f:
                    yield ip, f.read().strip()
            except OSError:
                continue

    @staticmethod
    def _matches(content: str, container_id: str, ifname: str) -> bool:
        cid = container_id.strip()
        # Files written by old host-local versions hold only the container id.
        return content == cid + LINE_BREAK + ifname or content == cid

    def get_by_id(self, container_id: str, ifname: str) -> list[ipaddress._BaseAddress]:
        return [ip for ip, c in self.allocations() if self._matches(c, container_id, ifname)]

    def release(self, ip: ipaddress._BaseAddress) -> None:
        try:
            os.unlink(os.path.join(self.dir, str(ip)))
        except FileNotFoundError:
            pass

    def release_by_id(self, container_id: str, ifname: str) -> list[ipaddress._BaseAddress]:
        released = self.get_by_id(container_id, ifname)
        for ip in released:
            self.release(ip)
        return released
