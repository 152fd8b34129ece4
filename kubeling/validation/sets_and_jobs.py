"""Validation of DaemonSet, StatefulSet (pkg/apis/apps/validation) and Job, CronJob
(pkg/apis/batch/validation): the fields their controllers rely on, with Kubernetes'
field paths and messages."""
from __future__ import annotations

import json
from typing import Any

from kubeling import cron
from kubeling.errors import FieldError, forbidden, invalid_value, not_supported, required
from kubeling.validation import formats
from kubeling.validation.fields import Checker, child
from kubeling.validation.meta import FIELD_IMMUTABLE, validate_object_meta, validate_object_meta_update
from kubeling.validation.podtemplate import non_negative, validate_pod_template, validate_selector

JOB_RESTART_POLICIES = ("OnFailure", "Never")
CRONJOB_NAME_MAX = 52  # the Job's name adds an 11-character suffix
STS_UPDATABLE = ("replicas", "ordinals", "template", "updateStrategy",
                 "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


def _begin(obj: dict, old: dict | None) -> tuple[Checker, dict | None]:
    c = Checker()
    validate_object_meta(c, obj, True, formats.dns1123_subdomain)
    if old is not None:
        validate_object_meta_update(c, obj, old)
    spec = c.obj(obj, "spec", "spec")
    if spec is None and obj.get("spec") is None:
        c.add(required("spec", ""))
    return c, spec


def _old_spec(old: dict | None) -> dict | None:
    spec = (old or {}).get("spec")
    return spec if isinstance(spec, dict) else None


def _immutable(c: Checker, spec: dict, old_spec: dict | None, field: str, path: str) -> None:
    if old_spec is not None and spec.get(field) != old_spec.get(field):
        c.add(invalid_value(child(path, field), spec.get(field), FIELD_IMMUTABLE))


def _int_or_percent(c: Checker, parent: dict, name: str, path: str) -> int | str | None:
    v = c.int_or_str(parent, name, child(path, name))
    p = child(path, name)
    if isinstance(v, int) and v < 0:
        c.add(invalid_value(p, v, "must be greater than or equal to 0"))
    elif isinstance(v, str):
        if not v.endswith("%") or not v[:-1].isdigit():
            c.add(invalid_value(p, v, "a valid percent string must be a numeric string followed by an ending "
                                      "'%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"))
            return None
        if int(v[:-1]) > 100:
            c.add(invalid_value(p, v, "must not be greater than 100%"))
    return v


def _is_zero(v: Any) -> bool:
    return v in (0, "0%", None)


def _update_strategy(c: Checker, spec: dict) -> tuple[str | None, dict | None]:
    """spec.updateStrategy's type (RollingUpdate or OnDelete) and its rollingUpdate, when set."""
    strategy = c.obj(spec, "updateStrategy", "spec.updateStrategy")
    if strategy is None:
        return None, None
    kind = c.str(strategy, "type", "spec.updateStrategy.type")
    if kind not in (None, "RollingUpdate", "OnDelete"):
        c.add(not_supported("spec.updateStrategy.type", kind, ["OnDelete", "RollingUpdate"]))
    return kind, c.obj(strategy, "rollingUpdate", "spec.updateStrategy.rollingUpdate")


# ---- DaemonSet -------------------------------------------------------------------------------

def validate_daemonset(obj: dict, old: dict | None) -> list[FieldError]:
    c, spec = _begin(obj, old)
    if spec is None:
        return c.errors
    selector = validate_selector(c, spec, "spec")
    validate_pod_template(c, spec, "spec", selector, ("Always",), kind="DaemonSet")
    _, rolling = _update_strategy(c, spec)
    if rolling is not None:
        rp = "spec.updateStrategy.rollingUpdate"
        unavailable = _int_or_percent(c, rolling, "maxUnavailable", rp)
        surge = _int_or_percent(c, rolling, "maxSurge", rp)
        if _is_zero(unavailable) and _is_zero(surge):
            c.add(invalid_value(child(rp, "maxUnavailable"), unavailable, "may not be 0 when `maxSurge` is 0"))
    non_negative(c, spec, "minReadySeconds", "spec")
    non_negative(c, spec, "revisionHistoryLimit", "spec")
    old_spec = _old_spec(old)
    if old_spec is not None:
        _immutable(c, spec, old_spec, "selector", "spec")
    return c.errors


# ---- StatefulSet -----------------------------------------------------------------------------

def validate_statefulset(obj: dict, old: dict | None) -> list[FieldError]:
    c, spec = _begin(obj, old)
    if spec is None:
        return c.errors
    policy = c.str(spec, "podManagementPolicy", "spec.podManagementPolicy")
    if policy not in (None, "OrderedReady", "Parallel"):
        c.add(not_supported("spec.podManagementPolicy", policy, ["OrderedReady", "Parallel"]))
    kind, rolling = _update_strategy(c, spec)
    if rolling is not None:
        if kind == "OnDelete":
            c.add(invalid_value("spec.updateStrategy.rollingUpdate", rolling,
                                "only allowed for updateStrategy 'RollingUpdate'"))
        non_negative(c, rolling, "partition", "spec.updateStrategy.rollingUpdate")
    non_negative(c, spec, "replicas", "spec")
    non_negative(c, spec, "minReadySeconds", "spec")
    non_negative(c, spec, "revisionHistoryLimit", "spec")
    service = c.str(spec, "serviceName", "spec.serviceName")
    if service:
        c.messages("spec.serviceName", service, formats.dns1123_label(service))
    c.list(spec, "volumeClaimTemplates", "spec.volumeClaimTemplates")
    selector = validate_selector(c, spec, "spec")
    validate_pod_template(c, spec, "spec", selector, ("Always",), kind="StatefulSet")
    old_spec = _old_spec(old)
    if old_spec is not None:
        others = {k: v for k, v in spec.items() if k not in STS_UPDATABLE}
        old_others = {k: v for k, v in old_spec.items() if k not in STS_UPDATABLE}
        if others != old_others:
            c.add(forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                                    "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                                    "'minReadySeconds' are forbidden"))
    return c.errors


# ---- Job -------------------------------------------------------------------------------------

def validate_job_spec(c: Checker, spec: dict, path: str, *, generated_selector: bool = True) -> None:
    for field in ("parallelism", "completions", "backoffLimit"):
        non_negative(c, spec, field, path)
    non_negative(c, spec, "activeDeadlineSeconds", path, 64)
    non_negative(c, spec, "ttlSecondsAfterFinished", path)
    mode = c.str(spec, "completionMode", child(path, "completionMode"))
    if mode not in (None, "NonIndexed", "Indexed"):
        c.add(not_supported(child(path, "completionMode"), mode, ["NonIndexed", "Indexed"]))
    if mode == "Indexed" and spec.get("completions") is None:
        c.add(required(child(path, "completions"), "when completion mode is Indexed"))
    c.bool(spec, "suspend", child(path, "suspend"))
    selector = validate_selector(c, spec, path, required_=generated_selector)
    validate_pod_template(c, spec, path, selector, JOB_RESTART_POLICIES)
    template = spec.get("template")
    pod_spec = template.get("spec") if isinstance(template, dict) else None
    if isinstance(pod_spec, dict) and pod_spec.get("restartPolicy") in (None, ""):
        c.add(required(child(path, "template.spec.restartPolicy"), 'valid values: "OnFailure", "Never"'))


def validate_job(obj: dict, old: dict | None) -> list[FieldError]:
    c, spec = _begin(obj, old)
    if spec is None:
        return c.errors
    validate_job_spec(c, spec, "spec")
    old_spec = _old_spec(old)
    if old_spec is not None:
        for field in ("selector", "completions", "completionMode", "podFailurePolicy"):
            _immutable(c, spec, old_spec, field, "spec")
        # The template may change only while the job is suspended (kubectl's job create, Kueue).
        if spec.get("template") != old_spec.get("template") and not old_spec.get("suspend"):
            c.add(invalid_value("spec.template", _short(spec.get("template")), FIELD_IMMUTABLE))
    return c.errors


def _short(v: Any) -> Any:
    return json.loads(json.dumps(v)) if v is not None else None


# ---- CronJob ---------------------------------------------------------------------------------

def validate_cronjob(obj: dict, old: dict | None) -> list[FieldError]:
    c, spec = _begin(obj, old)
    name = (obj.get("metadata") or {}).get("name") if isinstance(obj.get("metadata"), dict) else None
    if isinstance(name, str) and len(name) > CRONJOB_NAME_MAX:
        c.add(invalid_value("metadata.name", name, f"must be no more than {CRONJOB_NAME_MAX} characters"))
    if spec is None:
        return c.errors
    schedule = c.str(spec, "schedule", "spec.schedule")
    if not schedule:
        if spec.get("schedule") in (None, ""):
            c.add(required("spec.schedule", ""))
    else:
        try:
            cron.parse(schedule)
        except cron.CronError as exc:
            msg = str(exc)
            if "TZ" in msg:
                c.add(invalid_value("spec.schedule", schedule, msg))
            else:
                c.add(invalid_value("spec.schedule", schedule, f"unparseable cron expression: {msg}"))
    tz = c.str(spec, "timeZone", "spec.timeZone")
    if tz is not None:
        try:
            if not tz or tz.strip() != tz:
                raise cron.CronError(tz)
            cron.zone(tz)
        except cron.CronError:
            c.add(invalid_value("spec.timeZone", tz, "unknown time zone " + tz))
    policy = c.str(spec, "concurrencyPolicy", "spec.concurrencyPolicy")
    if policy not in (None, "Allow", "Forbid", "Replace"):
        c.add(not_supported("spec.concurrencyPolicy", policy, ["Allow", "Forbid", "Replace"]))
    c.bool(spec, "suspend", "spec.suspend")
    for field in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        non_negative(c, spec, field, "spec")
    non_negative(c, spec, "startingDeadlineSeconds", "spec", 64)
    template = c.obj(spec, "jobTemplate", "spec.jobTemplate")
    if template is None:
        if spec.get("jobTemplate") is None:
            c.add(required("spec.jobTemplate", ""))
        return c.errors
    job_spec = c.obj(template, "spec", "spec.jobTemplate.spec")
    if job_spec is not None:
        # The CronJob's jobs get their selector from their own uid when created.
        validate_job_spec(c, job_spec, "spec.jobTemplate.spec", generated_selector=False)
    elif template.get("spec") is None:
        c.add(required("spec.jobTemplate.spec", ""))
    return c.errors
