"""Decode a Kubernetes protobuf request body into the object's JSON form.

The body is the magic `k8s\\x00` followed by a `runtime.Unknown`: typeMeta
{apiVersion, kind} names the message, `raw` holds its bytes (apimachinery
`runtime/serializer/protobuf/protobuf.go`). The result is the dict the same
client would have sent as JSON, so the rest of the apiserver never knows.

Go's JSON and Go's protobuf disagree on emptiness: the generated marshallers
always write value fields (empty strings, zero ints, false), while the JSON
tags say `omitempty`. So a zero scalar is left out, as JSON leaves it out, except
in the fields that are Go pointers (`replicas: 0` is not "unset"): KEEP_ZERO.
Messages present on the wire stay, even empty (`"status": {}` in JSON too).
"""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

from google.protobuf import message as _message
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message_factory import GetMessageClass

from .gen import apimachinery_pkg_runtime_pb2 as runtime_pb2
from .gen import (  # noqa: F401  (imported to register their messages)
    api_apps_v1_pb2, api_authentication_v1_pb2, api_authorization_v1_pb2, api_autoscaling_v1_pb2,
    api_batch_v1_pb2, api_certificates_v1_pb2, api_coordination_v1_pb2, api_core_v1_pb2,
    api_discovery_v1_pb2, api_events_v1_pb2, api_networking_v1_pb2, api_policy_v1_pb2,
    api_rbac_v1_pb2, api_scheduling_v1_pb2, api_storage_v1_pb2,
)

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

META = "k8s.io.apimachinery.pkg.apis.meta.v1"
TIME = f"{META}.Time"
MICRO_TIME = f"{META}.MicroTime"
DURATION = f"{META}.Duration"
FIELDS_V1 = f"{META}.FieldsV1"
QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
QUANTITY_VALUE = "k8s.io.apimachinery.pkg.api.resource.QuantityValue"
INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
RAW_EXTENSION = "k8s.io.apimachinery.pkg.runtime.RawExtension"
UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"

# Go structs embedded with `json:",inline"`: their fields sit in the parent's JSON.
# (tests/unit/protobuf checks every field name against the official client's JSON names.)
INLINE = frozenset({
    "k8s.io.api.core.v1.Volume.volumeSource",
    "k8s.io.api.core.v1.Probe.handler",
    "k8s.io.api.core.v1.PersistentVolumeSpec.persistentVolumeSource",
    "k8s.io.api.core.v1.EphemeralContainer.ephemeralContainerCommon",
    "k8s.io.api.networking.v1.IngressRule.ingressRuleValue",
    *(f"k8s.io.api.core.v1.{parent}.localObjectReference" for parent in (
        "ConfigMapEnvSource", "ConfigMapKeySelector", "ConfigMapProjection", "ConfigMapVolumeSource",
        "SecretEnvSource", "SecretKeySelector", "SecretProjection")),
})

# The two fields whose proto name is not their JSON name (go-to-protobuf lower-cased
# only the first letter of the Go name).
RENAMED = {
    "k8s.io.api.authentication.v1.BoundObjectReference.uID": "uid",
    "k8s.io.api.networking.v1.IngressClassParametersReference.aPIGroup": "apiGroup",
}

# Scalar fields that are Go pointers (`*int32`, `*bool`, `*string`): for them a
# zero on the wire was set on purpose and must reach the apiserver (replicas: 0,
# runAsUser: 0, automountServiceAccountToken: false, storageClassName: "").
# Named Message.field; the message's short name is enough (same meaning in every group).
KEEP_ZERO = frozenset({
    # meta/v1
    "ObjectMeta.deletionGracePeriodSeconds", "OwnerReference.controller",
    "OwnerReference.blockOwnerDeletion", "DeleteOptions.gracePeriodSeconds",
    "DeleteOptions.orphanDependents", "DeleteOptions.propagationPolicy",
    "DeleteOptions.ignoreStoreReadErrorWithClusterBreakingPotential",
    "ListMeta.remainingItemCount", "Preconditions.uid", "Preconditions.resourceVersion",
    "PatchOptions.force",
    # core/v1 pods and containers
    "PodSpec.terminationGracePeriodSeconds", "PodSpec.activeDeadlineSeconds",
    "PodSpec.automountServiceAccountToken", "PodSpec.shareProcessNamespace", "PodSpec.priority",
    "PodSpec.enableServiceLinks", "PodSpec.preemptionPolicy", "PodSpec.runtimeClassName",
    "PodSpec.setHostnameAsFQDN", "PodSpec.hostUsers",
    "PodSecurityContext.runAsUser", "PodSecurityContext.runAsGroup",
    "PodSecurityContext.runAsNonRoot", "PodSecurityContext.fsGroup",
    "PodSecurityContext.fsGroupChangePolicy", "PodSecurityContext.supplementalGroupsPolicy",
    "PodSecurityContext.seLinuxChangePolicy",
    "SecurityContext.privileged", "SecurityContext.runAsUser", "SecurityContext.runAsGroup",
    "SecurityContext.runAsNonRoot", "SecurityContext.readOnlyRootFilesystem",
    "SecurityContext.allowPrivilegeEscalation", "SecurityContext.procMount",
    "Container.restartPolicy", "EphemeralContainerCommon.restartPolicy",
    "Probe.terminationGracePeriodSeconds", "Toleration.tolerationSeconds",
    "ContainerStatus.started", "ContainerStatus.stopSignal",
    # core/v1 volumes and env sources
    "SecretVolumeSource.defaultMode", "SecretVolumeSource.optional",
    "ConfigMapVolumeSource.defaultMode", "ConfigMapVolumeSource.optional",
    "DownwardAPIVolumeSource.defaultMode", "DownwardAPIVolumeFile.mode",
    "ProjectedVolumeSource.defaultMode", "KeyToPath.mode",
    "ConfigMapProjection.optional", "SecretProjection.optional",
    "ServiceAccountTokenProjection.expirationSeconds",
    "ConfigMapKeySelector.optional", "SecretKeySelector.optional",
    "ConfigMapEnvSource.optional", "SecretEnvSource.optional", "HostPathVolumeSource.type",
    "CSIVolumeSource.readOnly", "CSIVolumeSource.fsType",
    "PersistentVolumeClaimSpec.storageClassName", "PersistentVolumeClaimSpec.volumeMode",
    "PersistentVolumeClaimSpec.volumeAttributesClassName",
    # core/v1 others
    "ConfigMap.immutable", "Secret.immutable", "ServiceAccount.automountServiceAccountToken",
    "ServiceSpec.ipFamilyPolicy", "ServiceSpec.allocateLoadBalancerNodePorts",
    "ServiceSpec.loadBalancerClass", "ServiceSpec.internalTrafficPolicy",
    "ServiceSpec.trafficDistribution", "ServicePort.appProtocol", "EndpointPort.appProtocol",
    "ClientIPConfig.timeoutSeconds", "ReplicationControllerSpec.replicas",
    "EndpointAddress.nodeName",
    # discovery/v1
    "EndpointConditions.ready", "EndpointConditions.serving", "EndpointConditions.terminating",
    "Endpoint.hostname", "Endpoint.nodeName", "Endpoint.zone",
    "EndpointPort.name", "EndpointPort.protocol", "EndpointPort.port",
    # apps/v1
    "DeploymentSpec.replicas", "DeploymentSpec.revisionHistoryLimit",
    "DeploymentSpec.progressDeadlineSeconds", "ReplicaSetSpec.replicas",
    "StatefulSetSpec.replicas", "StatefulSetSpec.revisionHistoryLimit",
    "RollingUpdateStatefulSetStrategy.partition", "DaemonSetSpec.revisionHistoryLimit",
    "ScaleSpec.replicas",
    # batch/v1
    "JobSpec.parallelism", "JobSpec.completions", "JobSpec.activeDeadlineSeconds",
    "JobSpec.backoffLimit", "JobSpec.backoffLimitPerIndex", "JobSpec.maxFailedIndexes",
    "JobSpec.manualSelector", "JobSpec.ttlSecondsAfterFinished", "JobSpec.completionMode",
    "JobSpec.suspend", "JobSpec.podReplacementPolicy", "JobSpec.managedBy",
    "JobStatus.ready", "JobStatus.terminating",
    "CronJobSpec.startingDeadlineSeconds", "CronJobSpec.suspend",
    "CronJobSpec.successfulJobsHistoryLimit", "CronJobSpec.failedJobsHistoryLimit",
    "CronJobSpec.timeZone", "PodFailurePolicyOnExitCodesRequirement.containerName",
    "SuccessPolicyRule.succeededIndexes", "SuccessPolicyRule.succeededCount",
    # coordination, policy, authentication, autoscaling, networking, scheduling
    "LeaseSpec.holderIdentity", "LeaseSpec.leaseDurationSeconds", "LeaseSpec.leaseTransitions",
    "LeaseSpec.strategy", "LeaseSpec.preferredHolder",
    "PodDisruptionBudgetSpec.unhealthyPodEvictionPolicy", "TokenRequestSpec.expirationSeconds",
    "HorizontalPodAutoscalerSpec.minReplicas",
    "HorizontalPodAutoscalerSpec.targetCPUUtilizationPercentage",
    "IngressSpec.ingressClassName", "HTTPIngressPath.pathType", "NetworkPolicyPort.protocol",
    "NetworkPolicyPort.endPort", "PriorityClass.preemptionPolicy",
})

# k8s.io/api package of each API group whose name is not just `<package>.k8s.io`.
_GROUP_PACKAGES = {"": "core", "rbac.authorization.k8s.io": "rbac"}
_SCALAR_ZERO = (0, 0.0, False, "", b"")


class ProtobufError(ValueError):
    """The body is not a Kubernetes protobuf object this server can read."""


def decode_body(body: bytes) -> dict[str, Any]:
    """`k8s\\x00` + runtime.Unknown -> the object as its JSON dict, with apiVersion and kind.
    Raises ProtobufError (the apiserver's 400) for anything it cannot read."""
    try:
        return _decode_object(body)
    except RecursionError:  # objects nested in RawExtensions without end
        raise ProtobufError("the object is nested too deeply") from None
    except UnicodeDecodeError:  # a map key that is not UTF-8 fails when the map is read
        raise ProtobufError("a string in the object is not valid UTF-8") from None


def _decode_object(body: bytes) -> dict[str, Any]:
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf prefix 'k8s\\x00'")
    envelope = runtime_pb2.Unknown()
    try:
        envelope.ParseFromString(body[len(MAGIC):])
    except _message.DecodeError as exc:
        raise ProtobufError(f"the protobuf envelope does not parse: {exc}") from None
    api_version, kind = envelope.typeMeta.apiVersion, envelope.typeMeta.kind
    if not api_version or not kind:
        raise ProtobufError("the protobuf envelope names no apiVersion and kind")
    if envelope.contentEncoding:
        raise ProtobufError(f"content encoding {envelope.contentEncoding!r} is not supported")
    cls = message_class(api_version, kind)
    msg = cls()
    try:
        msg.ParseFromString(envelope.raw)
    except _message.DecodeError as exc:
        raise ProtobufError(f"the {kind} in the body does not parse: {exc}") from None
    return {"apiVersion": api_version, "kind": kind, **to_json(msg)}


def message_class(api_version: str, kind: str) -> type[_message.Message]:
    """The generated message class for a kind, e.g. ("apps/v1", "Deployment")."""
    group, _, version = api_version.rpartition("/")
    if not kind.isidentifier() or not version.isidentifier():  # no nested names like "Pod.Spec"
        raise ProtobufError(f"no protobuf message is known for kind {kind!r} in {api_version!r}")
    if group == "meta.k8s.io":
        candidates = [f"{META}.{kind}"]
    else:
        package = _GROUP_PACKAGES.get(group, group.removesuffix(".k8s.io"))
        # Options kinds (DeleteOptions, CreateOptions...) are registered in every group version.
        candidates = [f"k8s.io.api.{package}.{version}.{kind}", f"{META}.{kind}"]
    pool = runtime_pb2.DESCRIPTOR.pool
    for name in candidates:
        try:
            return GetMessageClass(pool.FindMessageTypeByName(name))
        except KeyError:
            continue
    raise ProtobufError(f"no protobuf message is known for kind {kind!r} in {api_version!r}")


def to_json(msg: _message.Message) -> dict[str, Any]:
    """A message as Kubernetes' JSON object (see the module doc for emptiness)."""
    out: dict[str, Any] = {}
    desc = msg.DESCRIPTOR
    for field, value in msg.ListFields():
        full = f"{desc.full_name}.{field.name}"
        if full in INLINE:
            out.update(to_json(value))
            continue
        name = RENAMED.get(full, field.name)
        if _is_map(field):
            if value:
                vfield = field.message_type.fields_by_name["value"]
                kfield = field.message_type.fields_by_name["key"]
                out[name] = {_value(kfield, k): _value(vfield, v) for k, v in value.items()}
            continue
        if field.is_repeated:
            if value:
                out[name] = [_value(field, v) for v in value]
            continue
        if field.type != FieldDescriptor.TYPE_MESSAGE and value in _SCALAR_ZERO \
                and f"{desc.name}.{field.name}" not in KEEP_ZERO:
            continue
        converted = _value(field, value)
        if converted is not None:
            out[name] = converted
    return out


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message_value(value)
    if field.type == FieldDescriptor.TYPE_BYTES:  # Go []byte is base64 in JSON
        return base64.b64encode(value).decode()
    if isinstance(value, bytes):  # proto2 strings are not checked on parse: bad UTF-8 comes back as bytes
        raise ProtobufError(f"field {field.name!r} is not valid UTF-8")
    return value


def _message_value(msg: _message.Message) -> Any:
    """The special types whose JSON is not an object, then plain messages."""
    desc: Descriptor = msg.DESCRIPTOR
    name = desc.full_name
    if name == TIME:
        return _time(msg, micro=False)
    if name == MICRO_TIME:
        return _time(msg, micro=True)
    if name == DURATION:
        return go_duration(msg.duration)
    if name in (QUANTITY, QUANTITY_VALUE):
        return getattr(msg, "string")
    if name == INT_OR_STRING:
        return msg.strVal if msg.type == 1 else msg.intVal
    if name == RAW_EXTENSION:
        return _raw_object(msg.raw)
    if name == FIELDS_V1:
        return _raw_object(getattr(msg, "Raw"))
    if name == UNKNOWN:
        return _raw_object(msg.raw)
    # Go string slices wrapped as messages (ExtraValue, Verbs...) are plain JSON arrays.
    if len(desc.fields) == 1 and desc.fields[0].name == "items" and desc.fields[0].is_repeated \
            and desc.fields[0].type != FieldDescriptor.TYPE_MESSAGE:
        return list(msg.items)
    return to_json(msg)


def _time(msg: _message.Message, micro: bool) -> str | None:
    # The Go marshaller writes a zero time as an empty message; JSON has null.
    if not msg.seconds and not msg.nanos:
        return None
    moment = datetime.fromtimestamp(msg.seconds, tz=timezone.utc)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{msg.nanos // 1000:06d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _raw_object(raw: bytes) -> Any:
    """A RawExtension's bytes: JSON as clients send it, or a nested protobuf object."""
    if not raw:
        return None
    if raw.startswith(MAGIC):
        return _decode_object(raw)
    try:
        return json.loads(raw)
    except ValueError:
        raise ProtobufError("an embedded object is neither JSON nor Kubernetes protobuf") from None


def go_duration(nanos: int) -> str:
    """time.Duration.String(): 1h2m3.5s, 1.5ms, 0s."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    n = abs(nanos)
    if n < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if n >= size:
                return sign + _decimal(n, size) + unit
    hours, rest = divmod(n, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _decimal(rest, 1_000_000_000) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _decimal(n: int, size: int) -> str:
    whole, frac = divmod(n, size)
    if not frac:
        return str(whole)
    digits = len(str(size)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")
