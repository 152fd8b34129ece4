"""Reading manifests: files, directories and stdin, multi-document YAML or JSON."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SUFFIXES = (".yaml", ".yml", ".json")


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


def _documents(text: str, source: str) -> list[Manifest]:
    try:
        docs = list(yaml.load_all(text, Loader=_LOADER))
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        raise ManifestError(f'error parsing {source}: {first}')
    out = []
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ManifestError(f"error parsing {source}: a document is not an object")
        if doc.get("kind") == "List" or (doc.get("kind", "").endswith("List") and "items" in doc):
            for item in doc.get("items") or []:
                if isinstance(item, dict):
                    out.append(Manifest(item, source))
            continue
        for field in ("apiVersion", "kind"):
            if not doc.get(field):
                raise ManifestError(f"error validating {source}: {field} not set")
        out.append(Manifest(doc, source))
    return out


def read(paths: tuple[str, ...]) -> list[Manifest]:
    out: list[Manifest] = []
    for path in paths:
        if path == "-":
            out.extend(_documents(sys.stdin.read(), "STDIN"))
            continue
        for f in _files(path):
            out.extend(_documents(f.read_text(), str(f)))
    return out
