"""Defaults of a pod template (spec.template of the workload kinds): Kubernetes runs the
pod spec defaulters on it. What admission plugins add to pods (default tolerations,
priority) is left for the pods themselves, and a template has no status."""
from __future__ import annotations

from kubeling.defaulting.pod import default_pod

_ADMISSION_FIELDS = ("tolerations", "priority", "preemptionPolicy")


def default_pod_template(template: object) -> None:
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        return
    spec = template["spec"]
    kept = {f: spec[f] for f in _ADMISSION_FIELDS if f in spec}
    had_status = "status" in template
    default_pod(template)
    for f in _ADMISSION_FIELDS:
        if f in kept:
            spec[f] = kept[f]
        else:
            spec.pop(f, None)
    if not had_status:
        template.pop("status", None)
