"""DaemonSets, StatefulSets, Jobs and CronJobs with real kubectl 1.33 and 1.27: apply,
`kubectl get` tables, `rollout status ds/sts`, `scale sts`, `wait` for a Job,
`create job --from=cronjob/x`. A real controller manager and scheduler run; the
nodes are Node objects and a fake agent plays their kubelets through the API
(pods bound -> Running and Ready, a Job's pods -> Succeeded, deletions finished)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from tests.conftest import REPO, stop_process, wait_for

pytestmark = pytest.mark.e2e

MANIFESTS = """
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {clusterIP: None, selector: {app: db}, ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: logs}
spec:
  selector: {matchLabels: {app: logs}}
  template:
    metadata: {labels: {app: logs}}
    spec:
      nodeSelector: {NODE_LABEL}
      terminationGracePeriodSeconds: 0
      containers: [{name: agent, image: "busybox:1"}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{name: db, image: "busybox:1"}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  completions: 2
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: work, image: "busybox:1"}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "0 0 1 1 *"
  timeZone: Europe/Berlin
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: work, image: "busybox:1"}]
"""


@pytest.fixture(scope="module")
def control_plane(tls_apiserver, tmp_path_factory):
    """Controller manager and scheduler processes against the kubectl tests' apiserver."""
    base = tmp_path_factory.mktemp("workloads2")
    procs, logs = [], []
    for name, args in (("cm", ["controlplane.controllers"]),
                       ("sched", ["controlplane.scheduler", "--no-leader-elect"])):
        log = base / f"{name}.log"
        with open(log, "wb") as out:
            procs.append(subprocess.Popen([sys.executable, "-m", *args, "--kubeconfig", str(tls_apiserver.kubeconfig)],
                                          stdout=out, stderr=subprocess.STDOUT, cwd=REPO))
        logs.append(log)
    yield
    for p in procs:
        stop_process(p)
    for log in logs:
        assert "Traceback" not in log.read_text(), log.read_text()


class FakeAgent(threading.Thread):
    """The nodes' kubelets reduced to status patches: bound pods Running and Ready, a
    Job's pods then Succeeded, pods being deleted finished with a grace-0 delete."""

    def __init__(self, k, ns: str) -> None:
        super().__init__(daemon=True)
        self.k, self.ns, self.stop = k, ns, threading.Event()

    def _status(self, name: str, phase: str, ready: bool) -> None:
        patch = {"status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
        self.k("patch", "pod", name, "-n", self.ns, "--subresource=status", "--type=strategic",
               "-p", json.dumps(patch), check=False)

    def run(self) -> None:
        while not self.stop.is_set():
            pods = json.loads(self.k("get", "pods", "-n", self.ns, "-o", "json", check=False).stdout or "{}")
            for p in pods.get("items", []):
                name, meta = p["metadata"]["name"], p["metadata"]
                phase = (p.get("status") or {}).get("phase")
                if meta.get("deletionTimestamp"):
                    self.k("delete", "pod", name, "-n", self.ns, "--grace-period=0", "--force", "--wait=false",
                           check=False)
                elif "batch.kubernetes.io/job-name" in (meta.get("labels") or {}):
                    if phase == "Pending":
                        self._status(name, "Succeeded", False)
                elif phase == "Pending" and (p["spec"].get("nodeName") or "-0" in name or "-1" in name
                                             or "-2" in name):
                    self._status(name, "Running", True)
            self.stop.wait(0.2)


def test_daemonset_statefulset_job_cronjob(kubectl, kns, write, control_plane, unique_name):
    k, ns = kubectl, ["-n", kns]
    admin_home = k.home.parent / "home-admin"
    admin_home.mkdir()
    admin = type(k)("1.33", k.server, admin_home)
    label = f"ds-e2e-{k.version.replace('.', '')}-{unique_name}"[:63]
    nodes = [f"{label[:50]}-n{i}" for i in range(2)]
    for n in nodes:
        admin("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": n, "labels": {"ds-e2e": label}}}))
        admin("patch", "node", n, "--subresource=status", "--type=merge", "-p", json.dumps({"status": {
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "Test",
                            "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}))
    agent = FakeAgent(admin, kns)
    agent.start()
    try:
        out = k("apply", *k.validate_flags, *ns, "-f",
                write("w.yaml", MANIFESTS.replace("{NODE_LABEL}", f"{{ds-e2e: {label}}}"))).stdout
        for line in ("daemonset.apps/logs created", "statefulset.apps/db created", "job.batch/once created",
                     "cronjob.batch/tick created"):
            assert line in out, out

        out = k("rollout", "status", "ds/logs", *ns, "--timeout=60s").stdout
        assert 'daemon set "logs" successfully rolled out' in out, out
        out = k("rollout", "status", "sts/db", *ns, "--timeout=60s").stdout
        # Kubernetes defaults rollingUpdate.partition to 0, so kubectl reports a partitioned roll out.
        assert "partitioned roll out complete: 2 new pods have been updated" in out, out
        k("wait", "--for=condition=complete", "job/once", *ns, "--timeout=60s")

        table = k("get", "ds", *ns).stdout.splitlines()
        assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE",
                                    "SELECTOR", "AGE"], table
        assert table[1].split()[:7] == ["logs", "2", "2", "2", "2", "2", f"ds-e2e={label}"], table
        table = k("get", "sts", *ns).stdout.splitlines()
        assert table[0].split() == ["NAME", "READY", "AGE"] and table[1].split()[:2] == ["db", "2/2"], table
        table = k("get", "job", *ns).stdout.splitlines()
        assert table[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], table
        assert table[1].split()[:3] == ["once", "Complete", "2/2"], table
        table = k("get", "cronjob", *ns).stdout.splitlines()
        assert table[0].split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE",
                                    "AGE"], table
        assert table[1].split()[:6] == ["tick", "0", "0", "1", "1", "*"] and "Europe/Berlin" in table[1], table
        pods = k("get", "pods", *ns, "-l", "app=db", "-o", "jsonpath={.items[*].spec.hostname}").stdout.split()
        assert sorted(pods) == ["db-0", "db-1"]
        nodes_of = k("get", "pods", *ns, "-l", "app=logs", "-o", "jsonpath={.items[*].spec.nodeName}").stdout
        assert sorted(nodes_of.split()) == sorted(nodes)

        for what, line in (("ds/logs", "Desired Number of Nodes Scheduled: 2"), ("sts/db", "Replicas:"),
                           ("job/once", "Completions:"), ("cronjob/tick", "Schedule:")):
            text = k("describe", what, *ns).stdout
            assert line in text and "Events:" in text, text
        assert "SuccessfulCreate" in k("describe", "job/once", *ns).stdout
        assert "statefulset.apps/db scaled" in k("scale", "sts/db", "--replicas=3", *ns).stdout
        k("rollout", "status", "sts/db", *ns, "--timeout=60s")
        assert k("get", "sts", "db", *ns, "-o", "jsonpath={.status.readyReplicas}").stdout == "3"

        out = k("create", "job", "manual", "--from=cronjob/tick", *ns).stdout
        assert "job.batch/manual created" in out, out
        job = json.loads(k("get", "job", "manual", *ns, "-o", "json").stdout)
        assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
        assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
        k("wait", "--for=condition=complete", "job/manual", *ns, "--timeout=60s")

        # A rolling update of the DaemonSet, watched by rollout status.
        k("set", "image", "ds/logs", "agent=busybox:2", *ns)
        k("rollout", "status", "ds/logs", *ns, "--timeout=60s")
        images = k("get", "pods", *ns, "-l", "app=logs", "-o", "jsonpath={.items[*].spec.containers[0].image}")
        wait_for(lambda: set(k("get", "pods", *ns, "-l", "app=logs", "-o",
                               "jsonpath={.items[*].spec.containers[0].image}").stdout.split()) == {"busybox:2"},
                 30, "daemon pods on busybox:2")
        assert images.returncode == 0
    finally:
        agent.stop.set()
        agent.join()
        k("delete", "ds,sts,jobs,cronjobs,svc", "--all", *ns, "--cascade=orphan", check=False)
        for n in nodes:
            admin("delete", "node", n, check=False)
