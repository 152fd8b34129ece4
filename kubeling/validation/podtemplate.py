"""Pod template and label selector validation shared by the workload kinds
(Kubernetes' ValidatePodTemplateSpec and metav1 validation.ValidateLabelSelector)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubeling.errors import invalid_value, not_supported, required
from kubeling.validation.fields import Checker, child
from kubeling.validation.meta import validate_annotations, validate_labels
from kubeling.validation.pod import validate_pod_spec

if TYPE_CHECKING:
    from kubeling.selectors import LabelSelector

SELECTOR_MISMATCH = "`selector` does not match template `labels`"


def validate_selector(c: Checker, spec: dict, path: str, *, required_: bool = True,
                      allow_empty: bool = False) -> LabelSelector | None:
    """spec.selector: present (unless not required_), well formed, not empty."""
    sel_path = child(path, "selector")
    raw = spec.get("selector")
    if raw is None:
        if required_:
            c.add(required(sel_path, ""))
        return None
    sel = c.obj(spec, "selector", sel_path)
    if sel is None:
        return None
    # Imported here: kubeling.selectors itself imports kubeling.validation.formats.
    from kubeling.selectors import label_selector_from_dict
    try:
        selector = label_selector_from_dict(sel)
    except ValueError as exc:
        c.add(invalid_value(sel_path, sel, str(exc)))
        return None
    if not allow_empty and not sel.get("matchLabels") and not sel.get("matchExpressions"):
        c.add(invalid_value(sel_path, sel, "empty selector is invalid"))
        return None
    return selector


def validate_pod_template(c: Checker, spec: dict, path: str, selector: LabelSelector | None,
                          restart_policies: tuple[str, ...] = ("Always",),
                          template_field: str = "template", kind: str = "") -> dict | None:
    """spec.template: labels matching the selector, a valid pod spec whose
    restartPolicy is one the controller can work with."""
    tpath = child(path, template_field)
    template = c.obj(spec, template_field, tpath)
    if template is None:
        if spec.get(template_field) is None:
            c.add(required(tpath, ""))
        return None
    meta = c.obj(template, "metadata", child(tpath, "metadata")) or {}
    labels = meta.get("labels")
    validate_labels(c, labels, child(tpath, "metadata.labels"))
    validate_annotations(c, meta.get("annotations"), child(tpath, "metadata.annotations"))
    if selector is not None and not selector.matches(labels if isinstance(labels, dict) else {}):
        c.add(invalid_value(child(tpath, "metadata.labels"), labels or {}, SELECTOR_MISMATCH))
    pod_spec = c.obj(template, "spec", child(tpath, "spec"))
    if pod_spec is None:
        if template.get("spec") is None:
            c.add(required(child(tpath, "spec.containers"), ""))
        return template
    validate_pod_spec(c, pod_spec, child(tpath, "spec"))
    restart = pod_spec.get("restartPolicy")
    if isinstance(restart, str) and restart and restart not in restart_policies:
        c.add(not_supported(child(tpath, "spec.restartPolicy"), restart, list(restart_policies)))
    if pod_spec.get("activeDeadlineSeconds") is not None and kind and restart_policies == ("Always",):
        # Long-running workloads' pods may not have a deadline.
        c.add(invalid_value(child(tpath, "spec.activeDeadlineSeconds"), pod_spec["activeDeadlineSeconds"],
                            f"activeDeadlineSeconds in {kind} is not Supported"))
    return template


def non_negative(c: Checker, parent: Any, name: str, path: str, bits: int = 32) -> int | None:
    v = c.int(parent, name, child(path, name), bits)
    if v is not None and v < 0:
        c.add(invalid_value(child(path, name), v, "must be greater than or equal to 0"))
        return None
    return v
