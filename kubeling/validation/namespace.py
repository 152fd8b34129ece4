"""Namespace validation (ValidateNamespace / ValidateNamespaceUpdate)."""
from __future__ import annotations

from kubeling.errors import FieldError, not_supported
from kubeling.validation import formats
from kubeling.validation.fields import Checker, index
from kubeling.validation.meta import validate_object_meta, validate_object_meta_update

PHASES = ["Active", "Terminating"]


def validate_namespace(obj: dict, old: dict | None) -> list[FieldError]:
    c = Checker()
    validate_object_meta(c, obj, False, formats.dns1123_label)
    spec = c.obj(obj, "spec", "spec") or {}
    for i, f in enumerate(c.str_list(spec, "finalizers", "spec.finalizers")):
        # "kubernetes" is the one unqualified finalizer Kubernetes allows here.
        if "/" not in f and f != "kubernetes":
            c.messages(index("spec.finalizers", i), f,
                       ["name is neither a standard finalizer name nor is it fully qualified"])
        else:
            c.messages(index("spec.finalizers", i), f, formats.qualified_name(f))
    status = c.obj(obj, "status", "status") or {}
    phase = c.str(status, "phase", "status.phase")
    if phase and phase not in PHASES:
        c.add(not_supported("status.phase", phase, PHASES))
    c.list(status, "conditions", "status.conditions")
    if isinstance(old, dict):
        validate_object_meta_update(c, obj, old)
    return c.errors
