"""The default RBAC policy, and its reconciliation at apiserver start.

Like kube-apiserver's `rbac/bootstrap-roles` post-start hook (plugin/pkg/auth/
authorizer/rbac/bootstrappolicy): ClusterRoles and ClusterRoleBindings every
cluster has. At start each missing one is created; an existing one is only
added to (rules, aggregation selectors, subjects it lacks), and only when its
`rbac.authorization.k8s.io/autoupdate` annotation is not "false", so an admin's
changes to a default role survive a restart.

kubeling runs each controller of the controller-manager under the one identity
system:kube-controller-manager (Kubernetes' --use-service-account-credentials
gives each its own role); its role is the union of those per-controller roles,
written with wildcards where they are (garbage collector, namespace controller).
The aggregated roles admin/edit/view are created with their rules already
aggregated, so they work before a controller-manager runs; the clusterrole-
aggregation controller keeps them current from then on.
"""
from __future__ import annotations

import copy
import logging
from typing import Any

from kubeling import errors
from kubeling.resources import BY_PLURAL
from kubeling.selectors import label_selector_from_dict

from .rbac_rules import RBAC_GROUP, Rule, uncovered

log = logging.getLogger("kubeling.apiserver.bootstrap_policy")

AUTOUPDATE = "rbac.authorization.k8s.io/autoupdate"
BOOTSTRAPPING = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AGG = "rbac.authorization.k8s.io/aggregate-to-"

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
EVENT_VERBS = ["create", "patch", "update"]


def rule(verbs: list[str], groups: list[str], resources: list[str], names: list[str] | None = None) -> Rule:
    r: Rule = {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}
    if names:
        r["resourceNames"] = list(names)
    return r


def url_rule(verbs: list[str], urls: list[str]) -> Rule:
    return {"verbs": list(verbs), "nonResourceURLs": list(urls)}


EVENTS = rule(EVENT_VERBS, ["", "events.k8s.io"], ["events"])

VIEW_RULES = [
    rule(READ, [""], ["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
                      "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                      "services/status"]),
    rule(READ, [""], ["bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
                      "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"]),
    rule(READ, [""], ["namespaces"]),
    rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    rule(READ, ["apps"], ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
                          "deployments/scale", "deployments/status", "replicasets", "replicasets/scale",
                          "replicasets/status", "statefulsets", "statefulsets/scale", "statefulsets/status"]),
    rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
    rule(READ, ["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
    rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    rule(READ, ["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
]

EDIT_RULES = [
    rule(["impersonate"], [""], ["serviceaccounts"]),
    rule(WRITE, [""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
    rule(["create"], [""], ["pods/eviction"]),
    rule(WRITE, [""], ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                       "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"]),
    rule(["create"], [""], ["serviceaccounts/token"]),
    rule(WRITE, ["apps"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets",
                           "replicasets/scale", "statefulsets", "statefulsets/scale"]),
    rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
    rule(WRITE, ["batch"], ["cronjobs", "jobs"]),
    rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
    rule(WRITE, ["networking.k8s.io"], ["ingresses", "networkpolicies"]),
    rule(READ, [""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"]),
]

ADMIN_RULES = [
    rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    rule(READ + WRITE, [RBAC_GROUP], ["rolebindings", "roles"]),
]

SCHEDULER_RULES = [
    EVENTS,
    # Kubernetes names the lease (kube-scheduler); kubeling's lease name is a flag.
    rule(["create", "get", "list", "watch", "update", "patch"], ["coordination.k8s.io"], ["leases"]),
    rule(["create", "get", "update"], [""], ["endpoints"]),
    rule(READ, [""], ["nodes", "namespaces"]),
    rule(["delete", "get", "list", "watch"], [""], ["pods"]),
    rule(["create"], [""], ["bindings", "pods/binding"]),
    rule(["get", "patch", "update"], [""], ["pods/status"]),
    rule(READ, [""], ["replicationcontrollers", "services"]),
    rule(READ, ["apps"], ["replicasets", "statefulsets"]),
    rule(READ, ["policy"], ["poddisruptionbudgets"]),
    rule(READ, [""], ["persistentvolumeclaims", "persistentvolumes"]),
    rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
    rule(READ, ["storage.k8s.io"], ["csidrivers", "csinodes", "csistoragecapacities", "storageclasses"]),
]

CONTROLLER_MANAGER_RULES = [
    # The garbage collector and the namespace controller read, patch and delete
    # everything; the other controllers' updates (objects and their /status,
    # /scale, /finalize) are within this too.
    rule(READ + ["patch", "update", "delete", "deletecollection"], ["*"], ["*"]),
    rule(["create"], [""], ["configmaps", "endpoints", "events", "pods", "pods/eviction", "secrets",
                            "serviceaccounts", "serviceaccounts/token"]),
    rule(["create"], ["apps"], ["controllerrevisions", "replicasets"]),
    rule(["create"], ["batch"], ["jobs"]),
    rule(["create"], ["discovery.k8s.io"], ["endpointslices"]),
    rule(["create"], ["coordination.k8s.io"], ["leases"]),
    EVENTS,
    rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
    # csrapproving and csrsigning.
    rule(["approve"], ["certificates.k8s.io"], ["signers"], ["kubernetes.io/kube-apiserver-client-kubelet"]),
    rule(["sign"], ["certificates.k8s.io"], ["signers"], ["kubernetes.io/kube-apiserver-client-kubelet",
                                                          "kubernetes.io/legacy-unknown"]),
    # clusterrole-aggregation: it writes rules it does not hold itself.
    rule(["escalate"], [RBAC_GROUP], ["clusterroles"]),
]

NODE_PROXIER_RULES = [
    rule(READ, [""], ["endpoints", "services"]),
    rule(READ, [""], ["nodes"]),
    EVENTS,
    rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
]

# The cluster DNS (clusterdns/): reads what it answers (as CoreDNS's system:coredns), and, being a
# host process rather than pods, publishes itself: the kube-dns Service and its own EndpointSlice.
KUBE_DNS_RULES = [
    rule(READ, [""], ["services", "pods", "namespaces"]),
    rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    rule(["create"], [""], ["services"]),
    rule(["create", "update", "delete"], ["discovery.k8s.io"], ["endpointslices"]),
]

DISCOVERY_URLS = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
                  "/readyz", "/version", "/version/"]
PUBLIC_INFO_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]
# What Kubernetes gives the system:monitoring group: health checks and metrics.
MONITORING_URLS = ["/healthz", "/healthz/*", "/livez", "/livez/*", "/readyz", "/readyz/*", "/metrics",
                   "/metrics/slis"]


def _cluster_role(name: str, rules: list[Rule], labels: dict[str, str] | None = None,
                  aggregate_from: str | None = None) -> dict[str, Any]:
    role: dict[str, Any] = {
        "apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {**BOOTSTRAPPING, **(labels or {})},
                     "annotations": {AUTOUPDATE: "true"}},
        "rules": rules,
    }
    if aggregate_from:
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {AGG + aggregate_from: "true"}}]}
    return role


def _binding(name: str, role: str, subjects: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": dict(BOOTSTRAPPING), "annotations": {AUTOUPDATE: "true"}},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": kind, "name": who} for kind, who in subjects],
    }


CLUSTER_ROLES: list[dict[str, Any]] = [
    _cluster_role("cluster-admin", [rule(["*"], ["*"], ["*"]), url_rule(["*"], ["*"])]),
    _cluster_role("system:discovery", [url_rule(["get"], DISCOVERY_URLS)]),
    _cluster_role("system:public-info-viewer", [url_rule(["get"], PUBLIC_INFO_URLS)]),
    _cluster_role("system:monitoring", [url_rule(["get"], MONITORING_URLS)]),
    _cluster_role("system:basic-user", [
        rule(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
        rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"])]),
    _cluster_role("admin", [], aggregate_from="admin"),
    _cluster_role("edit", [], {AGG + "admin": "true"}, aggregate_from="edit"),
    _cluster_role("view", [], {AGG + "edit": "true"}, aggregate_from="view"),
    _cluster_role("system:aggregate-to-admin", ADMIN_RULES, {AGG + "admin": "true"}),
    _cluster_role("system:aggregate-to-edit", EDIT_RULES, {AGG + "edit": "true"}),
    _cluster_role("system:aggregate-to-view", VIEW_RULES, {AGG + "view": "true"}),
    _cluster_role("system:kube-scheduler", SCHEDULER_RULES),
    _cluster_role("system:kube-controller-manager", CONTROLLER_MANAGER_RULES),
    _cluster_role("system:node-proxier", NODE_PROXIER_RULES),
    _cluster_role("system:kube-dns", KUBE_DNS_RULES),
    _cluster_role("system:node-bootstrapper", [
        rule(["create", "get", "list", "watch"], ["certificates.k8s.io"], ["certificatesigningrequests"])]),
    _cluster_role("system:certificates.k8s.io:certificatesigningrequests:nodeclient", [
        rule(["create"], ["certificates.k8s.io"], ["certificatesigningrequests/nodeclient"])]),
    _cluster_role("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", [
        rule(["create"], ["certificates.k8s.io"], ["certificatesigningrequests/selfnodeclient"])]),
]

CLUSTER_ROLE_BINDINGS: list[dict[str, Any]] = [
    _binding("cluster-admin", "cluster-admin", [("Group", "system:masters")]),
    _binding("system:discovery", "system:discovery", [("Group", "system:authenticated")]),
    _binding("system:basic-user", "system:basic-user", [("Group", "system:authenticated")]),
    _binding("system:public-info-viewer", "system:public-info-viewer",
             [("Group", "system:authenticated"), ("Group", "system:unauthenticated")]),
    _binding("system:monitoring", "system:monitoring", [("Group", "system:monitoring")]),
    _binding("system:kube-scheduler", "system:kube-scheduler", [("User", "system:kube-scheduler")]),
    _binding("system:kube-controller-manager", "system:kube-controller-manager",
             [("User", "system:kube-controller-manager")]),
    _binding("system:node-proxier", "system:node-proxier", [("User", "system:kube-proxy")]),
    _binding("system:kube-dns", "system:kube-dns", [("User", "system:kube-dns")]),
    # What kubeadm binds for joining nodes (kubeadm:kubelet-bootstrap and its auto-approve bindings).
    _binding("kubeling:kubelet-bootstrap", "system:node-bootstrapper", [("Group", "system:bootstrappers")]),
    _binding("kubeling:node-autoapprove-bootstrap",
             "system:certificates.k8s.io:certificatesigningrequests:nodeclient", [("Group", "system:bootstrappers")]),
    _binding("kubeling:node-autoapprove-certificate-rotation",
             "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", [("Group", "system:nodes")]),
]


def aggregate(roles: list[dict[str, Any]], target: dict[str, Any]) -> list[Rule] | None:
    """The rules of the roles `target`'s aggregationRule selects (by name, duplicates
    dropped), as the clusterrole-aggregation controller computes them; None when
    target has no aggregationRule."""
    agg = target.get("aggregationRule")
    if not isinstance(agg, dict):
        return None
    selectors = []
    for sel in agg.get("clusterRoleSelectors") or []:
        if not isinstance(sel, dict):
            continue
        try:
            selectors.append(label_selector_from_dict(sel))
        except ValueError:
            continue
    rules: list[Rule] = []
    name = (target.get("metadata") or {}).get("name")
    for role in sorted(roles, key=lambda r: (r.get("metadata") or {}).get("name") or ""):
        meta = role.get("metadata") or {}
        if meta.get("name") == name:
            continue
        labels = meta.get("labels") or {}
        if any(s.matches(labels) for s in selectors):
            for r in role.get("rules") or []:
                if r not in rules:
                    rules.append(copy.deepcopy(r))
    return rules


def default_cluster_roles() -> list[dict[str, Any]]:
    """The default ClusterRoles with the aggregated ones filled in (until nothing changes:
    view feeds edit feeds admin through their labels)."""
    roles = copy.deepcopy(CLUSTER_ROLES)
    for _ in range(len(roles)):
        changed = False
        for role in roles:
            rules = aggregate(roles, role)
            if rules is not None and rules != role["rules"]:
                role["rules"], changed = rules, True
        if not changed:
            break
    return roles


def _reconciled_role(existing: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any] | None:
    """The existing role plus what it lacks of the default one; None when nothing lacks."""
    new = copy.deepcopy(existing)
    meta = new.setdefault("metadata", {})
    changed = False
    for field in ("labels", "annotations"):
        have = meta.get(field) or {}
        for k, v in wanted["metadata"].get(field, {}).items():
            if k not in have:
                have[k], changed = v, True
        meta[field] = have
    if "aggregationRule" in wanted:
        agg = new.setdefault("aggregationRule", {})
        selectors = agg.setdefault("clusterRoleSelectors", [])
        for sel in wanted["aggregationRule"]["clusterRoleSelectors"]:
            if sel not in selectors:
                selectors.append(sel)
                changed = True
    else:
        missing = uncovered(new.get("rules") or [], wanted["rules"])
        if missing:
            rules = new.setdefault("rules", [])
            rules.extend(r for r in wanted["rules"] if uncovered(rules, [r]))
            changed = True
    return new if changed else None


def _reconciled_binding(existing: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any] | None:
    new = copy.deepcopy(existing)
    subjects = new.setdefault("subjects", []) or []
    new["subjects"] = subjects
    changed = False
    for s in wanted["subjects"]:
        if not any(x.get("kind") == s["kind"] and x.get("name") == s["name"] for x in subjects):
            subjects.append(s)
            changed = True
    return new if changed else None


async def ensure(registry: Any) -> None:
    """Create the missing defaults and add to the existing ones (see the module doc)."""
    plan = [(BY_PLURAL[(RBAC_GROUP, "clusterroles")], default_cluster_roles(), _reconciled_role),
            (BY_PLURAL[(RBAC_GROUP, "clusterrolebindings")], CLUSTER_ROLE_BINDINGS, _reconciled_binding)]
    for res, objects, reconcile in plan:
        for wanted in objects:
            name = wanted["metadata"]["name"]
            try:
                existing = await registry.find(res, None, name)
                if existing is None:
                    await registry.create(res, None, copy.deepcopy(wanted))
                    log.info("created %s %s", res.kind, name)
                    continue
                if (existing.get("metadata", {}).get("annotations") or {}).get(AUTOUPDATE) == "false":
                    continue
                new = reconcile(existing, wanted)
                if new is not None:
                    await registry.update(res, None, name, new)
                    log.info("reconciled %s %s", res.kind, name)
            except errors.ApiError as exc:
                # Another apiserver got there first, or an admin changed it meanwhile: next start.
                if exc.reason not in ("AlreadyExists", "Conflict"):
                    raise
