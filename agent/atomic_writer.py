"""kubelet's AtomicWriter: the files of a configMap, secret, downwardAPI or projected
volume change all at once, never half-written.

The volume directory holds a timestamped directory `..<time>` with the real files,
a symlink `..data` to it, and for every top-level name of the payload a symlink
`<name>` -> `..data/<name>`. An update writes a new timestamped directory, points
`..data_tmp` at it and renames that over `..data` (rename is atomic), then removes
the old directory and the names that left the payload. A reader that opens
`<name>` sees either the old or the new content.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

DATA = "..data"
DATA_TMP = "..data_tmp"


@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int


class PayloadError(ValueError):
    pass


def _check_path(path: str) -> None:
    """Kubernetes' rules for a volume item's path: relative, no `..` element, not starting with `..`."""
    if not path or os.path.isabs(path) or path.startswith(".."):
        raise PayloadError(f"invalid path {path!r}: must be relative and may not start with '..'")
    if any(part == ".." for part in path.split("/")):
        raise PayloadError(f"invalid path {path!r}: may not contain '..'")


def _current(target: Path) -> Path | None:
    link = target / DATA
    if not link.is_symlink():
        return None
    return target / os.readlink(link)


def _same(current: Path, payload: dict[str, FileProjection]) -> bool:
    have = set()
    for root, _dirs, files in os.walk(current):
        for f in files:
            have.add(os.path.relpath(os.path.join(root, f), current))
    if have != set(payload):
        return False
    for rel, proj in payload.items():
        p = current / rel
        try:
            if p.read_bytes() != proj.data or (p.stat().st_mode & 0o7777) != proj.mode:
                return False
        except OSError:
            return False
    return True


def write(target: Path, payload: dict[str, FileProjection]) -> bool:
    """Make `target` hold exactly `payload`; True when anything changed."""
    for rel in payload:
        _check_path(rel)
    target.mkdir(parents=True, exist_ok=True)
    current = _current(target)
    if current is not None and current.is_dir() and _same(current, payload):
        return False
    stamp = dt.datetime.now(dt.timezone.utc).strftime("..%Y_%m_%d_%H_%M_%S.%f")
    new = target / stamp
    n = 0
    while new.exists():
        n += 1
        new = target / f"{stamp}{n}"
    new.mkdir(mode=0o755)
    for rel, proj in payload.items():
        p = new / rel
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(proj.data)
        os.chmod(p, proj.mode)
    tmp = target / DATA_TMP
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(new.name, tmp)
    os.rename(tmp, target / DATA)  # the switch: atomic
    tops = {rel.split("/", 1)[0] for rel in payload}
    for name in tops:
        link = target / name
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link) if link.is_dir() else link.unlink()
            os.symlink(f"{DATA}/{name}", link)
    for entry in target.iterdir():
        if entry.name in (DATA, new.name):
            continue
        if entry.name.startswith(".."):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)  # an old timestamped directory
        elif entry.is_symlink() and entry.name not in tops:
            entry.unlink()  # a name that left the payload
    return True
