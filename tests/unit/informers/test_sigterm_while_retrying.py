"""The proxy and the scheduler stop on SIGTERM with exit status 0 and no traceback while
their informers are still retrying (an API server that refuses connections: the proxy
never syncs, so no rule is written anywhere)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubeling import kubeconfig

REPO = Path(__file__).resolve().parents[3]
BOUND = 30.0


@pytest.mark.parametrize("module, args, absent, present", [
    ("agent.proxy", ["--iptables-backend", "nft"], ["Traceback", "sync"], []),
    ("controlplane.scheduler", ["--no-leader-elect"], ["Traceback"], ["stopping"]),
], ids=["proxy", "scheduler"])
def test_sigterm_while_retrying_exits_cleanly(tmp_path: Path, module: str, args: list[str],
                                              absent: list[str], present: list[str]) -> None:
    cfg = tmp_path / "kubeconfig"
    kubeconfig.write(str(cfg), "http://127.0.0.1:1", "token")  # port 1: connection refused
    log = tmp_path / "component.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", module, "--kubeconfig", str(cfg), *args],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + BOUND
        # The informers' first failure is logged once the signal handlers are in place.
        while "retrying in" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{module} never started watching: " + log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(BOUND) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert not [w for w in absent if w in text], text
    assert all(w in text for w in present), text
