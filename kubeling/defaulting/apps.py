"""Defaults of the workload kinds (pkg/apis/apps/v1/defaults.go and core/v1's
ReplicationController): replicas 1, Deployment strategy RollingUpdate 25%/25%,
revisionHistoryLimit 10, progressDeadlineSeconds 600, and the pod template's
spec defaulted as a pod's is (but without what only pod admission adds)."""
from __future__ import annotations

import copy
from typing import Any

from kubeling.defaulting.pod import default_pod

# Set on pods by admission plugins (DefaultTolerationSeconds, Priority, ServiceAccount),
# never on templates: a template keeps what the user wrote for these.
_ADMISSION_FIELDS = ("tolerations", "priority", "preemptionPolicy", "serviceAccountName",
                     "serviceAccount", "automountServiceAccountToken")
_ADMISSION_VOLUME_PREFIX = "kube-api-access-"


def _dict(parent: dict, key: str) -> dict | None:
    v = parent.get(key)
    return v if isinstance(v, dict) else None


def default_pod_template(template: Any) -> None:
    if not isinstance(template, dict):
        return
    tmeta = _dict(template, "metadata")
    if tmeta is not None and "creationTimestamp" in tmeta and tmeta["creationTimestamp"] is None:
        # Go clients send a template's zero creationTimestamp as null (kubectl rollout undo):
        # it means unset, and must not make an equal template look different.
        del tmeta["creationTimestamp"]
    spec = _dict(template, "spec")
    if spec is None:
        return
    before = {k: copy.deepcopy(spec[k]) for k in _ADMISSION_FIELDS if k in spec}
    volumes_before = spec.get("volumes")
    wrapper = {"metadata": template.get("metadata") or {}, "spec": spec}
    default_pod(wrapper)
    for k in _ADMISSION_FIELDS:
        if k in before:
            spec[k] = before[k]
        else:
            spec.pop(k, None)
    vols = spec.get("volumes")
    if isinstance(vols, list):
        kept = [v for v in vols if not (isinstance(v, dict) and str(v.get("name", "")).startswith(
            _ADMISSION_VOLUME_PREFIX) and not _named_in(volumes_before, v.get("name")))]
        if kept:
            spec["volumes"] = kept
        else:
            spec.pop("volumes", None)
    for field in ("containers", "initContainers"):
        for ctr in spec.get(field) or []:
            if isinstance(ctr, dict) and isinstance(ctr.get("volumeMounts"), list):
                ctr["volumeMounts"] = [m for m in ctr["volumeMounts"] if not (
                    isinstance(m, dict) and str(m.get("name", "")).startswith(_ADMISSION_VOLUME_PREFIX)
                    and not _named_in(volumes_before, m.get("name")))]
                if not ctr["volumeMounts"]:
                    del ctr["volumeMounts"]


def _named_in(volumes: Any, name: Any) -> bool:
    return isinstance(volumes, list) and any(isinstance(v, dict) and v.get("name") == name for v in volumes)


def _replicas(spec: dict) -> None:
    if spec.get("replicas") is None:
        spec["replicas"] = 1


def default_deployment(obj: dict) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _replicas(spec)
    strategy = spec.get("strategy")
    if strategy is None:
        strategy = spec["strategy"] = {}
    if isinstance(strategy, dict):
        if strategy.get("type") in (None, ""):
            strategy["type"] = "RollingUpdate"
        if strategy["type"] == "RollingUpdate":
            ru = strategy.get("rollingUpdate")
            if ru is None:
                ru = strategy["rollingUpdate"] = {}
            if isinstance(ru, dict):
                if ru.get("maxUnavailable") is None:
                    ru["maxUnavailable"] = "25%"
                if ru.get("maxSurge") is None:
                    ru["maxSurge"] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    default_pod_template(spec.get("template"))


def default_replicaset(obj: dict) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _replicas(spec)
    default_pod_template(spec.get("template"))


def default_replicationcontroller(obj: dict) -> None:
    """core/v1: an empty selector and empty labels come from the template's labels."""
    spec = _dict(obj, "spec")
    if spec is None:
        return
    template = _dict(spec, "template")
    labels = _dict(_dict(template, "metadata") or {}, "labels") if template is not None else None
    if labels:
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = _dict(obj, "metadata")
        if meta is not None and not meta.get("labels"):
            meta["labels"] = dict(labels)
    _replicas(spec)
    default_pod_template(template)
