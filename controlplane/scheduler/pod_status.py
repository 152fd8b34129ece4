"""The PodScheduled=False (Unschedulable) condition on pods no node fits."""
from __future__ import annotations

from typing import Any

from .events import now_rfc3339

UNSCHEDULABLE_REASON = "Unschedulable"


def unschedulable_patch(pod: dict[str, Any], message: str) -> dict[str, Any] | None:
    """The strategic merge patch for pods/NAME/status, or None when the pod
    already carries exactly this condition (no write, no watch event)."""
    current = None
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled":
            current = c
    if current and current.get("status") == "False" and current.get("reason") == UNSCHEDULABLE_REASON \
            and current.get("message") == message:
        return None
    # The transition time moves only when the status itself changes.
    transition = current.get("lastTransitionTime") if current and current.get("status") == "False" else None
    cond = {"type": "PodScheduled", "status": "False", "reason": UNSCHEDULABLE_REASON, "message": message,
            "lastProbeTime": None, "lastTransitionTime": transition or now_rfc3339()}
    return {"status": {"conditions": [cond]}}
