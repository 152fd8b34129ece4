"""Per-resource rules the generic registry consults (Kubernetes' "strategies").

What the server resets on create, what a write to the main resource may not
change (status) and what a status write may not change (everything else), and
how long a deletion is held back (pods' grace period).
"""
from __future__ import annotations

import copy
from typing import Any

from kubeling.resources import Resource

# Resources with a status subresource: writes to the main resource keep status.
WITH_STATUS = {"pods", "services", "nodes", "namespaces"}


class Strategy:
    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        pass

    def prepare_for_update(self, new: dict[str, Any], old: dict[str, Any], resource: Resource) -> None:
        if resource.plural in WITH_STATUS:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)

    def prepare_for_status_update(self, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        """A status write keeps everything but status from the stored object."""
        result = copy.deepcopy(old)
        result["status"] = copy.deepcopy(new.get("status") or {})
        return result

    def grace_period(self, obj: dict[str, Any], requested: int | None) -> int:
        return 0


class PodStrategy(Strategy):
    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        # A client cannot create a pod with a status of its choosing.
        obj["status"] = {}

    def grace_period(self, obj: dict[str, Any], requested: int | None) -> int:
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(0, requested)
        grace = spec.get("terminationGracePeriodSeconds")
        return grace if isinstance(grace, int) and grace >= 0 else 30


class NamespaceStrategy(Strategy):
    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        obj["status"] = {"phase": "Active"}


class ServiceStrategy(Strategy):
    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        obj["status"] = {"loadBalancer": {}}


_STRATEGIES: dict[str, Strategy] = {
    "pods": PodStrategy(),
    "namespaces": NamespaceStrategy(),
    "services": ServiceStrategy(),
}
_DEFAULT = Strategy()


def for_resource(resource: Resource) -> Strategy:
    return _STRATEGIES.get(resource.plural, _DEFAULT)
