"""Defaulting of API objects as Kubernetes defaults them, in place.

`apply_defaults(resource, obj)` never raises: what it cannot default (a mistyped
field) it leaves for validation to report.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from kubeling.defaulting.apps import (default_deployment, default_replicaset,
                                      default_replicationcontroller)
from kubeling.defaulting.others import (default_endpoints, default_endpointslice,
                                        default_namespace, default_node)
from kubeling.defaulting.pod import default_pod, image_pull_policy
from kubeling.defaulting.qos import pod_qos_class
from kubeling.defaulting.service import default_service
from kubeling.resources import Resource

__all__ = ["apply_defaults", "pod_qos_class", "image_pull_policy"]

log = logging.getLogger(__name__)

DEFAULTERS: dict[tuple[str, str], Callable[[dict], None]] = {
    ("", "pods"): default_pod,
    ("", "services"): default_service,
    ("", "namespaces"): default_namespace,
    ("", "nodes"): default_node,
    ("", "endpoints"): default_endpoints,
    ("discovery.k8s.io", "endpointslices"): default_endpointslice,
    ("apps", "deployments"): default_deployment,
    ("apps", "replicasets"): default_replicaset,
    ("", "replicationcontrollers"): default_replicationcontroller,
}

# DaemonSet, StatefulSet, Job, CronJob
from kubeling.defaulting.sets_and_jobs import (default_cronjob, default_daemonset, default_job,  # noqa: E402
                                               default_statefulset)
DEFAULTERS.update({("apps", "daemonsets"): default_daemonset, ("apps", "statefulsets"): default_statefulset,
                   ("batch", "jobs"): default_job, ("batch", "cronjobs"): default_cronjob})

# issue 11, rbac
from kubeling.defaulting.rbac import default_binding  # noqa: E402
DEFAULTERS.update({("rbac.authorization.k8s.io", "rolebindings"): default_binding,
                   ("rbac.authorization.k8s.io", "clusterrolebindings"): default_binding})



def _apply_defaults(resource: Resource, obj: Any) -> None:
    if not isinstance(obj, dict):
        return
    fn = DEFAULTERS.get((resource.group, resource.plural))
    if fn is not None:
        fn(obj)


def apply_defaults(resource: Resource, obj: dict) -> None:
    """Fill in Kubernetes' defaults for `obj` in place."""
    try:
        _apply_defaults(resource, obj)
    except Exception:  # a bug here must not crash the apiserver; validation still runs
        log.exception("defaulting of %s failed", resource.plural)
