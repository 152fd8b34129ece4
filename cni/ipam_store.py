"""On-disk allocation store, file-compatible with host-local's disk backend.

<dataDir>/<network>/<ip> holds "<containerID>\\r\\n<ifname>"; last_reserved_ip.<rangeset index>
remembers where round-robin continues; <dataDir>/<network>/lock is flock'ed by every writer,
so kubeling-ipam and host-local can share one directory safely.
"""
from __future__ import annotations

import fcntl
import ipaddress
import os
import re
import shutil
from contextlib import contextmanager
from typing import Iterator

from cni.errors import IO_FAILURE, CniError

LAST_IP_PREFIX = "last_reserved_ip."
LINE_BREAK = "\r\n"
_CONTAINER_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")
_IFNAME = re.compile(r"[^\s/:]{1,15}")


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
        """Called with the lock held (so no other writer is mid-write)."""
        path = os.path.join(self.dir, str(ip))
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if not self._reclaim_corrupt(path):
                return False
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, (container_id.strip() + LINE_BREAK + ifname).encode())
        except OSError:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        self._write(LAST_IP_PREFIX + range_id, str(ip))
        return True

    def _reclaim_corrupt(self, path: str) -> bool:
        """Remove an allocation file that names no container, and say whether it did.
        Every writer holds the lock while it writes, so under the lock such a file (empty,
        cut short before its line break, binary, a directory) is what a crashed writer left:
        its ADD never returned a result, no pod uses the address, and keeping the file
        would leak the address for good. A file that names a container is never touched."""
        try:
            with open(path, "rb") as f:
                content = f.read(4096)
        except IsADirectoryError:
            shutil.rmtree(path, ignore_errors=True)
            return True
        except OSError:
            return False
        try:
            text = content.decode("utf-8").strip()
        except UnicodeDecodeError:
            text = ""
        cid, _, ifname = text.partition(LINE_BREAK)
        if _CONTAINER_ID.fullmatch(cid) and (not ifname or _IFNAME.fullmatch(ifname)):
            return False
        os.unlink(path)
        return True

    def _write(self, name: str, content: str) -> None:
        tmp = os.path.join(self.dir, f".{name}.tmp")
        with open(tmp, "w") as f:
            f.write(content)
        target = os.path.join(self.dir, name)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target, ignore_errors=True)  # a corrupt node: this name is ours to write
        os.replace(tmp, target)

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
