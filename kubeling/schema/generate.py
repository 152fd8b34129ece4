"""Regenerate definitions.json, the OpenAPI v3 schemas of every kind kubeling serves.

Run `python -m kubeling.schema.generate` with the official `kubernetes` Python package
installed (a test dependency, never needed at run time). Its generated models carry
each field's JSON name, type, description and whether it is required; the patch
extensions (merge keys, strategies, list types) come from kubeling's own patch
tables so that what kubectl computes and what the server applies agree.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

from kubeling.patch.merge_keys import KIND_SCHEMAS, FieldMeta
from kubeling.resources import RESOURCES

OUT = Path(__file__).with_name("definitions.json")

META_PKG = "io.k8s.apimachinery.pkg.apis.meta.v1"
META_TYPES = {"ObjectMeta", "ListMeta", "OwnerReference", "ManagedFieldsEntry", "LabelSelector",
              "LabelSelectorRequirement", "Status", "StatusDetails", "StatusCause", "DeleteOptions",
              "Preconditions", "Condition", "WatchEvent"}
GROUP_PKG = {"coordination.k8s.io": "io.k8s.api.coordination.v1", "discovery.k8s.io": "io.k8s.api.discovery.v1",
             "certificates.k8s.io": "io.k8s.api.certificates.v1"}
# Types that belong to a non-core group although their Python class has a plain V1 prefix.
GROUP_TYPES = {
    "io.k8s.api.coordination.v1": {"Lease", "LeaseSpec", "LeaseList"},
    "io.k8s.api.discovery.v1": {"EndpointSlice", "EndpointSliceList", "Endpoint", "EndpointConditions",
                                "EndpointHints", "ForZone", "ForNode", "EndpointPort"},
    "io.k8s.api.certificates.v1": {"CertificateSigningRequest", "CertificateSigningRequestList",
                                   "CertificateSigningRequestSpec", "CertificateSigningRequestStatus",
                                   "CertificateSigningRequestCondition"},
    "io.k8s.api.apps.v1": {"Deployment", "DeploymentList", "DeploymentSpec", "DeploymentStatus",
                           "DeploymentStrategy", "RollingUpdateDeployment", "DeploymentCondition",
                           "ReplicaSet", "ReplicaSetList", "ReplicaSetSpec", "ReplicaSetStatus",
                           "ReplicaSetCondition"},
    "io.k8s.api.autoscaling.v1": {"Scale", "ScaleSpec", "ScaleStatus"},
}
# apps/v1 DaemonSet and StatefulSet, batch/v1 Job and CronJob.
GROUP_PKG.update({"apps": "io.k8s.api.apps.v1", "batch": "io.k8s.api.batch.v1"})
GROUP_TYPES.setdefault("io.k8s.api.apps.v1", set()).update({
    "DaemonSet", "DaemonSetList", "DaemonSetSpec", "DaemonSetStatus", "DaemonSetCondition",
    "DaemonSetUpdateStrategy", "RollingUpdateDaemonSet", "StatefulSet", "StatefulSetList", "StatefulSetSpec",
    "StatefulSetStatus", "StatefulSetCondition", "StatefulSetUpdateStrategy", "RollingUpdateStatefulSetStrategy",
    "StatefulSetPersistentVolumeClaimRetentionPolicy", "StatefulSetOrdinals"})
GROUP_TYPES.setdefault("io.k8s.api.batch.v1", set()).update({
    "Job", "JobList", "JobSpec", "JobStatus", "JobCondition", "JobTemplateSpec", "CronJob", "CronJobList",
    "CronJobSpec", "CronJobStatus", "PodFailurePolicy", "PodFailurePolicyRule",
    "PodFailurePolicyOnExitCodesRequirement", "PodFailurePolicyOnPodConditionsPattern", "SuccessPolicy",
    "SuccessPolicyRule", "UncountedTerminatedPods"})
# issue 11, rbac: rbac.authorization.k8s.io/v1 and the authorization.k8s.io/v1 reviews.
GROUP_PKG.update({"rbac.authorization.k8s.io": "io.k8s.api.rbac.v1",
                  "authorization.k8s.io": "io.k8s.api.authorization.v1"})
GROUP_TYPES["io.k8s.api.rbac.v1"] = {
    "Role", "RoleList", "ClusterRole", "ClusterRoleList", "RoleBinding", "RoleBindingList", "ClusterRoleBinding",
    "ClusterRoleBindingList", "PolicyRule", "AggregationRule", "RoleRef", "Subject"}
GROUP_TYPES["io.k8s.api.authorization.v1"] = {
    "SelfSubjectAccessReview", "SelfSubjectAccessReviewSpec", "SubjectAccessReview", "SubjectAccessReviewSpec",
    "SubjectAccessReviewStatus", "ResourceAttributes", "NonResourceAttributes", "SelfSubjectRulesReview",
    "SelfSubjectRulesReviewSpec", "SubjectRulesReviewStatus", "ResourceRule", "NonResourceRule",
    "FieldSelectorAttributes", "LabelSelectorAttributes"}
META_TYPES.add("FieldSelectorRequirement")
GROUP_PKG["authentication.k8s.io"] = "io.k8s.api.authentication.v1"
GROUP_TYPES["io.k8s.api.authentication.v1"] = {"SelfSubjectReview", "SelfSubjectReviewStatus", "UserInfo"}
# Python class of each served kind (the generator names core Event CoreV1Event).
KIND_CLASS = {"Event": "CoreV1Event"}
EXTRA_ROOTS = ("V1Binding", "V1Status", "V1DeleteOptions", "V1WatchEvent", "V1APIResourceList", "V1Scale")
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
FIELDS_V1 = "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1"
CLASS_RE = re.compile(r"(?:CoreV1|DiscoveryV1|RbacV1|V1)[A-Za-z0-9]+")  # RbacV1Subject


def definition_name(cls: str) -> str:
    discovery = cls.startswith("DiscoveryV1")
    short = re.sub(r"^(CoreV1|DiscoveryV1|RbacV1|V1)", "", cls)
    if short in META_TYPES:
        return f"{META_PKG}.{short}"
    if discovery:
        return f"io.k8s.api.discovery.v1.{short}"
    for pkg, names in GROUP_TYPES.items():
        if short in names and not cls.startswith("CoreV1") and pkg != "io.k8s.api.discovery.v1":
            return f"{pkg}.{short}"
    if short in GROUP_TYPES["io.k8s.api.discovery.v1"] - {"EndpointPort"}:
        return f"io.k8s.api.discovery.v1.{short}"
    return f"io.k8s.api.core.v1.{short}"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


class Generator:
    def __init__(self) -> None:
        import kubernetes.client.models as models
        self.models = models
        self.defs: dict[str, dict[str, Any]] = {}
        self.classes: dict[str, str] = {}  # definition name -> python class

    def type_schema(self, owner: str, attr: str, t: str) -> dict[str, Any]:
        if t.startswith("List[") or t.startswith("list["):
            return {"type": "array", "items": self.type_schema(owner, attr, t[5:-1])}
        if t.startswith("Dict[str, ") or t.startswith("dict(str, "):
            return {"type": "object", "additionalProperties": self.type_schema(owner, attr, t[10:-1])}
        if t == "str":
            return {"type": "string"}
        if t == "bytes":
            return {"type": "string", "format": "byte"}
        if t == "int":
            return {"type": "integer", "format": "int64"}
        if t == "float":
            return {"type": "number", "format": "double"}
        if t == "bool":
            return {"type": "boolean"}
        if t == "datetime":
            return {"type": "string", "format": "date-time"}
        if t == "object":
            if attr == "fields_v1":
                return {"allOf": [_ref(FIELDS_V1)]}
            return {"allOf": [_ref(INT_OR_STRING)]}
        if CLASS_RE.fullmatch(t):
            return {"allOf": [_ref(self.add(t))]}
        raise ValueError(f"{owner}.{attr}: unsupported type {t!r}")

    def add(self, cls: str) -> str:
        name = definition_name(cls)
        if name in self.defs:
            return name
        model = getattr(self.models, cls)
        doc: dict[str, Any] = {"type": "object", "description": _class_description(model)}
        self.defs[name] = doc
        self.classes[name] = cls
        props: dict[str, Any] = {}
        required = []
        fields = getattr(model, "model_fields", {})
        for attr, t in model.openapi_types.items():
            json_name = model.attribute_map[attr]
            schema = self.type_schema(cls, attr, t)
            info = fields.get(attr)
            if info is not None and info.description:
                schema["description"] = info.description
            if info is not None and info.is_required():
                required.append(json_name)
            props[json_name] = schema
        doc["properties"] = props
        if required:
            doc["required"] = required
        return name

    def annotate(self, name: str, meta: Mapping[str, FieldMeta]) -> None:
        """Copy kubeling's patch metadata onto the properties it describes."""
        doc = self.defs[name]
        for field, fm in meta.items():
            prop = doc["properties"].get(field)
            if prop is None:
                continue
            strategies = [s for s in (fm.strategy if fm.merge_key or prop.get("type") == "array" else "",
                                      "retainKeys" if fm.retain_keys else "") if s]
            if fm.merge_key:
                prop["x-kubernetes-patch-merge-key"] = fm.merge_key
            if strategies:
                prop["x-kubernetes-patch-strategy"] = ",".join(strategies)
            if prop.get("type") == "array":
                prop["x-kubernetes-list-type"] = fm.list_type
                if fm.list_keys:
                    prop["x-kubernetes-list-map-keys"] = list(fm.list_keys)
            target = prop.get("items", prop) if prop.get("type") == "array" else prop
            ref = (target.get("allOf") or [{}])[0].get("$ref")
            if ref and fm.schema:
                self.annotate(ref.rsplit("/", 1)[-1], fm.schema)

    def run(self) -> dict[str, Any]:
        self.defs[INT_OR_STRING] = {"type": "string", "format": "int-or-string",
                                    "x-kubernetes-int-or-string": True,
                                    "description": "An integer or a string."}
        self.defs[FIELDS_V1] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                                "description": "FieldsV1 stores a set of fields in a data structure "
                                               "like a Trie, in JSON format."}
        kinds: dict[str, dict[str, str]] = {}
        for res in RESOURCES:
            cls = KIND_CLASS.get(res.kind, "V1" + res.kind)
            name = self.add(cls)
            # Reviews are only created: they have no list kind.
            list_name = self.add(cls + "List") if "list" in res.verbs else None
            for n, kind in ((name, res.kind), (list_name, res.kind + "List")):
                if n is None:
                    continue
                self.defs[n]["x-kubernetes-group-version-kind"] = [
                    {"group": res.group, "version": res.version, "kind": kind}]
            self.annotate(name, KIND_SCHEMAS.get(res.kind, {}))
            kinds[res.kind] = {"apiVersion": res.api_version, "definition": name, "list": list_name}
        for cls in EXTRA_ROOTS:
            self.add(cls)
        meta_gvk = [{"group": "", "version": "v1", "kind": k} for k in ("Status", "DeleteOptions", "WatchEvent")]
        for gvk in meta_gvk:
            self.defs[f"{META_PKG}.{gvk['kind']}"]["x-kubernetes-group-version-kind"] = [gvk]
        self.defs[self.add("V1Binding")]["x-kubernetes-group-version-kind"] = [
            {"group": "", "version": "v1", "kind": "Binding"}]
        self.defs[self.add("V1Scale")]["x-kubernetes-group-version-kind"] = [
            {"group": "autoscaling", "version": "v1", "kind": "Scale"}]
        return {"kinds": kinds, "definitions": dict(sorted(self.defs.items()))}


def _class_description(model: Any) -> str:
    text = (model.__doc__ or "").strip()
    return text.split("\n\n")[0].split("Attributes:")[0].strip() if text else ""


def main() -> None:
    import kubernetes
    doc = Generator().run()
    doc["source"] = f"kubernetes python client {kubernetes.__version__}"
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    print(f"wrote {OUT}: {len(doc['definitions'])} definitions")


if __name__ == "__main__":
    main()
