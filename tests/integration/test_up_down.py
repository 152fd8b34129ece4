"""`kubeling up` / `kubeling down` on isolated directories and ports."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, free_port


def run(env, *args, check=True, stdin=None):
    proc = subprocess.run([sys.executable, "-m", "kubeling", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120, input=stdin)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubeling {' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_up_is_idempotent_apply_works_and_down_leaves_nothing(tmp_path):
    etcd_port = free_port()
    env = {**os.environ,
           "KUBELING_RUN_DIR": str(tmp_path / "run"), "KUBELING_LOG_DIR": str(tmp_path / "log"),
           "KUBELING_DATA_DIR": str(tmp_path / "data"), "KUBELING_CONFIG_DIR": str(tmp_path / "etc"),
           "KUBELING_ETCD_PORT": str(etcd_port), "KUBELING_APISERVER_PORT": str(free_port()),
           # Nodes are tested in network namespaces of their own (tests/e2e), not on this machine.
           "KUBELING_NODE": "false"}
    try:
        out = run(env, "up").stdout
        assert "etcd: started" in out and "apiserver: started" in out
        pids = {n: int((tmp_path / "run" / f"{n}.pid").read_text())
                for n in ("etcd", "apiserver", "controller-manager", "scheduler")}
        assert all(alive(p) for p in pids.values())
        kubeconfig = tmp_path / "etc" / "admin.kubeconfig"
        assert kubeconfig.exists() and oct(kubeconfig.stat().st_mode & 0o777) == "0o600"

        again = run(env, "up").stdout
        assert "etcd: already running" in again and "apiserver: already running" in again
        assert {n: int((tmp_path / "run" / f"{n}.pid").read_text()) for n in pids} == pids

        env_kc = {**env, "KUBECONFIG": str(kubeconfig)}
        applied = run(env_kc, "apply", "-f", "-", stdin=(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: hello}\n"
            "spec:\n  containers:\n  - {name: c, image: busybox:latest}\n"))
        assert applied.stdout.strip() == "pod/hello created", applied.stderr
        kv = subprocess.run(["etcdctl", "--endpoints", f"http://127.0.0.1:{etcd_port}", "get",
                             "/registry/pods/default/hello", "--print-value-only"],
                            capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"})
        assert '"name":"hello"' in kv.stdout
        # Real kubectl authenticates over the TLS the cluster serves.
        kubectl = subprocess.run(["/usr/lib/google-cloud-sdk/bin/kubectl.1.33", "--kubeconfig", str(kubeconfig),
                                  "--cache-dir", str(tmp_path / "kcache"), "get", "pods", "-o", "name"],
                                 capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)},
                                 timeout=60)
        assert kubectl.stdout.strip() == "pod/hello", kubectl.stderr

        run(env, "down")
        assert not any(alive(p) for p in pids.values())
        assert not list((tmp_path / "run").glob("*.pid"))
        assert (tmp_path / "data" / "etcd").exists(), "down without --purge keeps the data"

        # The data survives a restart; --purge removes it.
        run(env, "up")
        got = run(env_kc, "get", "pod", "hello", "-o", "name")
        assert got.stdout.strip() == "pod/hello"
        run(env, "down", "--purge")
        assert not (tmp_path / "data" / "etcd").exists()
    finally:
        run(env, "down", check=False)
