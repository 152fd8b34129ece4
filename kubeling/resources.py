"""The table of resources kubeling serves: the one place that says what exists.

The apiserver routes, discovery, the etcd key layout, the CLI's kind names and
the printers all read this table.
"""
from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    singular: str = field(default="")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    def key_prefix(self, namespace: str | None = None) -> str:
        """etcd prefix for a list; with a namespace, that namespace's objects only."""
        base = f"/registry/{self.storage_name}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"/registry/{self.storage_name}/{namespace}/{name}"
        return f"/registry/{self.storage_name}/{name}"

    @property
    def storage_name(self) -> str:
        # Kubernetes stores leases and endpointslices under their plural too;
        # a group prefix is not used for these built-in resources.
        return self.plural


RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "Namespace", False, ("ns",), ("status",)),
    Resource("", "v1", "pods", "Pod", True, ("po",),
             ("status", "binding", "log", "exec", "attach", "portforward"), ("all",)),
    Resource("", "v1", "services", "Service", True, ("svc",), ("status",), ("all",)),
    Resource("", "v1", "endpoints", "Endpoints", True, ("ep",), singular="endpoints"),
    Resource("", "v1", "nodes", "Node", False, ("no",), ("status",)),
    Resource("", "v1", "events", "Event", True, ("ev",)),
    Resource("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    Resource("", "v1", "replicationcontrollers", "ReplicationController", True, ("rc",),
             ("status", "scale"), ("all",)),
    Resource("", "v1", "secrets", "Secret", True),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), ("token",)),
    Resource("coordination.k8s.io", "v1", "leases", "Lease", True),
    Resource("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("status", "scale"), ("all",)),
    Resource("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("status", "scale"), ("all",)),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    Resource("certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", False,
             ("csr",), ("status", "approval")),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    # Reviews are asked, never stored (controlplane/apiserver/access_review.py answers them).
    Resource("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False,
             verbs=("create",)),
    Resource("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False,
             verbs=("create",)),
    Resource("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False,
             verbs=("create",)),
    Resource("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False,
             verbs=("create",)),  # kubectl auth whoami
    # DaemonSet, StatefulSet, Job, CronJob (their controllers: controlplane/controllers)
    Resource("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ("status",), ("all",)),
    Resource("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ("status", "scale"), ("all",)),
    Resource("batch", "v1", "jobs", "Job", True, (), ("status",), ("all",)),
    Resource("batch", "v1", "cronjobs", "CronJob", True, ("cj",), ("status",), ("all",)),
)

BY_PLURAL: dict[tuple[str, str], Resource] = {(r.group, r.plural): r for r in RESOURCES}
BY_KIND: dict[tuple[str, str], Resource] = {(r.api_version, r.kind): r for r in RESOURCES}

# Group -> version; the order is the order discovery lists them in.
GROUPS: dict[str, str] = {}
for _r in RESOURCES:
    GROUPS.setdefault(_r.group, _r.version)


def for_kind(api_version: str, kind: str) -> Resource | None:
    return BY_KIND.get((api_version, kind))


def lookup(word: str) -> Resource | None:
    """Find a resource by what a user types: plural, singular, kind or short name,
    optionally qualified with its group (`leases.coordination.k8s.io`)."""
    word = word.strip()
    lowered = word.lower()
    name, _, group = lowered.partition(".")
    for r in RESOURCES:
        if group and r.group != group:
            continue
        if name in (r.plural, r.singular_name, r.kind.lower()) or name in r.short_names:
            return r
    return None
