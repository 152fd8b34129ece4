"""Reading manifests: files, directories and stdin, multi-document YAML or JSON."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeling import bounded_decode

_SUFFIXES = (".yaml", ".yml", ".json")
# Every object must fit the apiserver's 3 MiB request body limit; a file or stdin may
# hold a few of them. Anything larger is refused before it is read, so that memory
# stays bounded (parsed YAML takes ten times its size and more).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


@dataclass
class Manifest:
    obj: dict[str, Any]
    source: str


class ManifestError(Exception):
    pass


def _files(path: str) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in _SUFFIXES)
    if p.is_file():
        return [p]
    raise ManifestError(f'the path "{path}" does not exist')


def _documents(text: bytes, source: str) -> list[Manifest]:
    try:
        docs = bounded_decode.loads_yaml_all(text)
    except bounded_decode.DecodeError as exc:
        raise ManifestError(f"error parsing {source}: {exc}")
    out = []
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ManifestError(f"error parsing {source}: a document is not an object")
        kind = doc.get("kind")
        if kind == "List" or (isinstance(kind, str) and kind.endswith("List") and "items" in doc):
            items = doc.get("items") or []
            if not isinstance(items, list):
                raise ManifestError(f"error validating {source}: items must be a list")
            out.extend(_checked(item, source) for item in items if isinstance(item, dict))
            continue
        out.append(_checked(doc, source))
    return out


def _checked(doc: dict[str, Any], source: str) -> Manifest:
    """The document as a Manifest once the fields the CLI itself reads have their types;
    the apiserver validates the rest."""
    for field in ("apiVersion", "kind"):
        if not doc.get(field):
            raise ManifestError(f"error validating {source}: {field} not set")
        if not isinstance(doc[field], str):
            raise ManifestError(f"error validating {source}: {field} must be a string")
    if not isinstance(doc.get("metadata", {}), dict):
        raise ManifestError(f"error validating {source}: metadata must be an object")
    return Manifest(doc, source)


def read(paths: tuple[str, ...]) -> list[Manifest]:
    out: list[Manifest] = []
    for path in paths:
        if path == "-":
            out.extend(_documents(_bounded(sys.stdin.buffer.read(MAX_MANIFEST_BYTES + 1), "STDIN"), "STDIN"))
            continue
        for f in _files(path):
            with open(f, "rb") as stream:
                out.extend(_documents(_bounded(stream.read(MAX_MANIFEST_BYTES + 1), str(f)), str(f)))
    return out


def _bounded(data: bytes, source: str) -> bytes:
    """`data`, read with a limit of one byte more than allowed, unless it reached it."""
    if len(data) <= MAX_MANIFEST_BYTES:
        return data
    raise ManifestError(f"{source} is too large: manifests over {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB "
                        "are refused (the apiserver takes at most 3 MiB per object)")
