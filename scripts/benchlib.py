"""Shared pieces of the benchmarks: a private etcd + apiserver, percentiles, output."""
from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import ApiServer, Etcd, start_apiserver, start_etcd, stop_process  # noqa: E402


def progress(msg: str) -> None:
    print(f"==> {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def result(doc: dict) -> None:
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in doc.items()}), flush=True)


@contextlib.contextmanager
def private_etcd() -> Iterator[Etcd]:
    base = Path(tempfile.mkdtemp(prefix="kubeling-bench-"))
    proc, etcd = start_etcd(base)
    try:
        yield etcd
    finally:
        stop_process(proc)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def private_apiserver(etcd: Etcd, *flags: str) -> Iterator[tuple[int, ApiServer]]:
    """An apiserver of the benchmark's own on `etcd` (with more flags): its pid and itself."""
    base = Path(tempfile.mkdtemp(prefix="kubeling-bench-api-"))
    proc, api = start_apiserver(etcd, base, extra_args=flags)
    try:
        yield proc.pid, api
    finally:
        stop_process(proc)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def private_cluster() -> Iterator[ApiServer]:
    """An etcd and an apiserver of the benchmark's own, removed afterwards."""
    with private_etcd() as etcd, private_apiserver(etcd) as (_, api):
        yield api
