"""A pod's timeline, built from what was recorded where each step happened: the
Events of the API server (Stored, DeletionRequested, Removed), the scheduler
(Scheduled, FailedScheduling), the agent (kubelet's Pulling/Pulled/Created/Started/
Killing/Unhealthy plus kubeling's Accepted, SandboxCreated, NetworkReady, ContainersReady, Ready,
ContainersStopped, SandboxRemoved), the endpointslice controller (AddedToEndpoints,
RemovedFromEndpoints) and each node's proxy (RulesProgrammed on the Service).

Pure: the inputs are API objects (dicts), so it is tested on recorded fixtures.
Steps come in the walkthrough's order. Each happened step's duration runs from the
previous happened step (a step recorded a little before its predecessor, on another
clock or across a race of watch and response, counts as 0 s), so the durations add
up to the total. A step that has not happened says what it waits for."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubeling.timefmt import parse_time

CREATION, DELETION = "creation", "deletion"
# Annotations the components put on their events (see each component's trace events).
RECEIVED = "trace.kubeling.io/received-at"
REVISION = "trace.kubeling.io/revision"
NODES_TOTAL = "trace.kubeling.io/nodes"
NODES_FILTERED = "trace.kubeling.io/filtered-out"
SCHEDULING_SECONDS = "trace.kubeling.io/scheduling-seconds"
SERVICE = "trace.kubeling.io/service"
NODE = "trace.kubeling.io/node"
CNI = "trace.kubeling.io/cni"
CNI_ADD = "trace.kubeling.io/cni-add-seconds"
IP = "trace.kubeling.io/ip"
GRACE = "trace.kubeling.io/grace-period-seconds"


@dataclass
class Step:
    key: str                       # stable: "stored", "started:httpd", "rules:web@node-1"
    title: str
    detail: str = ""
    at: datetime | None = None     # when it happened; None: not yet (see waiting) or a check
    waiting: str = ""              # what a step that has not happened waits for
    warning: bool = False          # the wait is a failure (ImagePullBackOff, no node fits)
    check: str = ""                # an untimed check made by the trace itself (DNS)
    offset: float | None = None    # seconds since the timeline's origin
    duration: float | None = None  # seconds since the previous happened step
    slowest: bool = False

    @property
    def done(self) -> bool:
        return self.at is not None

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "detail": self.detail,
                "at": self.at.isoformat() if self.at else None, "offset": self.offset,
                "duration": self.duration, "done": self.done, "waiting": self.waiting or None,
                "warning": self.warning, "check": self.check or None, "slowest": self.slowest}


@dataclass
class Timeline:
    kind: str                      # creation | deletion
    namespace: str
    pod: str
    uid: str
    steps: list[Step] = field(default_factory=list)
    origin: datetime | None = None

    @property
    def total(self) -> float | None:
        done = [s for s in self.steps if s.offset is not None]
        return done[-1].offset if done else None

    @property
    def complete(self) -> bool:
        return all(s.done or s.check for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "namespace": self.namespace, "pod": self.pod, "uid": self.uid,
                "origin": self.origin.isoformat() if self.origin else None, "total": self.total,
                "complete": self.complete, "steps": [s.as_dict() for s in self.steps]}


# ---- reading events -------------------------------------------------------------------

def event_time(ev: dict[str, Any]) -> datetime | None:
    """When the step happened: eventTime (microseconds) where set, else the older fields."""
    for value in (ev.get("eventTime"), ev.get("firstTimestamp"), (ev.get("metadata") or {}).get("creationTimestamp")):
        t = parse_time(value)
        if t is not None:
            return t
    return None


def _note(ev: dict[str, Any], key: str) -> str:
    return str(((ev.get("metadata") or {}).get("annotations") or {}).get(key) or "")


def _container_of(ev: dict[str, Any]) -> str:
    path = (ev.get("involvedObject") or {}).get("fieldPath") or ""
    return path[path.index("{") + 1:-1] if "{" in path and path.endswith("}") else ""


class _Events:
    """A pod's events in time order, with lookups by reason (and container)."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        timed = [(event_time(e), e) for e in events]
        self.items = sorted(((t, e) for t, e in timed if t is not None), key=lambda te: te[0])

    def all(self, *reasons: str, container: str | None = None, after: datetime | None = None
            ) -> list[tuple[datetime, dict[str, Any]]]:
        return [(t, e) for t, e in self.items if e.get("reason") in reasons
                and (container is None or _container_of(e) == container)
                and (after is None or t >= after)]

    def first(self, *reasons: str, container: str | None = None, after: datetime | None = None
              ) -> tuple[datetime, dict[str, Any]] | None:
        found = self.all(*reasons, container=container, after=after)
        return found[0] if found else None

    def last(self, *reasons: str, container: str | None = None, after: datetime | None = None
             ) -> tuple[datetime, dict[str, Any]] | None:
        found = self.all(*reasons, container=container, after=after)
        return found[-1] if found else None


def pod_events(events: list[dict[str, Any]], uid: str) -> list[dict[str, Any]]:
    return [e for e in events if (e.get("involvedObject") or {}).get("kind") == "Pod"
            and (e.get("involvedObject") or {}).get("uid") == uid]


def service_events(events: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    return [e for e in events if (e.get("involvedObject") or {}).get("kind") == "Service"
            and (e.get("involvedObject") or {}).get("name") == service]


def services_selecting(pod: dict[str, Any] | None, services: list[dict[str, Any]],
                       events: list[dict[str, Any]]) -> list[str]:
    """The Services whose selector matches the pod (while it exists), plus any whose
    endpoints it was recorded joining."""
    names = set()
    labels = ((pod or {}).get("metadata") or {}).get("labels") or {}
    for svc in services:
        sel = (svc.get("spec") or {}).get("selector")
        if pod is not None and sel and all(labels.get(k) == v for k, v in sel.items()):
            names.add(svc["metadata"]["name"])
    for e in events:
        if e.get("reason") in ("AddedToEndpoints", "RemovedFromEndpoints") and _note(e, SERVICE):
            names.add(_note(e, SERVICE))
    return sorted(names)


# ---- building ---------------------------------------------------------------------------

def _waiting_container(pod: dict[str, Any] | None, name: str) -> tuple[str, str] | None:
    st = (pod or {}).get("status") or {}
    for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        if cs.get("name") == name:
            waiting = (cs.get("state") or {}).get("waiting")
            if waiting and waiting.get("reason") not in (None, "", "ContainerCreating", "PodInitializing"):
                return waiting["reason"], waiting.get("message") or ""
    return None


def _step(key: str, title: str, found: tuple[datetime, dict[str, Any]] | None, detail: str = "") -> Step:
    if found is None:
        return Step(key, title, detail)
    return Step(key, title, detail or found[1].get("message", ""), at=found[0])


def build_creation(pod: dict[str, Any] | None, uid: str, name: str, namespace: str,
                   events: list[dict[str, Any]], services: list[dict[str, Any]], nodes: list[str],
                   dns: dict[str, str] | None = None) -> Timeline:
    """The pod's creation, from the request to DNS. `events`: the namespace's events (the
    pod's by uid and its Services' are picked out); `services`: the namespace's Services;
    `nodes`: the node names whose proxies program rules; `dns`: per Service, what the
    trace's own lookup found (None: no lookup made)."""
    ev = _Events(pod_events(events, uid))
    tl = Timeline(CREATION, namespace, name, uid)
    spec = (pod or {}).get("spec") or {}
    steps = tl.steps

    stored = ev.first("Stored")
    received = parse_time(_note(stored[1], RECEIVED)) if stored else None
    if received is None:
        received = parse_time(((pod or {}).get("metadata") or {}).get("creationTimestamp"))
    steps.append(Step("received", "request received and admitted", "by the API server", at=received))
    s = _step("stored", "stored in etcd", stored)
    if stored:
        s.detail = f"revision {_note(stored[1], REVISION) or '?'}"
    steps.append(s)

    scheduled = ev.first("Scheduled")
    s = _step("scheduled", "scheduled", scheduled)
    if scheduled:
        e = scheduled[1]
        node = (e.get("message") or "").rsplit(" to ", 1)[-1]
        parts = [f"to {node}"]
        if _note(e, NODES_TOTAL):
            count, _, why = (_note(e, NODES_FILTERED) or "0").partition(": ")
            parts.append(f"{count} of {_note(e, NODES_TOTAL)} nodes filtered out" + (f" ({why})" if why else ""))
        if _note(e, SCHEDULING_SECONDS):
            parts.append(f"scheduling took {float(_note(e, SCHEDULING_SECONDS)) * 1000:.1f} ms")
        s.detail = "; ".join(parts)
    else:
        failed = ev.last("FailedScheduling")
        if failed:
            s.waiting, s.warning = f"no node fits: {failed[1].get('message', '')}", True
        elif spec.get("nodeName"):
            # Created with spec.nodeName set: no scheduler was involved (nothing to time).
            s.check = f"not scheduled: created bound to {spec['nodeName']}"
        else:
            s.waiting = "the scheduler"
    steps.append(s)

    node = spec.get("nodeName") or ""
    s = _step("accepted", "picked up by the node's agent", ev.first("Accepted"))
    s.waiting = s.waiting or (f"the agent on {node}" if node else "")
    steps.append(s)

    sandbox = ev.first("SandboxCreated")
    s = _step("sandbox", "sandbox created", sandbox)
    if not sandbox:
        failed = ev.last("FailedCreatePodSandBox")
        if failed:
            s.waiting, s.warning = f"FailedCreatePodSandBox: {failed[1].get('message', '')}", True
    steps.append(s)

    net = ev.first("NetworkReady")
    s = _step("network", "network set up", net)
    if net:
        e = net[1]
        parts = [f"IP {_note(e, IP)}"] if _note(e, IP) else []
        if _note(e, CNI):
            parts.append(f"CNI {_note(e, CNI)}")
        if _note(e, CNI_ADD):
            parts.append(f"ADD {float(_note(e, CNI_ADD)) * 1000:.1f} ms")
        s.detail = ", ".join(parts) or e.get("message", "")
    steps.append(s)

    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        steps.extend(_container_steps(ev, pod, c.get("name", ""), c.get("image", "")))
    if pod is None:   # gone: its containers as the events name them
        seen: list[str] = []
        for _t, e in ev.all("Pulled", "Created", "Started", "Pulling", "Failed", "BackOff"):
            cname = _container_of(e)
            if cname and cname not in seen:
                seen.append(cname)
        for cname in seen:
            steps.extend(_container_steps(ev, None, cname, ""))

    probes = ev.first("ContainersReady")
    s = _step("probes", "startup/readiness probes passed", probes)
    if not probes:
        unhealthy = ev.last("Unhealthy")
        s.waiting = f"Unhealthy: {unhealthy[1].get('message', '')}" if unhealthy else "the containers to be ready"
    steps.append(s)
    ready = ev.first("Ready")
    s = _step("ready", "Ready reported", ready)
    if ready:
        s.detail = "pod status with Ready=True accepted by the API server"
    else:
        s.waiting = "the agent's status write" if probes else "the probes"
    steps.append(s)

    for svc in services_selecting(pod, services, events):
        added = next(((t, e) for t, e in ev.all("AddedToEndpoints") if _note(e, SERVICE) == svc), None)
        s = _step(f"endpoints:{svc}", f"in the endpoints of Service {svc}", added)
        if added:
            s.detail = "EndpointSlice updated by the endpointslice controller"
        else:
            s.waiting = "the pod to be Ready" if not ready else "the endpointslice controller"
        steps.append(s)
        sev = _Events(service_events(events, svc))
        for n in nodes:
            prog = None
            if added:
                prog = next(((t, e) for t, e in sev.all("RulesProgrammed", after=added[0]) if _note(e, NODE) == n),
                            None)
            s = _step(f"rules:{svc}@{n}", f"service rules programmed on {n}", prog)
            if not prog:
                s.waiting = f"the proxy on {n}" if added else "the endpoints"
            steps.append(s)
        if dns is not None and svc in dns:
            steps.append(Step(f"dns:{svc}", f"DNS answering for Service {svc}", check=dns[svc]))
    _timings(tl)
    return tl


def _container_steps(ev: _Events, pod: dict[str, Any] | None, name: str, image: str) -> list[Step]:
    pulled = ev.first("Pulled", container=name)
    if not image:   # the pod is gone: its events name the image
        named = ev.first("Pulled", "Pulling", "Failed", container=name)
        image = named[1].get("message", "").partition('"')[2].partition('"')[0] if named else ""
    s_img = _step(f"image:{name}", f"image {image or ''} present or pulled".replace("  ", " "), pulled)
    created = ev.first("Created", container=name)
    s_created = _step(f"created:{name}", f"container {name} created", created)
    started = ev.first("Started", container=name)
    s_started = _step(f"started:{name}", f"container {name} started", started)
    waiting = _waiting_container(pod, name)
    blocked = next((s for s in (s_img, s_created, s_started) if not s.done), None)
    if blocked is not None:
        if waiting:
            blocked.waiting, blocked.warning = f"{waiting[0]}: {waiting[1]}".rstrip(": "), True
        elif blocked is s_img:
            failed = ev.last("Failed", "BackOff", "ErrImageNeverPull", container=name)
            pulling = ev.last("Pulling", container=name)
            if failed:
                blocked.waiting, blocked.warning = failed[1].get("message", ""), failed[1].get("type") == "Warning"
            elif pulling:
                blocked.waiting = f"the pull: {pulling[1].get('message', '')}"
    return [s_img, s_created, s_started]


def build_deletion(uid: str, name: str, namespace: str, events: list[dict[str, Any]],
                   nodes: list[str]) -> Timeline | None:
    """The pod's deletion, None when it was never asked for."""
    ev = _Events(pod_events(events, uid))
    asked = ev.first("DeletionRequested") or ev.first("Removed")
    if asked is None:
        return None
    tl = Timeline(DELETION, namespace, name, uid)
    steps = tl.steps
    received = parse_time(_note(asked[1], RECEIVED)) or asked[0]
    s = Step("deletion", "deletion requested", asked[1].get("message", ""), at=received)
    steps.append(s)
    if asked[1].get("reason") == "Removed":
        # Removed at once (grace period 0, or never on a node): nothing waited on the agent,
        # which cleans up whatever ran without the API.
        s.detail = "with no grace period: removed at once"
        steps.append(Step("removed", "removed from etcd", asked[1].get("message", ""), at=asked[0]))
        _timings(tl)
        return tl
    services = sorted({_note(e, SERVICE) for _t, e in ev.all("AddedToEndpoints", "RemovedFromEndpoints")
                       if _note(e, SERVICE)})
    for svc in services:
        removed = next(((t, e) for t, e in ev.all("RemovedFromEndpoints", after=received) if _note(e, SERVICE) == svc),
                       None)
        s = _step(f"endpoints:{svc}", f"out of the endpoints of Service {svc}", removed)
        s.waiting = "" if removed else "the endpointslice controller"
        steps.append(s)
        sev = _Events(service_events(events, svc))
        for n in nodes:
            prog = None
            if removed:
                prog = next(((t, e) for t, e in sev.all("RulesProgrammed", after=removed[0]) if _note(e, NODE) == n),
                            None)
            s = _step(f"rules:{svc}@{n}", f"service rules updated on {n}", prog)
            s.waiting = "" if prog else (f"the proxy on {n}" if removed else "the endpoints")
            steps.append(s)
    # The agent begins the stop (preStop hooks, then SIGTERM) as soon as it sees the deletion,
    # alongside the endpoint removal; the containers' end is the step that waits on both.
    killing = ev.first("Killing", after=received)
    stopped = ev.first("ContainersStopped", after=received)
    s = _step("stopped", "containers stopped", stopped)
    began = f"stop began at +{(killing[0] - received).total_seconds():.3f}s (preStop, then SIGTERM)" \
        if killing else "nothing was running"
    if stopped:
        grace = _note(stopped[1], GRACE)
        s.detail = f"{began}; waited on preStop hooks and SIGTERM" + \
            (f" within the grace period of {grace}s" if grace else "")
    else:
        s.waiting = f"the containers to exit ({began}; SIGKILL at the grace period's end)"
    steps.append(s)
    gone = ev.first("SandboxRemoved", after=received)
    s = _step("sandbox", "sandbox removed, network torn down (CNI DEL)", gone)
    s.waiting = "" if gone else "the containers to stop"
    steps.append(s)
    removed = ev.first("Removed")
    s = _step("removed", "removed from etcd", removed)
    if removed:
        s.detail = "after the agent's final delete"
    else:
        s.waiting = "the agent's final delete (finalizers, if any)"
    steps.append(s)
    _timings(tl)
    return tl


def _timings(tl: Timeline) -> None:
    """Offsets from the origin, durations from the previous happened step, the slowest."""
    prev: datetime | None = None
    origin: datetime | None = None
    for s in tl.steps:
        if s.at is None:
            continue
        if origin is None:
            origin = prev = s.at
        assert prev is not None
        at = max(s.at, prev)   # a step recorded just before its predecessor counts 0 s
        s.duration = (at - prev).total_seconds()
        s.offset = (at - origin).total_seconds()
        prev = at
    tl.origin = origin
    timed = [s for s in tl.steps if s.duration is not None and s.duration > 0]
    if timed:
        max(timed, key=lambda s: s.duration or 0.0).slowest = True
