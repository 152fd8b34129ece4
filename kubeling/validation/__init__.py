"""Validation of API objects as Kubernetes validates them.

`validate(resource, obj, old)` checks a create (old is None) or an update and returns
field errors; it never raises, whatever JSON it is given.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from kubeling.errors import FieldError, type_invalid
from kubeling.resources import Resource
from kubeling.validation.apps import (validate_deployment, validate_replicaset,
                                      validate_replicationcontroller)
from kubeling.validation.configmap import validate_configmap
from kubeling.validation.csr import validate_csr
from kubeling.validation.endpoints import validate_endpoints
from kubeling.validation.endpointslice import validate_endpointslice
from kubeling.validation.event import validate_event
from kubeling.validation.lease import validate_lease
from kubeling.validation.namespace import validate_namespace
from kubeling.validation.node import validate_node
from kubeling.validation.pod import validate_pod
from kubeling.validation.secrets import validate_secret, validate_service_account
from kubeling.validation.service import validate_service

__all__ = ["validate", "FieldError"]

log = logging.getLogger(__name__)

Validator = Callable[[dict, "dict | None"], list[FieldError]]

VALIDATORS: dict[tuple[str, str], Validator] = {
    ("", "pods"): validate_pod,
    ("", "services"): validate_service,
    ("", "nodes"): validate_node,
    ("", "namespaces"): validate_namespace,
    ("", "configmaps"): validate_configmap,
    ("", "secrets"): validate_secret,
    ("", "serviceaccounts"): validate_service_account,
    ("", "events"): validate_event,
    ("", "endpoints"): validate_endpoints,
    ("coordination.k8s.io", "leases"): validate_lease,
    ("discovery.k8s.io", "endpointslices"): validate_endpointslice,
    ("certificates.k8s.io", "certificatesigningrequests"): validate_csr,
    ("apps", "deployments"): validate_deployment,
    ("apps", "replicasets"): validate_replicaset,
    ("", "replicationcontrollers"): validate_replicationcontroller,
}

# DaemonSet, StatefulSet, Job, CronJob
from kubeling.validation.sets_and_jobs import (validate_cronjob, validate_daemonset, validate_job,  # noqa: E402
                                               validate_statefulset)
VALIDATORS.update({("apps", "daemonsets"): validate_daemonset, ("apps", "statefulsets"): validate_statefulset,
                   ("batch", "jobs"): validate_job, ("batch", "cronjobs"): validate_cronjob})
# issue 11, rbac
from kubeling.validation.rbac import (validate_cluster_role, validate_cluster_role_binding,  # noqa: E402
                                      validate_role, validate_role_binding)
VALIDATORS.update({("rbac.authorization.k8s.io", "roles"): validate_role,
                   ("rbac.authorization.k8s.io", "clusterroles"): validate_cluster_role,
                   ("rbac.authorization.k8s.io", "rolebindings"): validate_role_binding,
                   ("rbac.authorization.k8s.io", "clusterrolebindings"): validate_cluster_role_binding})


INTERNAL_REASON = "InternalError"


def _validate(resource: Resource, obj: Any, old: Any = None) -> list[FieldError]:
    if not isinstance(obj, dict):
        return [type_invalid("", obj, "must be of type object")]
    check = VALIDATORS.get((resource.group, resource.plural))
    if check is None:
        return []
    return check(obj, old if isinstance(old, dict) else None)


def validate(resource: Resource, obj: dict, old: dict | None = None) -> list[FieldError]:
    """Field errors for a create (old is None) or an update of `obj`; [] when valid."""
    try:
        return _validate(resource, obj, old)
    except Exception as exc:  # a bug here must give a 4xx, never crash the apiserver
        log.exception("validation of %s failed", resource.plural)
        return [FieldError("", INTERNAL_REASON, f"Internal error: validation failed: {exc!r}")]
