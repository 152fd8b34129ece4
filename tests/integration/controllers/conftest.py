"""The controller manager as a real process, shared by this folder's tests."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, stop_process


@pytest.fixture(scope="module")
def controller_manager(apiserver, tmp_path_factory):
    log = tmp_path_factory.mktemp("cm") / "cm.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "controlplane.controllers", "--kubeconfig",
                                 str(apiserver.kubeconfig)], stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    yield proc
    stop_process(proc)
    assert "Traceback" not in log.read_text(), log.read_text()
