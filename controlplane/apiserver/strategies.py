"""Per-resource rules the generic registry consults (Kubernetes' "strategies").

What the server resets on create, what a write to the main resource may not
change (status) and what a status write may not change (everything else), and
how long a deletion is held back (pods' grace period), what a deletion may not touch
or leaves behind (protected and terminating namespaces), and what is allocated beside
the object in the same etcd transaction (a Service's ClusterIP and node ports). The
registry asks; it never branches on a resource's name.
"""
from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

from kubeling import errors
from kubeling.resources import Resource

from . import allocator

# What a strategy may ask of storage while allocating: the names of the allocation keys
# held under a prefix (Store.claimed).
Claimed = Callable[[str], Awaitable[set[str]]]

# Resources with a status subresource: writes to the main resource keep status.
WITH_STATUS = {"pods", "services", "nodes", "namespaces", "certificatesigningrequests"}
WITH_STATUS |= {"deployments", "replicasets", "replicationcontrollers"}
WITH_STATUS |= {"daemonsets", "statefulsets", "jobs", "cronjobs"}


class Strategy:
    # Kubernetes' AllowCreateOnUpdate: a PUT to a missing name creates it.
    allow_create_on_update = False

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

    def prepare_for_approval_update(self, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        return self.prepare_for_status_update(new, old)

    def prepare_for_finalize_update(self, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        raise errors.method_not_allowed("finalize is only served for namespaces")

    def grace_period(self, obj: dict[str, Any], requested: int | None) -> int:
        return 0

    # ---- allocations held in etcd beside the object (a Service's ClusterIP, node ports) ----

    def claims(self, obj: dict[str, Any]) -> set[str]:
        """The allocation keys a stored object holds: taken in the transaction that
        writes it, released in the one that removes it (or stops holding them)."""
        return set()

    def keep_allocated(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        """Before validating a spec write: carry forward what the client left out."""

    async def allocate(self, claimed: Claimed, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        """After validation of a create or spec write: fill in what is allocated."""

    def claim_taken(self, kind: str, name: str, claim: str, creating: bool) -> errors.ApiError:
        return errors.invalid(kind, name, [errors.invalid_value(
            "metadata.name", claim.rsplit("/", 1)[-1], "provided value is already allocated")])

    # ---- deletion ----

    def check_delete(self, name: str) -> None:
        """Refuse a deletion outright (raise), before anything is read."""

    def finalizable(self, obj: dict[str, Any]) -> bool:
        """Whether a deleted object with no finalizers left may go now."""
        return True

    def prepare_for_delete(self, obj: dict[str, Any]) -> None:
        """A deletion that is held back (grace period, finalizers) was just recorded on obj."""


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


PROTECTED_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}


class NamespaceStrategy(Strategy):
    """Kubernetes' namespace REST: protected names, spec.finalizers written only through
    /finalize and holding the deletion, phase Terminating while it is held."""

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        obj["status"] = {"phase": "Active"}

    def prepare_for_finalize_update(self, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        finalizers = (new.get("spec") or {}).get("finalizers") or []
        result = copy.deepcopy(old)
        result.setdefault("spec", {})["finalizers"] = finalizers
        return result

    def check_delete(self, name: str) -> None:
        if name in PROTECTED_NAMESPACES:
            raise errors.ApiError(403, "Forbidden",
                                  f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                                  {"name": name, "kind": "namespaces"})

    def finalizable(self, obj: dict[str, Any]) -> bool:
        return not (obj.get("spec") or {}).get("finalizers")

    def prepare_for_delete(self, obj: dict[str, Any]) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"


class ServiceStrategy(Strategy):
    """A Service's ClusterIP and node ports are etcd keys claimed with it (allocator.py)."""

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        obj["status"] = {"loadBalancer": {}}

    def claims(self, obj: dict[str, Any]) -> set[str]:
        return allocator.held_claims(obj)

    def keep_allocated(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        allocator.carry_forward(new, old)

    async def allocate(self, claimed: Claimed, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        used_ips = await claimed(allocator.IP_PREFIX)
        used_ports = await claimed(allocator.PORT_PREFIX)
        if old is not None:
            mine = allocator.held_claims(old)
            used_ips -= {c[len(allocator.IP_PREFIX):] for c in mine}
            used_ports -= {c[len(allocator.PORT_PREFIX):] for c in mine}
        allocator.assign(new, used_ips, used_ports, old)

    def claim_taken(self, kind: str, name: str, claim: str, creating: bool) -> errors.ApiError:
        return errors.invalid(kind, name, [errors.invalid_value(
            "spec.clusterIPs" if creating else "spec.ports", claim.rsplit("/", 1)[-1],
            "provided IP is already allocated" if creating else "provided value is already allocated")])


class CreateOnUpdateStrategy(Strategy):
    """Kinds Kubernetes lets a PUT create (kubelet's lease, the endpoints controllers)."""
    allow_create_on_update = True


APPROVAL_CONDITIONS = ("Approved", "Denied")


class CertificateSigningRequestStrategy(Strategy):
    """Kubernetes' CSR strategies: the requester is who created it (never what the
    body says), the spec never changes, /approval writes only the Approved/Denied
    conditions and /status everything else (the certificate, Failed)."""

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        from .authn import CURRENT_USER
        spec = obj.get("spec")
        if isinstance(spec, dict):
            for field in ("username", "uid", "groups", "extra"):
                spec.pop(field, None)
            user = CURRENT_USER.get()
            if user is not None:
                spec["username"] = user.name
                if user.uid:
                    spec["uid"] = user.uid
                spec["groups"] = list(user.groups)
        obj["status"] = {}

    def prepare_for_update(self, new: dict[str, Any], old: dict[str, Any], resource: Resource) -> None:
        super().prepare_for_update(new, old, resource)
        if "spec" in old:
            new["spec"] = copy.deepcopy(old["spec"])

    @staticmethod
    def _conditions(obj: dict[str, Any]) -> list[Any]:
        conds = (obj.get("status") or {}).get("conditions") if isinstance(obj.get("status"), dict) else None
        return conds if isinstance(conds, list) else []

    def prepare_for_status_update(self, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        result = super().prepare_for_status_update(new, old)
        kept = [c for c in self._conditions(old) if isinstance(c, dict) and c.get("type") in APPROVAL_CONDITIONS]
        mine = [c for c in self._conditions(new) if not (isinstance(c, dict) and c.get("type") in APPROVAL_CONDITIONS)]
        result["status"]["conditions"] = kept + mine
        if not result["status"]["conditions"]:
            del result["status"]["conditions"]
        return result

    def prepare_for_approval_update(self, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        result = copy.deepcopy(old)
        status = result.setdefault("status", {})
        others = [c for c in self._conditions(old) if not (isinstance(c, dict) and c.get("type") in APPROVAL_CONDITIONS)]
        approval = [c for c in self._conditions(new) if isinstance(c, dict) and c.get("type") in APPROVAL_CONDITIONS]
        # A condition type Kubernetes does not allow here is left for validation to refuse.
        strays = [c for c in self._conditions(new) if not (isinstance(c, dict) and c.get("type") in APPROVAL_CONDITIONS)
                  and c not in others]
        status["conditions"] = approval + others + strays
        if not status["conditions"]:
            del status["conditions"]
        return result


class WorkloadStrategy(Strategy):
    """Deployments, ReplicaSets, ReplicationControllers: status is the controller's."""

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        obj["status"] = {}


_STRATEGIES: dict[str, Strategy] = {
    "deployments": WorkloadStrategy(),
    "replicasets": WorkloadStrategy(),
    "replicationcontrollers": WorkloadStrategy(),
    "certificatesigningrequests": CertificateSigningRequestStrategy(),
    "pods": PodStrategy(),
    "namespaces": NamespaceStrategy(),
    "services": ServiceStrategy(),
    "endpoints": CreateOnUpdateStrategy(),
    "leases": CreateOnUpdateStrategy(),
    "events": CreateOnUpdateStrategy(),
}
_DEFAULT = Strategy()


def for_resource(resource: Resource) -> Strategy:
    if resource.plural == "secrets" and resource.group == "":
        from .secrets import SecretStrategy  # its own module: secrets.py imports Strategy from here
        _STRATEGIES.setdefault("secrets", SecretStrategy())
    return _STRATEGIES.get(resource.plural, _DEFAULT)


# ---- DaemonSet, StatefulSet, Job, CronJob -----------------------------

class ResetStatusStrategy(Strategy):
    """Workload kinds: a create starts with an empty status (the controller fills it)."""

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        obj["status"] = {}


JOB_NAME_LABEL, JOB_UID_LABEL = "batch.kubernetes.io/job-name", "batch.kubernetes.io/controller-uid"
LEGACY_JOB_NAME_LABEL, LEGACY_JOB_UID_LABEL = "job-name", "controller-uid"


class JobStrategy(ResetStatusStrategy):
    """Kubernetes' job strategy: unless spec.manualSelector, the server makes the selector
    from the job's own uid and puts the matching labels on the pod template."""

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        from . import objectmeta
        meta = obj.get("metadata")
        spec = obj.get("spec")
        if not isinstance(meta, dict) or not isinstance(spec, dict) or spec.get("manualSelector") is True:
            return
        uid = meta["uid"] = objectmeta.new_uid()
        template = spec.get("template")
        if not isinstance(template, dict):
            return
        tmeta = template.setdefault("metadata", {})
        if not isinstance(tmeta, dict):
            return
        labels = tmeta.get("labels") if isinstance(tmeta.get("labels"), dict) else {}
        name = meta.get("name") if isinstance(meta.get("name"), str) else ""
        labels.update({LEGACY_JOB_UID_LABEL: uid, LEGACY_JOB_NAME_LABEL: name,
                       JOB_UID_LABEL: uid, JOB_NAME_LABEL: name})
        tmeta["labels"] = labels
        if spec.get("selector") is None:
            spec["selector"] = {"matchLabels": {JOB_UID_LABEL: uid}}


_STRATEGIES.update({"daemonsets": ResetStatusStrategy(), "statefulsets": ResetStatusStrategy(),
                    "jobs": JobStrategy(), "cronjobs": ResetStatusStrategy()})
