"""RBAC defaults (rbac/v1 SetDefaults_*): the API group of a roleRef and of subjects."""
from __future__ import annotations

from typing import Any

GROUP = "rbac.authorization.k8s.io"


def default_binding(obj: dict[str, Any]) -> None:
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = GROUP
    subjects = obj.get("subjects")
    for s in subjects if isinstance(subjects, list) else ():
        if isinstance(s, dict) and not s.get("apiGroup"):
            if s.get("kind") in ("User", "Group"):
                s["apiGroup"] = GROUP
            elif s.get("kind") == "ServiceAccount":
                s.pop("apiGroup", None)
