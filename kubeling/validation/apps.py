"""Validation of Deployments, ReplicaSets and ReplicationControllers, following
pkg/apis/apps/validation and pkg/apis/core/validation (ValidateReplicationController)."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kubeling.errors import FieldError, forbidden, invalid_value, not_supported, required
from kubeling.validation import formats
from kubeling.validation.fields import Checker, child
from kubeling.validation.meta import (validate_annotations, validate_labels, validate_object_meta,
                                      validate_object_meta_update)
from kubeling.validation.pod import NEGATIVE, validate_pod_spec

STRATEGY_TYPES = ["Recreate", "RollingUpdate"]
PERCENT_RE = re.compile(r"[0-9]+%")
PERCENT_MSG = ("a valid percent string must be a numeric string followed by an ending '%' "
               "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")
IMMUTABLE = "field is immutable"
MISMATCH = "`selector` does not match template `labels`"


def _non_negative(c: Checker, parent: dict, name: str, path: str) -> int | None:
    v = c.int(parent, name, path)
    if v is not None and v < 0:
        c.add(invalid_value(path, v, NEGATIVE))
    return v


def _int_or_percent(c: Checker, parent: dict, name: str, path: str) -> int | str | None:
    """ValidatePositiveIntOrPercent + IsNotMoreThan100Percent."""
    v = c.int_or_str(parent, name, path)
    if isinstance(v, str):
        if not PERCENT_RE.fullmatch(v):
            c.add(invalid_value(path, v, PERCENT_MSG))
            return None
        if int(v[:-1]) > 100:
            c.add(invalid_value(path, v, "must not be greater than 100%"))
    elif isinstance(v, int) and v < 0:
        c.add(invalid_value(path, v, NEGATIVE))
    return v


def _is_zero(v: int | str | None) -> bool:
    return v == 0 or (isinstance(v, str) and PERCENT_RE.fullmatch(v) is not None and int(v[:-1]) == 0)


def validate_template(c: Checker, spec: dict, path: str, selects: Any) -> None:
    """spec.template: required, labels matched by the selector, restartPolicy Always,
    and a valid pod spec. `selects(labels)` is the workload's selector."""
    tpath = child(path, "template")
    template = c.obj(spec, "template", tpath)
    if template is None:
        if spec.get("template") is None:
            c.add(required(tpath, ""))
        return
    meta = c.obj(template, "metadata", child(tpath, "metadata")) or {}
    labels = meta.get("labels")
    validate_labels(c, labels, child(tpath, "metadata.labels"))
    validate_annotations(c, meta.get("annotations"), child(tpath, "metadata.annotations"))
    if selects is not None and not selects(labels if isinstance(labels, dict) else {}):
        c.add(invalid_value(child(tpath, "metadata.labels"), labels or {}, MISMATCH))
    pod_spec = c.obj(template, "spec", child(tpath, "spec"))
    if pod_spec is None:
        c.add(required(child(tpath, "spec.containers"), ""))
        return
    validate_pod_spec(c, pod_spec, child(tpath, "spec"))
    restart = pod_spec.get("restartPolicy")
    if isinstance(restart, str) and restart and restart != "Always":
        c.add(not_supported(child(tpath, "spec.restartPolicy"), restart, ["Always"]))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        c.add(forbidden(child(tpath, "spec.activeDeadlineSeconds"),
                        "activeDeadlineSeconds in ReplicaSet is not Supported"))


def _label_selector(c: Checker, spec: dict, path: str, kind: str) -> Any:
    """A metav1.LabelSelector field: required and non-empty; returns its matcher."""
    from kubeling.selectors import label_selector_from_dict  # selectors import validation.formats
    spath = child(path, "selector")
    sel = c.obj(spec, "selector", spath)
    if sel is None:
        if spec.get("selector") is None:
            c.add(required(spath, ""))
        return None
    try:
        parsed = label_selector_from_dict(sel)
    except ValueError as exc:
        c.add(invalid_value(spath, sel, str(exc)))
        return None
    if parsed.empty:
        c.add(invalid_value(spath, sel, f"empty selector is invalid for {kind}"))
        return None
    validate_labels(c, sel.get("matchLabels"), child(spath, "matchLabels"))
    return parsed.matches


def _common_spec(c: Checker, spec: dict, path: str) -> None:
    _non_negative(c, spec, "replicas", child(path, "replicas"))
    _non_negative(c, spec, "minReadySeconds", child(path, "minReadySeconds"))


def _status(c: Checker, obj: dict) -> None:
    status = c.obj(obj, "status", "status")
    if status is None:
        return
    for field in ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
                  "updatedReplicas", "unavailableReplicas", "terminatingReplicas"):
        _non_negative(c, status, field, child("status", field))
    c.int(status, "observedGeneration", "status.observedGeneration", 64)
    c.items(status, "conditions", "status.conditions")


def _update(c: Checker, obj: dict, old: dict | None) -> None:
    if old is None:
        return
    validate_object_meta_update(c, obj, old)
    new_sel = (obj.get("spec") or {}).get("selector") if isinstance(obj.get("spec"), dict) else None
    old_sel = (old.get("spec") or {}).get("selector") if isinstance(old.get("spec"), dict) else None
    if new_sel != old_sel:
        c.add(invalid_value("spec.selector", new_sel, IMMUTABLE))


def _begin(obj: dict) -> tuple[Checker, dict | None]:
    """Metadata, spec (its selector is required), replicas and minReadySeconds."""
    c = Checker()
    validate_object_meta(c, obj, True, formats.dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec")
    if spec is None:
        c.add(required("spec.selector", ""))
    else:
        _common_spec(c, spec, "spec")
    return c, spec


def _validate_selected(obj: dict, old: dict | None, more: Callable[[Checker, dict], None] | None = None
                       ) -> list[FieldError]:
    """A Deployment or ReplicaSet: a LabelSelector matching the template, then `more` checks of the spec."""
    c, spec = _begin(obj)
    if spec is not None:
        validate_template(c, spec, "spec", _label_selector(c, spec, "spec", "deployment"))
        if more is not None:
            more(c, spec)
    _status(c, obj)
    _update(c, obj, old)
    return c.errors


def validate_deployment(obj: dict, old: dict | None) -> list[FieldError]:
    return _validate_selected(obj, old, _deployment_spec)


def _deployment_spec(c: Checker, spec: dict) -> None:
    _non_negative(c, spec, "revisionHistoryLimit", "spec.revisionHistoryLimit")
    c.bool(spec, "paused", "spec.paused")
    deadline = c.int(spec, "progressDeadlineSeconds", "spec.progressDeadlineSeconds")
    if deadline is not None:
        if deadline < 0:
            c.add(invalid_value("spec.progressDeadlineSeconds", deadline, NEGATIVE))
        min_ready = spec.get("minReadySeconds")
        if isinstance(min_ready, int) and deadline <= min_ready:
            c.add(invalid_value("spec.progressDeadlineSeconds", deadline,
                                "must be greater than minReadySeconds"))
    _strategy(c, spec)


def _strategy(c: Checker, spec: dict) -> None:
    strategy = c.obj(spec, "strategy", "spec.strategy")
    if strategy is None:
        return
    typ = c.str(strategy, "type", "spec.strategy.type")
    if not typ:
        c.add(required("spec.strategy.type", ""))
        return
    if typ not in STRATEGY_TYPES:
        c.add(not_supported("spec.strategy.type", typ, STRATEGY_TYPES))
        return
    ru = c.obj(strategy, "rollingUpdate", "spec.strategy.rollingUpdate")
    if typ == "Recreate":
        if ru is not None:
            c.add(forbidden("spec.strategy.rollingUpdate",
                            "may not be specified when strategy `type` is 'Recreate'"))
        return
    if ru is None:
        c.add(required("spec.strategy.rollingUpdate", "this should be defaulted and never be nil"))
        return
    unavailable = _int_or_percent(c, ru, "maxUnavailable", "spec.strategy.rollingUpdate.maxUnavailable")
    surge = _int_or_percent(c, ru, "maxSurge", "spec.strategy.rollingUpdate.maxSurge")
    if _is_zero(surge) and _is_zero(unavailable):
        c.add(invalid_value("spec.strategy.rollingUpdate.maxUnavailable", unavailable,
                            "may not be 0 when `maxSurge` is 0"))


def validate_replicaset(obj: dict, old: dict | None) -> list[FieldError]:
    return _validate_selected(obj, old)


def validate_replicationcontroller(obj: dict, old: dict | None) -> list[FieldError]:
    c, spec = _begin(obj)
    if spec is not None:
        selector = c.str_map(spec, "selector", "spec.selector")
        selects = None
        if not selector:
            c.add(required("spec.selector", ""))
        else:
            from kubeling.selectors import label_selector_from_set
            validate_labels(c, selector, "spec.selector")
            selects = label_selector_from_set(selector).matches
        validate_template(c, spec, "spec", selects)
    _status(c, obj)
    if old is not None:
        validate_object_meta_update(c, obj, old)  # an RC's selector may change
    return c.errors
