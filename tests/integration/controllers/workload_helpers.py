"""What the workload controller tests share: templates, marking pods Ready the way
the agent reports it (a PATCH of pods/NAME/status), and emptying a namespace."""
from __future__ import annotations

from datetime import datetime, timezone

from controller_waits import eventually
from kubeling import errors
from kubeling.resources import lookup
from kubeling.timefmt import format_time

PODS, RS, RC, DEPLOY, NAMESPACES, EVENTS = (lookup(w) for w in (
    "pods", "replicasets", "replicationcontrollers", "deployments", "namespaces", "events"))


def template(labels: dict, image: str = "busybox:1") -> dict:
    return {"metadata": {"labels": dict(labels)},
            "spec": {"containers": [{"name": "app", "image": image}], "terminationGracePeriodSeconds": 0}}


def controller_uid(pod: dict) -> str | None:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref["uid"]
    return None


async def active_pods(client, ns: str, selector: str = "") -> list[dict]:
    items = (await client.list(PODS, ns, label_selector=selector))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def mark_ready(client, pod: dict, ready: bool = True) -> None:
    now = format_time(datetime.now(timezone.utc))
    status = "True" if ready else "False"
    patch = {"status": {"phase": "Running", "podIP": "10.9.0.1",
                        "conditions": [{"type": "Ready", "status": status, "lastTransitionTime": now}]}}
    try:
        await client.patch(PODS, pod["metadata"]["name"], patch, pod["metadata"]["namespace"],
                           subresource="status", patch_type="strategic")
    except errors.ApiError as exc:
        if exc.code != 404:
            raise


async def empty_namespace(client, ns: str) -> None:
    for res in (DEPLOY, RS, RC, PODS):
        for obj in (await client.list(res, ns))["items"]:
            try:
                await client.request("DELETE", f"{_path(res, ns)}/{obj['metadata']['name']}",
                                     {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                                      "propagationPolicy": "Background"})
            except errors.ApiError as exc:
                if exc.code != 404:
                    raise

    async def empty():
        for res in (DEPLOY, RS, RC, PODS):
            if (await client.list(res, ns))["items"]:
                return False
        return True
    await eventually(empty, 30)
    await client.delete(NAMESPACES, ns)


def _path(res, ns: str) -> str:
    from kubeling.client import resource_path
    return resource_path(res, ns)
