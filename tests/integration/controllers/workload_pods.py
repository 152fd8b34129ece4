"""Helpers for the workload controller tests: the test plays the node agent by
patching pods/NAME/status (controllers see only the API), and reads Events."""
from __future__ import annotations

from datetime import datetime, timezone

from kubeling import errors
from kubeling.resources import lookup
from kubeling.timefmt import format_time

PODS, EVENTS, NAMESPACES = lookup("pods"), lookup("events"), lookup("namespaces")


def now() -> str:
    return format_time(datetime.now(timezone.utc))


async def set_phase(client, ns: str, name: str, phase: str, ready: bool = False, restarts: int = 0) -> dict:
    status = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now()}]}
    if restarts:
        status["containerStatuses"] = [{"name": "c", "image": "busybox", "imageID": "", "ready": ready,
                                        "restartCount": restarts, "state": {"running": {"startedAt": now()}}}]
    return await client.patch(PODS, name, {"status": status}, ns, subresource="status")


async def owned_pods(client, ns: str, owner_uid: str) -> list[dict]:
    pods = (await client.list(PODS, ns))["items"]
    return sorted((p for p in pods if any(r.get("uid") == owner_uid and r.get("controller")
                                          for r in p["metadata"].get("ownerReferences") or [])),
                  key=lambda p: p["metadata"]["creationTimestamp"] + p["metadata"]["name"])


async def reasons(client, ns: str, name: str) -> list[str]:
    evs = (await client.list(EVENTS, ns))["items"]
    return [e["reason"] for e in evs if e["involvedObject"].get("name") == name]


async def delete_namespace(client, ns: str) -> None:
    try:
        await client.delete(NAMESPACES, ns)
    except errors.ApiError as exc:
        if exc.code != 404:
            raise
