"""Deployments with real kubectl 1.33 and 1.27: apply, get tables, scale, set image,
rollout status/history/undo/restart/pause/resume, delete taking ReplicaSets and pods
along. A real controller manager runs; no node agent: the test marks pods Ready by
patching their status, as an agent would (the controllers see only the API)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from tests.conftest import REPO, stop_process, wait_for

pytestmark = pytest.mark.e2e

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{name: app, image: "busybox:1"}]
"""


@pytest.fixture(scope="module")
def controller_manager(tls_apiserver, tmp_path_factory):
    log = tmp_path_factory.mktemp("cm") / "cm.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "controlplane.controllers", "--kubeconfig",
                                 str(tls_apiserver.kubeconfig)], stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    yield proc
    stop_process(proc)
    assert "Traceback" not in log.read_text(), log.read_text()


class FakeAgent(threading.Thread):
    """Marks the namespace's pods Ready (a status patch, as the agent sends it)."""

    def __init__(self, k, ns: str) -> None:
        super().__init__(daemon=True)
        self.k, self.ns, self.stop = k, ns, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pods = json.loads(self.k("get", "pods", "-n", self.ns, "-o", "json", check=False).stdout or "{}")
            for p in pods.get("items", []):
                conds = (p.get("status") or {}).get("conditions") or []
                if any(c["type"] == "Ready" and c["status"] == "True" for c in conds) \
                        or p["metadata"].get("deletionTimestamp"):
                    continue
                patch = {"status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
                self.k("patch", "pod", p["metadata"]["name"], "-n", self.ns, "--subresource=status",
                       "--type=strategic", "-p", json.dumps(patch), check=False)
            self.stop.wait(0.2)


def test_deployment_lifecycle(kubectl, kns, write, controller_manager):
    k, ns = kubectl, ["-n", kns]
    agent_home = k.home.parent / "home-agent"
    agent_home.mkdir()
    agent = FakeAgent(type(k)("1.33", k.server, agent_home), kns)
    agent.start()
    try:
        out = k("apply", *k.validate_flags, *ns, "-f", write("d.yaml", DEPLOYMENT)).stdout
        assert "deployment.apps/web created" in out
        out = k("rollout", "status", "deploy/web", *ns, "--timeout=60s").stdout
        assert 'deployment "web" successfully rolled out' in out
        table = k("get", "deploy,rs", *ns).stdout
        lines = table.splitlines()
        assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], table
        assert lines[1].split()[:4] == ["deployment.apps/web", "2/2", "2", "2"], table
        rs_header = next(line for line in lines[2:] if line.startswith("NAME"))
        assert rs_header.split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"], table
        assert any(line.startswith("replicaset.apps/web-") and line.split()[1:4] == ["2", "2", "2"]
                   for line in lines), table
        wide = k("get", "deploy", "web", *ns, "-o", "wide").stdout.splitlines()
        assert wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
        assert wide[1].split()[-3:] == ["app", "busybox:1", "app=web"]

        described = k("describe", "deployment", "web", *ns).stdout
        assert "RollingUpdateStrategy:  0 max unavailable, 1 max surge" in described, described
        assert "NewReplicaSet:" in described and "ScalingReplicaSet" in described, described

        assert "deployment.apps/web scaled" in k("scale", "deploy/web", "--replicas=3", *ns).stdout
        k("rollout", "status", "deploy/web", *ns, "--timeout=60s")
        assert k("get", "deploy", "web", *ns, "-o", "jsonpath={.status.readyReplicas}").stdout == "3"

        assert "image updated" in k("set", "image", "deploy/web", "app=busybox:2", *ns).stdout
        k("rollout", "status", "deploy/web", *ns, "--timeout=60s")
        history = k("rollout", "history", "deploy/web", *ns).stdout
        assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"], history

        assert "rolled back" in k("rollout", "undo", "deploy/web", *ns).stdout
        k("rollout", "status", "deploy/web", *ns, "--timeout=60s")
        images = k("get", "pods", *ns, "-l", "app=web", "-o", "jsonpath={.items[*].spec.containers[0].image}")
        wait_for(lambda: set(k("get", "pods", *ns, "-l", "app=web", "--field-selector=status.phase=Running",
                                "-o", "jsonpath={.items[*].spec.containers[0].image}").stdout.split())
                 == {"busybox:1"}, 30, "pods back on busybox:1")
        assert images.returncode == 0

        assert k("get", "rs", *ns, "-o", "name").stdout.count("replicaset.apps/") == 2  # revision 1 reused
        assert "paused" in k("rollout", "pause", "deploy/web", *ns).stdout
        k("set", "image", "deploy/web", "app=busybox:3", *ns)
        assert k("get", "rs", *ns, "-o", "name").stdout.count("replicaset.apps/") == 2  # no new RS while paused
        assert "resumed" in k("rollout", "resume", "deploy/web", *ns).stdout
        k("rollout", "status", "deploy/web", *ns, "--timeout=60s")
        assert "restarted" in k("rollout", "restart", "deploy/web", *ns).stdout
        k("rollout", "status", "deploy/web", *ns, "--timeout=60s")
        assert k("get", "rs", *ns, "-o", "name").stdout.count("replicaset.apps/") == 4

        assert 'deployment.apps "web" deleted' in k("delete", "deployment", "web", *ns).stdout
        wait_for(lambda: k("get", "rs,pods", *ns, "-o", "name").stdout.strip() == "", 30,
                 "ReplicaSets and pods of the deleted Deployment to go")
    finally:
        agent.stop.set()
        agent.join()
        # Whatever a failure left: the namespace fixture only knows the core kinds.
        k("delete", "deployments,replicasets", "--all", *ns, "--wait=true", check=False)


def test_python_client_apps_v1_and_scale(tls_apiserver, kns, controller_manager):
    """The official client's AppsV1Api: create, read the Scale, patch it, delete."""
    from kubernetes import client, config
    api_client = config.new_client_from_config(config_file=str(tls_apiserver.kubeconfig))
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    try:
        labels = {"app": "py"}
        body = client.V1Deployment(
            metadata=client.V1ObjectMeta(name="py"),
            spec=client.V1DeploymentSpec(
                replicas=1, selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]))))
        created = apps.create_namespaced_deployment(kns, body)
        assert created.spec.strategy.rolling_update.max_surge == "25%"
        scale = apps.read_namespaced_deployment_scale("py", kns)
        assert scale.spec.replicas == 1
        apps.patch_namespaced_deployment_scale("py", kns, {"spec": {"replicas": 2}})
        wait_for(lambda: len(core.list_namespaced_pod(kns, label_selector="app=py").items) == 2, 20,
                 "two pods from the scaled Deployment")
        rs = apps.list_namespaced_replica_set(kns).items
        assert len(rs) == 1 and rs[0].metadata.owner_references[0].name == "py"
        apps.delete_namespaced_deployment("py", kns)  # the server's default: background
        wait_for(lambda: not core.list_namespaced_pod(kns, label_selector="app=py").items
                 and not apps.list_namespaced_replica_set(kns).items, 30, "dependents collected")
    finally:
        apps.delete_collection_namespaced_deployment(kns)
        apps.delete_collection_namespaced_replica_set(kns)
        api_client.close()
