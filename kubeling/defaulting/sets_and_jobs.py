"""Defaults of DaemonSet, StatefulSet (apps/v1) and Job, CronJob (batch/v1), as
pkg/apis/apps/v1/defaults.go and pkg/apis/batch/v1/defaults.go set them."""
from __future__ import annotations

from typing import Any

from kubeling.defaulting.podtemplate import default_pod_template


def _spec(obj: dict) -> dict | None:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else None


def _unset(d: dict, key: str, value: Any) -> None:
    if d.get(key) is None:
        d[key] = value


def _obj(d: dict, key: str) -> dict | None:
    """d[key], made {} when unset; None when it is not an object."""
    if d.get(key) is None:
        d[key] = {}
    v = d[key]
    return v if isinstance(v, dict) else None


def _rolling_update(spec: dict) -> dict | None:
    """spec.updateStrategy with type RollingUpdate by default; its rollingUpdate
    (made when unset) when that is the type."""
    strategy = _obj(spec, "updateStrategy")
    if strategy is None:
        return None
    _unset(strategy, "type", "RollingUpdate")
    return _obj(strategy, "rollingUpdate") if strategy.get("type") == "RollingUpdate" else None


def default_daemonset(ds: dict) -> None:
    spec = _spec(ds)
    if spec is None:
        return
    default_pod_template(spec.get("template"))
    rolling = _rolling_update(spec)
    if rolling is not None:
        _unset(rolling, "maxUnavailable", 1)
        _unset(rolling, "maxSurge", 0)
    _unset(spec, "revisionHistoryLimit", 10)


def default_statefulset(sts: dict) -> None:
    spec = _spec(sts)
    if spec is None:
        return
    default_pod_template(spec.get("template"))
    _unset(spec, "replicas", 1)
    _unset(spec, "podManagementPolicy", "OrderedReady")
    rolling = _rolling_update(spec)
    if rolling is not None:
        _unset(rolling, "partition", 0)
    _unset(spec, "revisionHistoryLimit", 10)
    policy = _obj(spec, "persistentVolumeClaimRetentionPolicy")
    if policy is not None:
        _unset(policy, "whenDeleted", "Retain")
        _unset(policy, "whenScaled", "Retain")
    for claim in spec.get("volumeClaimTemplates") or [] if isinstance(spec.get("volumeClaimTemplates"), list) else []:
        if isinstance(claim, dict) and isinstance(claim.get("spec"), dict):
            _unset(claim["spec"], "volumeMode", "Filesystem")


def default_job_spec(spec: dict) -> None:
    default_pod_template(spec.get("template"))
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    _unset(spec, "parallelism", 1)
    _unset(spec, "backoffLimit", 6)
    _unset(spec, "completionMode", "NonIndexed")
    _unset(spec, "suspend", False)
    _unset(spec, "podReplacementPolicy", "TerminatingOrFailed")


def default_job(job: dict) -> None:
    spec = _spec(job)
    if spec is not None:
        default_job_spec(spec)


def default_cronjob(cj: dict) -> None:
    spec = _spec(cj)
    if spec is None:
        return
    _unset(spec, "concurrencyPolicy", "Allow")
    _unset(spec, "suspend", False)
    _unset(spec, "successfulJobsHistoryLimit", 3)
    _unset(spec, "failedJobsHistoryLimit", 1)
    # Only the pod template: the Job's own defaults come when a Job is created from it.
    template = spec.get("jobTemplate")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        default_pod_template(template["spec"].get("template"))
