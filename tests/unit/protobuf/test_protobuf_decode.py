"""kubeling.protobuf.decode: client-go's protobuf bodies -> the JSON the same client sends."""
from __future__ import annotations

import base64
import importlib
import pkgutil

import kubernetes.client
import pytest

from kubeling.protobuf import decode as pb
from kubeling.protobuf import gen
from kubeling.protobuf.gen import (api_apps_v1_pb2, api_core_v1_pb2, apimachinery_pkg_apis_meta_v1_pb2,
                                   apimachinery_pkg_runtime_pb2)

from .helpers_protobuf import encode_body

META = {"name": "x", "namespace": "ns", "labels": {"app": "x"}, "annotations": {"a": "b"}}

# The objects kubectl's generators build (create namespace/configmap/secret/service/deployment/
# job/cronjob, run, expose), written as the JSON kubectl would send for them.
OBJECTS = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}, "spec": {}, "status": {}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": META, "data": {"k": "v", "empty": ""},
     "binaryData": {"bin": base64.b64encode(b"\x00\x01\xff").decode()}, "immutable": False},
    {"apiVersion": "v1", "kind": "Secret", "metadata": META, "type": "Opaque",
     "data": {"password": base64.b64encode(b"s3cr3t\n").decode(), "empty": ""}},
    {"apiVersion": "v1", "kind": "Service", "metadata": META, "spec": {
        "type": "ClusterIP", "selector": {"app": "x"},
        "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                  {"name": "named", "protocol": "TCP", "port": 81, "targetPort": "web"}]}, "status": {}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {**META, "creationTimestamp": "2024-01-02T03:04:05Z"},
     "spec": {"containers": [{
         "name": "main", "image": "busybox", "args": ["sleep", "3600"], "resources": {
             "limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "100m"}},
         "env": [{"name": "A", "value": "1"},
                 {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": False}}}],
         "envFrom": [{"configMapRef": {"name": "c"}, "prefix": "C_"}],
         "ports": [{"containerPort": 80, "protocol": "TCP"}],
         "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 5},
         "livenessProbe": {"tcpSocket": {"port": "http"}},
         "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": False},
         "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True}]}],
         "volumes": [{"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}},
                     {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
         "restartPolicy": "Never", "dnsPolicy": "ClusterFirst", "terminationGracePeriodSeconds": 0,
         "enableServiceLinks": False, "tolerations": [{"key": "k", "operator": "Exists",
                                                       "tolerationSeconds": 0}]},
     "status": {}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": META, "spec": {
        "replicas": 0, "selector": {"matchLabels": {"app": "x"}},
        "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [
            {"name": "nginx", "image": "nginx", "resources": {}}]}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}}},
     "status": {}},
    {"apiVersion": "batch/v1", "kind": "Job", "metadata": META, "spec": {
        "backoffLimit": 0, "template": {"metadata": {}, "spec": {"containers": [
            {"name": "job", "image": "busybox", "command": ["date"], "resources": {}}],
            "restartPolicy": "Never"}}}, "status": {}},
    {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": META, "spec": {
        "schedule": "*/1 * * * *", "suspend": False, "jobTemplate": {"metadata": {"name": "x"}, "spec": {
            "template": {"metadata": {}, "spec": {"containers": [{"name": "c", "image": "busybox",
                                                                    "resources": {}}],
                                                   "restartPolicy": "OnFailure"}}}}}, "status": {}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": META,
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
     "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]},
    {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": META, "spec": {
        "holderIdentity": "node-1", "leaseDurationSeconds": 40,
        "renewTime": "2024-01-02T03:04:05.123456Z"}},
    {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
     "spec": {"resourceAttributes": {"namespace": "ns", "verb": "create", "resource": "pods"}},
     "status": {"allowed": True, "reason": "RBAC"}},
    {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "metadata": {},
     "spec": {"user": "bob", "groups": ["g"], "extra": {"scopes": ["a", "b"]},
              "nonResourceAttributes": {"path": "/healthz", "verb": "get"}}, "status": {}},
    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": {},
     "spec": {"audiences": ["api"], "expirationSeconds": 3600}, "status": {}},
    {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p", "namespace": "ns"},
     "deleteOptions": {"gracePeriodSeconds": 0}},
    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": {"name": "t"},
     "spec": {"audiences": ["a"], "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p",
                                                      "uid": "1234"}}, "status": {}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": META, "spec": {
        "ingressClassName": "", "rules": [{"host": "a.example", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]},
     "status": {}},
    {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Foreground", "gracePeriodSeconds": 0},
    {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": META,
     "data": {"spec": {"template": {"$patch": "replace"}}}, "revision": 3},
    {"apiVersion": "v1", "kind": "Event", "metadata": META, "involvedObject": {"kind": "Pod", "name": "p"},
     "reason": "Started", "message": "m", "count": 2, "type": "Normal",
     "firstTimestamp": "2024-01-02T03:04:05Z", "eventTime": "2024-01-02T03:04:05.000001Z",
     "source": {"component": "kubelet"}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "m", "managedFields": [
        {"manager": "kubectl", "operation": "Update", "apiVersion": "v1", "time": "2024-01-02T03:04:05Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}]},
     "spec": {"containers": [{"name": "c", "image": "i", "resources": {}}]}},
]


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: o["kind"])
def test_decoded_body_is_the_json_form(obj):
    assert pb.decode_body(encode_body(obj)) == obj


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: o["kind"])
def test_go_style_zero_scalars_on_the_wire_are_left_out(obj):
    """gogo writes every value field, zero or not; only pointers keep their zeros."""
    decoded = pb.decode_body(encode_body(obj, go_zeros=True))
    assert decoded == obj


def test_zero_value_fields_vanish_but_pointer_zeros_stay():
    body = encode_body({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                        "spec": {"replicas": 0, "minReadySeconds": 0, "paused": False,
                                 "template": {"spec": {"containers": [{"name": "c", "image": "i",
                                                                       "imagePullPolicy": ""}]}}}})
    spec = pb.decode_body(body)["spec"]
    assert spec["replicas"] == 0
    assert "minReadySeconds" not in spec and "paused" not in spec
    assert spec["template"]["spec"]["containers"] == [{"name": "c", "image": "i"}]


def test_special_types():
    pod = api_core_v1_pb2.Pod()
    pod.metadata.name = "p"
    pod.metadata.creationTimestamp.SetInParent()  # zero time: Go writes an empty message
    pod.metadata.deletionTimestamp.seconds = 1704164645
    port = pod.spec.containers.add().ports.add()
    port.containerPort = 80
    probe = pod.spec.containers[0].readinessProbe
    probe.handler.httpGet.port.type = 1
    probe.handler.httpGet.port.strVal = "http"
    pod.spec.containers[0].resources.limits["memory"].string = "1Gi"
    decoded = _roundtrip("v1", "Pod", pod)
    assert decoded["metadata"] == {"name": "p", "deletionTimestamp": "2024-01-02T03:04:05Z"}
    container = decoded["spec"]["containers"][0]
    assert container["ports"] == [{"containerPort": 80}]
    assert container["readinessProbe"] == {"httpGet": {"port": "http"}}
    assert container["resources"] == {"limits": {"memory": "1Gi"}}


def test_secret_bytes_are_base64_like_json():
    secret = api_core_v1_pb2.Secret()
    secret.metadata.name = "s"
    secret.data["k"] = b"\x00binary\xff"
    secret.stringData["plain"] = "text"
    decoded = _roundtrip("v1", "Secret", secret)
    assert decoded["data"] == {"k": base64.b64encode(b"\x00binary\xff").decode()}
    assert decoded["stringData"] == {"plain": "text"}


@pytest.mark.parametrize("nanos,text", [
    (0, "0s"), (1, "1ns"), (1500, "1.5µs"), (1_500_000, "1.5ms"), (1_000_000_000, "1s"),
    (90_000_000_000, "1m30s"), (3_600_000_000_000, "1h0m0s"), (3_723_500_000_000, "1h2m3.5s"),
    (-2_000_000_000, "-2s"),
])
def test_go_duration(nanos, text):
    assert pb.go_duration(nanos) == text


def test_micro_time_keeps_microseconds():
    meta = apimachinery_pkg_apis_meta_v1_pb2
    assert pb._time(meta.MicroTime(seconds=1704164645, nanos=7_000), micro=True) == "2024-01-02T03:04:05.000007Z"
    assert pb._time(meta.Time(seconds=1704164645, nanos=999_000_000), micro=False) == "2024-01-02T03:04:05Z"


@pytest.mark.parametrize("body,message", [
    (b'{"kind":"Pod"}', "prefix"),
    (b"k8s\x00\xff\xff\xff", "envelope"),
    (pb.MAGIC + apimachinery_pkg_runtime_pb2.Unknown(raw=b"\x0a\x00").SerializeToString(), "apiVersion"),
    (pb.MAGIC + apimachinery_pkg_runtime_pb2.Unknown(
        typeMeta={"apiVersion": "v1", "kind": "Widget"}).SerializeToString(), "Widget"),
    (pb.MAGIC + apimachinery_pkg_runtime_pb2.Unknown(
        typeMeta={"apiVersion": "v1", "kind": "Pod"}, raw=b"\x0a\x05\x0a").SerializeToString(), "Pod"),
    (pb.MAGIC + apimachinery_pkg_runtime_pb2.Unknown(
        typeMeta={"apiVersion": "v1", "kind": "Pod"}, contentEncoding="gzip").SerializeToString(), "gzip"),
])
def test_bad_bodies_raise_protobuf_error(body, message):
    with pytest.raises(pb.ProtobufError, match=message):
        pb.decode_body(body)


def test_unknown_fields_are_dropped_as_kube_apiserver_does():
    ns = api_core_v1_pb2.Namespace()
    ns.metadata.name = "n"
    raw = ns.SerializeToString() + b"\xa8\x1f\x01"  # field 501, varint: from a newer client
    body = pb.MAGIC + apimachinery_pkg_runtime_pb2.Unknown(
        typeMeta={"apiVersion": "v1", "kind": "Namespace"}, raw=raw).SerializeToString()
    assert pb.decode_body(body) == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}


def _client_model(package: str, name: str):
    prefix = package.split(".")[-2].capitalize() if package.startswith("k8s.io.api.") else ""
    for candidate in (f"{prefix}V1{name}", f"V1{name}"):
        model = getattr(kubernetes.client, candidate, None)
        if model is not None and hasattr(model, "attribute_map"):
            return model
    return None


GENERATED = [importlib.import_module(f"kubeling.protobuf.gen.{m.name}")
             for m in pkgutil.iter_modules(gen.__path__)]
SPECIAL = {pb.TIME, pb.MICRO_TIME, pb.DURATION, pb.FIELDS_V1, pb.QUANTITY, pb.QUANTITY_VALUE,
           pb.INT_OR_STRING, pb.RAW_EXTENSION, pb.UNKNOWN}


def test_proto_field_names_are_the_json_names():
    """Every proto field is named like its JSON field (the official client's attribute_map),
    once the inlined Go structs (INLINE) are flattened: the decoder relies on it."""
    checked = 0
    for module in GENERATED:
        if module.DESCRIPTOR.package == "k8s.io.api.autoscaling.v1":
            continue  # its metric messages only serve an annotation, not the JSON API
        for desc in module.DESCRIPTOR.message_types_by_name.values():
            model = None if desc.full_name in SPECIAL else _client_model(desc.file.package, desc.name)
            if model is None:
                continue
            names = set()
            for field in desc.fields:
                full = f"{desc.full_name}.{field.name}"
                if full in pb.INLINE:
                    names |= {f.name for f in field.message_type.fields}
                else:
                    names.add(pb.RENAMED.get(full, field.name))
            missing = names - set(model.attribute_map.values())
            assert not missing, f"{desc.full_name}: {sorted(missing)} are not JSON names"
            checked += 1
    assert checked > 300


def _roundtrip(api_version: str, kind: str, msg) -> dict:
    body = pb.MAGIC + apimachinery_pkg_runtime_pb2.Unknown(
        typeMeta={"apiVersion": api_version, "kind": kind}, raw=msg.SerializeToString()).SerializeToString()
    decoded = pb.decode_body(body)
    assert decoded.pop("apiVersion") == api_version and decoded.pop("kind") == kind
    return decoded


def test_keep_zero_names_real_scalar_fields():
    """A typo in KEEP_ZERO would silently turn a pointer's zero back into "unset"."""
    fields: dict[str, set[str]] = {}
    for module in GENERATED:
        for desc in module.DESCRIPTOR.message_types_by_name.values():
            fields.setdefault(desc.name, set()).update(
                f.name for f in desc.fields if f.type != f.TYPE_MESSAGE and not f.is_repeated)
    unknown = [entry for entry in pb.KEEP_ZERO
               if entry.split(".")[1] not in fields.get(entry.split(".")[0], set())]
    assert not unknown


def test_inline_and_renamed_fields_exist():
    pool = apimachinery_pkg_runtime_pb2.DESCRIPTOR.pool
    for full in [*pb.INLINE, *pb.RENAMED]:
        message, _, field = full.rpartition(".")
        assert field in pool.FindMessageTypeByName(message).fields_by_name, full


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return pb.MAGIC + apimachinery_pkg_runtime_pb2.Unknown(
        typeMeta={"apiVersion": api_version, "kind": kind}, raw=raw).SerializeToString()


@pytest.mark.parametrize("raw", [
    b"\x0a\x04\x0a\x02\xff\xfe",              # metadata.name
    b"\x12\x08\x0a\x02\xff\xfe\x12\x02ok",    # a data key
    b"\x12\x08\x0a\x02ok\x12\x02\xff\xfe",    # a data value
])
def test_invalid_utf8_in_a_string_is_a_protobuf_error(raw):
    with pytest.raises(pb.ProtobufError, match="UTF-8"):
        pb.decode_body(_envelope("v1", "ConfigMap", raw))


def test_endlessly_nested_raw_extensions_are_a_protobuf_error():
    revision = api_apps_v1_pb2.ControllerRevision()
    body = _envelope("apps/v1", "ControllerRevision", b"")
    for _ in range(3000):
        revision.data.raw = body
        body = _envelope("apps/v1", "ControllerRevision", revision.SerializeToString())
    with pytest.raises(pb.ProtobufError, match="deeply"):
        pb.decode_body(body)


def test_nested_protobuf_object_in_a_raw_extension():
    revision = api_apps_v1_pb2.ControllerRevision()
    revision.metadata.name = "r"
    ns = api_core_v1_pb2.Namespace()
    ns.metadata.name = "inner"
    revision.data.raw = _envelope("v1", "Namespace", ns.SerializeToString())
    decoded = pb.decode_body(_envelope("apps/v1", "ControllerRevision", revision.SerializeToString()))
    assert decoded["data"] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "inner"}}
