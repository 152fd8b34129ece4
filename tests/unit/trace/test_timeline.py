"""The timeline builder on events recorded by a real walkthrough run (fixtures/), and on
small hand-made cases: a pod stuck on a missing image, a pod no node fits."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubeling.trace import render
from kubeling.trace.timeline import build_creation, build_deletion

FIXTURES = Path(__file__).parent / "fixtures"
CREATION_KEYS = ["received", "stored", "scheduled", "accepted", "sandbox", "network", "image:httpd",
                 "created:httpd", "started:httpd", "probes", "ready", "endpoints:web", "rules:web@{node}"]
DELETION_KEYS = ["deletion", "endpoints:web", "rules:web@{node}", "stopped", "sandbox", "removed"]


def recorded(kind: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"walkthrough-{kind}.json").read_text())


def assert_consistent(tl) -> None:
    timed = [s for s in tl.steps if not s.check]
    assert all(s.done and s.duration is not None and s.duration >= 0 for s in timed)
    assert sum(s.duration for s in timed) == pytest.approx(tl.total, abs=1e-9)
    assert [s.offset for s in timed] == sorted(s.offset for s in timed)
    assert sum(1 for s in tl.steps if s.slowest) == 1


def test_the_walkthrough_creation_in_order_from_recorded_events() -> None:
    rec = recorded("creation")
    tl = build_creation(None, rec["uid"], "web", "walk", rec["events"], [], [rec["node"]],
                        {"web": "web.walk.svc.cluster.local. → 10.96.176.121"})
    assert [s.key for s in tl.steps] == [k.format(node=rec["node"]) for k in CREATION_KEYS] + ["dns:web"]
    assert tl.complete
    assert_consistent(tl)
    steps = {s.key: s for s in tl.steps}
    assert steps["stored"].detail == "revision 39"
    assert steps["scheduled"].detail.startswith(f"to {rec['node']}; 0 of 1 nodes filtered out; scheduling took")
    assert "IP 10.244.77.3" in steps["network"].detail and "CNI kubeling (kubeling-bridge)" in steps["network"].detail
    assert steps["dns:web"].check.endswith("10.96.176.121") and steps["dns:web"].offset is None


def test_the_walkthrough_deletion_in_reverse_order_from_recorded_events() -> None:
    rec = recorded("deletion")
    tl = build_deletion(rec["uid"], "web", "walk", rec["events"], [rec["node"]])
    assert tl is not None
    assert [s.key for s in tl.steps] == [k.format(node=rec["node"]) for k in DELETION_KEYS]
    assert tl.complete
    assert_consistent(tl)
    assert tl.steps[0].detail == "Deletion requested, grace period 30s"
    stopped = tl.steps[3]
    assert "preStop" in stopped.detail and "grace period of 30s" in stopped.detail


def test_a_pod_never_deleted_has_no_deletion_timeline() -> None:
    rec = recorded("creation")
    assert build_deletion(rec["uid"], "web", "walk", rec["events"], [rec["node"]]) is None


def test_another_pods_events_under_the_same_name_are_not_mixed_in() -> None:
    rec = recorded("creation")
    tl = build_creation(None, "some-other-uid", "web", "walk", rec["events"], [], [rec["node"]])
    assert not any(s.done for s in tl.steps[1:])


def _event(reason: str, at: str, message: str = "", uid: str = "u1", container: str = "",
           type_: str = "Normal", notes: dict[str, str] | None = None) -> dict[str, Any]:
    inv: dict[str, Any] = {"kind": "Pod", "namespace": "ns", "name": "p", "uid": uid}
    if container:
        inv["fieldPath"] = f"spec.containers{{{container}}}"
    return {"metadata": {"name": f"p.{reason}", "namespace": "ns", "annotations": notes or {}},
            "involvedObject": inv, "reason": reason, "message": message, "type": type_,
            "eventTime": f"2026-01-01T00:00:{at}Z"}


def _pod(node: str = "", waiting: tuple[str, str] | None = None) -> dict[str, Any]:
    pod: dict[str, Any] = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "p"}},
                           "spec": {"containers": [{"name": "app", "image": "nope:1"}]}, "status": {}}
    if node:
        pod["spec"]["nodeName"] = node
    if waiting:
        pod["status"]["containerStatuses"] = [{"name": "app", "state": {"waiting": {
            "reason": waiting[0], "message": waiting[1]}}}]
    return pod


STORED = _event("Stored", "00.100000", notes={"trace.kubeling.io/received-at": "2026-01-01T00:00:00.095000Z",
                                              "trace.kubeling.io/revision": "7"})


def test_a_pod_no_node_fits_waits_at_scheduling_and_says_why() -> None:
    msg = ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
           "3 No preemption victims found for incoming pod.")
    events = [STORED, _event("FailedScheduling", "00.200000", msg, type_="Warning"),
              _event("FailedScheduling", "01.200000", msg, type_="Warning")]
    tl = build_creation(_pod(), "u1", "p", "ns", events, [], ["a", "b", "c"])
    scheduled = next(s for s in tl.steps if s.key == "scheduled")
    assert not scheduled.done and scheduled.warning
    assert scheduled.waiting.startswith("no node fits: 0/3 nodes are available: 3 Insufficient cpu.")
    assert [s.key for s in tl.steps if s.done] == ["received", "stored"]
    assert tl.total == pytest.approx(0.005) and not tl.complete
    text = render.text(tl)
    assert "✗ scheduled" in text and "no node fits: 0/3 nodes are available: 3 Insufficient cpu." in text
    assert "so far" in text.splitlines()[0]


def test_a_pod_stuck_on_a_missing_image_waits_at_the_image_step() -> None:
    events = [STORED, _event("Scheduled", "00.200000", "Successfully assigned ns/p to n1"),
              _event("Accepted", "00.250000"), _event("SandboxCreated", "00.400000"),
              _event("NetworkReady", "00.500000", notes={"trace.kubeling.io/ip": "10.244.0.9"}),
              _event("Pulling", "00.510000", 'Pulling image "nope:1"', container="app"),
              _event("Failed", "00.600000", 'Failed to pull image "nope:1": not found', container="app",
                     type_="Warning"),
              _event("BackOff", "01.600000", 'Back-off pulling image "nope:1"', container="app")]
    pod = _pod("n1", ("ImagePullBackOff", 'Back-off pulling image "nope:1"'))
    tl = build_creation(pod, "u1", "p", "ns", events, [], ["n1"])
    image = next(s for s in tl.steps if s.key == "image:app")
    assert not image.done and image.warning
    assert image.waiting == 'ImagePullBackOff: Back-off pulling image "nope:1"'
    assert [s.key for s in tl.steps if s.done] == ["received", "stored", "scheduled", "accepted", "sandbox",
                                                   "network"]
    assert next(s for s in tl.steps if s.key == "network").detail == "IP 10.244.0.9"
    # Without the pod's status (say it is gone), the events still say why.
    tl = build_creation(_pod("n1"), "u1", "p", "ns", events, [], ["n1"])
    image = next(s for s in tl.steps if s.key == "image:app")
    assert image.waiting == 'Back-off pulling image "nope:1"' and not image.warning


def test_a_step_recorded_just_before_its_predecessor_counts_zero() -> None:
    events = [STORED, _event("Scheduled", "00.300000", "Successfully assigned ns/p to n1"),
              _event("Accepted", "00.290000")]   # the agent's clock, or a watch faster than a response
    tl = build_creation(_pod("n1"), "u1", "p", "ns", events, [], [])
    steps = {s.key: s for s in tl.steps}
    assert steps["accepted"].duration == 0 and steps["accepted"].offset == steps["scheduled"].offset


def test_services_selecting_the_pod_get_endpoint_and_rule_steps_per_node() -> None:
    svc = {"metadata": {"name": "front"}, "spec": {"selector": {"app": "p"}}}
    other = {"metadata": {"name": "other"}, "spec": {"selector": {"app": "q"}}}
    tl = build_creation(_pod("n1"), "u1", "p", "ns", [STORED], [svc, other], ["n1", "n2"])
    keys = [s.key for s in tl.steps]
    assert keys[-3:] == ["endpoints:front", "rules:front@n1", "rules:front@n2"]
    assert tl.steps[-3].waiting == "the pod to be Ready" and tl.steps[-1].waiting == "the endpoints"
    assert [(s.key, s.waiting) for s in tl.steps if s.key in ("probes", "ready")] == [
        ("probes", "the containers to be ready"), ("ready", "the probes")]


def test_html_draws_a_bar_for_every_step_and_json_carries_them() -> None:
    rec = recorded("deletion")
    tls = [build_creation(None, rec["uid"], "web", "walk", rec["events"], [], [rec["node"]]),
           build_deletion(rec["uid"], "web", "walk", rec["events"], [rec["node"]])]
    page = render.as_html(tls)  # type: ignore[arg-type]
    for tl in tls:
        for s in tl.steps:  # type: ignore[union-attr]
            assert f'data-step="{s.key}"' in page
    assert "http" not in page.replace("httpd", "")   # self-contained: no links, no assets
    out = json.loads(render.as_json(tls))  # type: ignore[arg-type]
    assert [t["kind"] for t in out["timelines"]] == ["creation", "deletion"]
    assert out["timelines"][1]["steps"][-1]["key"] == "removed"
    assert render.text(tls[0]).count(render.SLOWEST) == 1  # type: ignore[arg-type]
