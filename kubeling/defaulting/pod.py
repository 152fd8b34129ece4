"""Pod defaults: pkg/apis/core/v1/defaults.go, the pod strategy's PrepareForCreate, and
the admission plugins every cluster runs (DefaultTolerationSeconds, Priority)."""
from __future__ import annotations

from typing import Any

from kubeling.defaulting.qos import pod_qos_class
from kubeling.validation.pod import VOLUME_SOURCES

DEFAULT_TOLERATION_SECONDS = 300
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"


def _dict(parent: dict, key: str, create: bool = False) -> dict | None:
    """The dict at parent[key]; with create, made when absent. None if mistyped."""
    v = parent.get(key)
    if v is None and create:
        v = parent[key] = {}
    return v if isinstance(v, dict) else None


def _dicts(parent: dict, key: str) -> list[dict]:
    v = parent.get(key)
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def _default(d: dict, key: str, value: Any) -> None:
    if d.get(key) in (None, ""):
        d[key] = value


def image_pull_policy(image: Any) -> str:
    """Always for ":latest" or no tag, else IfNotPresent (a digest counts as a tag)."""
    if not isinstance(image, str):
        return "IfNotPresent"
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "Always"
    return "Always" if last.rsplit(":", 1)[1] == "latest" else "IfNotPresent"


def default_pod(pod: dict) -> None:
    spec = _dict(pod, "spec")
    if spec is None:
        return
    _default(spec, "restartPolicy", "Always")
    _default(spec, "dnsPolicy", "ClusterFirst")
    _default(spec, "schedulerName", "default-scheduler")
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("priorityClassName") in (None, "") and spec.get("priority") is None:
        spec["priority"] = 0
    _default(spec, "preemptionPolicy", "PreemptLowerPriority")
    host_network = spec.get("hostNetwork") is True
    for field in ("initContainers", "containers"):
        for ctr in _dicts(spec, field):
            _default_container(ctr, host_network)
    for vol in _dicts(spec, "volumes"):
        _default_volume(vol)
    _default_tolerations(spec)
    status = _dict(pod, "status", create=True)
    if status is not None:
        _default(status, "phase", "Pending")
        _default(status, "qosClass", pod_qos_class(pod))


def _default_container(ctr: dict, host_network: bool) -> None:
    _default(ctr, "imagePullPolicy", image_pull_policy(ctr.get("image")))
    _default(ctr, "terminationMessagePath", "/dev/termination-log")
    _default(ctr, "terminationMessagePolicy", "File")
    for port in _dicts(ctr, "ports"):
        _default(port, "protocol", "TCP")
        if host_network and port.get("hostPort") in (None, 0):
            port["hostPort"] = port.get("containerPort")
    res = _dict(ctr, "resources", create=True)
    if res is not None:
        limits = _dict(res, "limits")
        if limits:
            requests = _dict(res, "requests", create=True)
            if requests is not None:
                for name, value in limits.items():
                    requests.setdefault(name, value)
    for ev in _dicts(ctr, "env"):
        source = _dict(ev, "valueFrom")
        ref = _dict(source, "fieldRef") if source is not None else None
        if ref is not None:
            _default(ref, "apiVersion", "v1")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        p = _dict(ctr, probe)
        if p is not None:
            _default_probe(p)
    lifecycle = _dict(ctr, "lifecycle")
    if lifecycle is not None:
        for hook in ("postStart", "preStop"):
            h = _dict(lifecycle, hook)
            http = _dict(h, "httpGet") if h is not None else None
            if http is not None:
                _default_http_get(http)


def _default_probe(probe: dict) -> None:
    # Go's zero means "unset" for these int32 fields.
    for field, value in (("timeoutSeconds", 1), ("periodSeconds", 10),
                         ("successThreshold", 1), ("failureThreshold", 3)):
        if probe.get(field) in (None, 0):
            probe[field] = value
    http = _dict(probe, "httpGet")
    if http is not None:
        _default_http_get(http)


def _default_http_get(http: dict) -> None:
    _default(http, "path", "/")
    _default(http, "scheme", "HTTP")


def _default_volume(vol: dict) -> None:
    if not any(vol.get(s) is not None for s in VOLUME_SOURCES):
        vol["emptyDir"] = {}
    for source in ("configMap", "secret", "downwardAPI", "projected"):
        src = _dict(vol, source)
        if src is not None and src.get("defaultMode") is None:
            src["defaultMode"] = 0o644
    host = _dict(vol, "hostPath")
    if host is not None and host.get("type") is None:
        host["type"] = ""


def _default_tolerations(spec: dict) -> None:
    tolerations = spec.get("tolerations")
    if tolerations is None:
        tolerations = []
    if not isinstance(tolerations, list):
        return
    def tolerates(taint: str) -> bool:
        for t in tolerations:
            if not isinstance(t, dict):
                continue
            if t.get("key") in (taint, None, "") and t.get("effect") in ("NoExecute", None, ""):
                return True
        return False
    added = [
        {"key": taint, "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}
        for taint in (NOT_READY_TAINT, UNREACHABLE_TAINT) if not tolerates(taint)
    ]
    if added:
        spec["tolerations"] = tolerations + added
