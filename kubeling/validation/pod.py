"""Pod validation, following pkg/apis/core/validation (ValidatePodCreate/ValidatePodUpdate)."""
from __future__ import annotations

import copy
import json
from typing import Any

from kubeling.errors import (FieldError, duplicate, forbidden, invalid_value, not_supported,
                             required)
from kubeling.quantity import format_quantity, is_binary, parse_quantity
from kubeling.validation import formats
from kubeling.validation.fields import Checker, child, index, is_int, key
from kubeling.validation.meta import validate_labels, validate_object_meta, validate_object_meta_update

NEGATIVE = "must be greater than or equal to 0"
PROTOCOLS = ["SCTP", "TCP", "UDP"]
RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
TERMINATION_MESSAGE_POLICIES = ["File", "FallbackToLogsOnError"]
TOLERATION_OPERATORS = ["Equal", "Exists"]
TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
PREEMPTION_POLICIES = ["Never", "PreemptLowerPriority"]
HTTP_SCHEMES = ["HTTP", "HTTPS"]
UINT32_MAX = 2**32 - 1

# Every volume source Kubernetes knows, in the order its validation looks at them (so the
# second one found is the one named in "may not specify more than 1 volume type").
VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret",
    "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs",
    "flocker", "downwardAPI", "fc", "azureFile", "vsphereVolume", "quobyte", "azureDisk",
    "projected", "portworxVolume", "scaleIO", "configMap", "storageos", "csi", "ephemeral", "image",
)
# The ones kubeling's agent can provide.
SUPPORTED_VOLUME_SOURCES = ("emptyDir", "hostPath", "configMap", "secret", "downwardAPI", "projected")

STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
QOS_RESOURCES = ("cpu", "memory")

FIELD_REF_PATHS = ["metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
                   "status.podIPs"]

UPDATABLE_SPEC_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)")


def validate_pod(obj: dict, old: dict | None) -> list[FieldError]:
    c = Checker()
    validate_object_meta(c, obj, True, formats.dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec")
    if spec is None:
        if obj.get("spec") is None:
            c.add(required("spec.containers", ""))
    else:
        validate_pod_spec(c, spec, "spec")
    status = c.obj(obj, "status", "status")
    if status is not None and old is not None:
        validate_pod_status(c, status, "status")
    if old is not None and isinstance(old, dict):
        validate_object_meta_update(c, obj, old)
        if spec is not None and isinstance(old.get("spec"), dict):
            validate_pod_spec_update(c, spec, old["spec"])
    return c.errors


def validate_pod_spec(c: Checker, spec: dict, path: str) -> None:
    volumes = validate_volumes(c, spec, child(path, "volumes"))
    host_network = c.bool(spec, "hostNetwork", child(path, "hostNetwork")) or False
    init_names: set[str] = set()
    host_ports: set[str] = set()
    init = c.items(spec, "initContainers", child(path, "initContainers"))
    for i, p, ctr in init:
        validate_container(c, ctr, p, volumes, init_names, host_network, host_ports, init=True)
    containers = c.items(spec, "containers", child(path, "containers"))
    if spec.get("containers") in (None, []):
        c.add(required(child(path, "containers"), ""))
    for i, p, ctr in containers:
        validate_container(c, ctr, p, volumes, init_names, host_network, host_ports, init=False)

    restart = c.str(spec, "restartPolicy", child(path, "restartPolicy"))
    if not restart:
        if spec.get("restartPolicy") in (None, ""):
            c.add(required(child(path, "restartPolicy"), ""))
    elif restart not in RESTART_POLICIES:
        c.add(not_supported(child(path, "restartPolicy"), restart, RESTART_POLICIES))
    dns = c.str(spec, "dnsPolicy", child(path, "dnsPolicy"))
    if not dns:
        if spec.get("dnsPolicy") in (None, ""):
            c.add(required(child(path, "dnsPolicy"), ""))
    elif dns not in DNS_POLICIES:
        c.add(not_supported(child(path, "dnsPolicy"), dns, DNS_POLICIES))
    dns_config = c.obj(spec, "dnsConfig", child(path, "dnsConfig"))
    if dns == "None" and dns_config is None and spec.get("dnsConfig") is None:
        c.add(required(child(path, "dnsConfig"), "must provide `dnsConfig` when `dnsPolicy` is None"))
    if dns_config is not None:
        for i, ns in enumerate(c.str_list(dns_config, "nameservers", child(path, "dnsConfig.nameservers"))):
            c.messages(index(child(path, "dnsConfig.nameservers"), i), ns, formats.ip(ns))
        c.str_list(dns_config, "searches", child(path, "dnsConfig.searches"))
        c.items(dns_config, "options", child(path, "dnsConfig.options"))

    grace = c.int(spec, "terminationGracePeriodSeconds", child(path, "terminationGracePeriodSeconds"), 64)
    if grace is not None and grace < 0:
        c.add(invalid_value(child(path, "terminationGracePeriodSeconds"), grace, NEGATIVE))
    deadline = c.int(spec, "activeDeadlineSeconds", child(path, "activeDeadlineSeconds"), 64)
    if deadline is not None and not 1 <= deadline <= UINT32_MAX:
        c.add(invalid_value(child(path, "activeDeadlineSeconds"), deadline,
                            formats.inclusive_range_error(1, UINT32_MAX)))
    for field in ("hostPID", "hostIPC", "enableServiceLinks", "automountServiceAccountToken",
                  "shareProcessNamespace", "setHostnameAsFQDN", "hostUsers"):
        c.bool(spec, field, child(path, field))
    selector = spec.get("nodeSelector")
    validate_labels(c, selector, child(path, "nodeSelector"))
    node_name = c.str(spec, "nodeName", child(path, "nodeName"))
    if node_name:
        c.messages(child(path, "nodeName"), node_name, formats.dns1123_subdomain(node_name))
    for field in ("hostname", "subdomain"):
        v = c.str(spec, field, child(path, field))
        if v:
            c.messages(child(path, field), v, formats.dns1123_label(v))
    for field in ("serviceAccountName", "serviceAccount", "priorityClassName", "schedulerName"):
        v = c.str(spec, field, child(path, field))
        if v:
            c.messages(child(path, field), v, formats.dns1123_subdomain(v))
    c.int(spec, "priority", child(path, "priority"))
    preemption = c.str(spec, "preemptionPolicy", child(path, "preemptionPolicy"))
    if preemption is not None and preemption not in PREEMPTION_POLICIES:
        c.add(not_supported(child(path, "preemptionPolicy"), preemption, PREEMPTION_POLICIES))
    validate_tolerations(c, spec, child(path, "tolerations"))
    for field in ("securityContext", "affinity", "overhead"):
        c.obj(spec, field, child(path, field))
    for i, p, ref in c.items(spec, "imagePullSecrets", child(path, "imagePullSecrets")):
        c.str(ref, "name", child(p, "name"))
    for i, p, alias in c.items(spec, "hostAliases", child(path, "hostAliases")):
        ip = c.str(alias, "ip", child(p, "ip"))
        if ip is not None:
            c.messages(child(p, "ip"), ip, formats.ip(ip))
        for j, h in enumerate(c.str_list(alias, "hostnames", child(p, "hostnames"))):
            c.messages(index(child(p, "hostnames"), j), h, formats.dns1123_subdomain(h))


def validate_tolerations(c: Checker, spec: dict, path: str) -> None:
    for i, p, t in c.items(spec, "tolerations", path):
        k = c.str(t, "key", child(p, "key"))
        if k:
            c.messages(child(p, "key"), k, formats.qualified_name(k))
        op = c.str(t, "operator", child(p, "operator"))
        value = c.str(t, "value", child(p, "value"))
        effect = c.str(t, "effect", child(p, "effect"))
        seconds = c.int(t, "tolerationSeconds", child(p, "tolerationSeconds"), 64)
        op_mistyped = op is None and t.get("operator") is not None
        if not k and op != "Exists" and not op_mistyped:
            c.add(invalid_value(child(p, "operator"), op or "",
                                "operator must be Exists when `key` is empty, which means "
                                "\"match all values and all keys\""))
        if seconds is not None and effect != "NoExecute":
            c.add(invalid_value(child(p, "effect"), effect or "",
                                "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if op in (None, "", "Equal"):
            if value:
                c.messages(child(p, "value"), value, formats.label_value(value))
        elif op == "Exists":
            if value:
                c.add(invalid_value(child(p, "operator"), t,
                                    "value must be empty when `operator` is 'Exists'"))
        else:
            c.add(not_supported(child(p, "operator"), op, TOLERATION_OPERATORS))
        if effect and effect not in TAINT_EFFECTS:
            c.add(not_supported(child(p, "effect"), effect, TAINT_EFFECTS))


def validate_volumes(c: Checker, spec: dict, path: str) -> set[str]:
    names: set[str] = set()
    for i, p, vol in c.items(spec, "volumes", path):
        name = c.str(vol, "name", child(p, "name"))
        if not name:
            if vol.get("name") in (None, ""):
                c.add(required(child(p, "name"), ""))
        elif c.messages(child(p, "name"), name, formats.dns1123_label(name)):
            if name in names:
                c.add(duplicate(child(p, "name"), name))
            names.add(name)
        found = [s for s in VOLUME_SOURCES if vol.get(s) is not None]
        if not found:
            c.add(required(p, "must specify a volume type"))
            continue
        for extra in found[1:]:
            c.add(forbidden(child(p, extra), "may not specify more than 1 volume type"))
        source = found[0]
        if source not in SUPPORTED_VOLUME_SOURCES:
            c.add(forbidden(child(p, source), "volume type not supported by kubeling; supported: "
                            + ", ".join(SUPPORTED_VOLUME_SOURCES)))
            continue
        src = c.obj(vol, source, child(p, source))
        if src is None:
            continue
        sp = child(p, source)
        if source == "hostPath":
            hp = c.str(src, "path", child(sp, "path"))
            if not hp and src.get("path") in (None, ""):
                c.add(required(child(sp, "path"), ""))
            c.str(src, "type", child(sp, "type"))
        elif source == "emptyDir":
            medium = c.str(src, "medium", child(sp, "medium"))
            if medium not in (None, "", "Memory", "HugePages"):
                c.add(not_supported(child(sp, "medium"), medium, ["", "Memory", "HugePages"]))
            limit = src.get("sizeLimit")
            if limit is not None:
                _quantity(c, limit, child(sp, "sizeLimit"))
        elif source == "configMap":
            if not c.str(src, "name", child(sp, "name")) and src.get("name") in (None, ""):
                c.add(required(child(sp, "name"), ""))
            _mode(c, src, sp)
            _key_items(c, src, sp)
        elif source == "secret":
            if not c.str(src, "secretName", child(sp, "secretName")) and src.get("secretName") in (None, ""):
                c.add(required(child(sp, "secretName"), ""))
            _mode(c, src, sp)
            _key_items(c, src, sp)
        else:
            _mode(c, src, sp)
            c.list(src, "items" if source == "downwardAPI" else "sources",
                   child(sp, "items" if source == "downwardAPI" else "sources"))
    return names


def _mode(c: Checker, src: dict, path: str) -> None:
    mode = c.int(src, "defaultMode", child(path, "defaultMode"))
    if mode is not None and not 0 <= mode <= 0o777:
        c.add(invalid_value(child(path, "defaultMode"), mode,
                            "must be a number between 0 and 0777 (octal), both inclusive"))


def _key_items(c: Checker, src: dict, path: str) -> None:
    for i, p, item in c.items(src, "items", child(path, "items")):
        k = c.str(item, "key", child(p, "key"))
        if not k and item.get("key") in (None, ""):
            c.add(required(child(p, "key"), ""))
        target = c.str(item, "path", child(p, "path"))
        if not target and item.get("path") in (None, ""):
            c.add(required(child(p, "path"), ""))
        elif target and (target.startswith("/") or ".." in target.split("/")):
            c.add(invalid_value(child(p, "path"), target, "must be a relative path without '..'"))
        mode = c.int(item, "mode", child(p, "mode"))
        if mode is not None and not 0 <= mode <= 0o777:
            c.add(invalid_value(child(p, "mode"), mode,
                                "must be a number between 0 and 0777 (octal), both inclusive"))


def _quantity(c: Checker, value: Any, path: str):
    try:
        return parse_quantity(value)
    except ValueError as exc:
        c.add(invalid_value(path, value, str(exc)))
        return None


def validate_container(c: Checker, ctr: dict, path: str, volumes: set[str], names: set[str],
                       host_network: bool, host_ports: set[str], init: bool) -> None:
    name = c.str(ctr, "name", child(path, "name"))
    if not name:
        if ctr.get("name") in (None, ""):
            c.add(required(child(path, "name"), ""))
    elif c.messages(child(path, "name"), name, formats.dns1123_label(name)):
        if name in names:
            c.add(duplicate(child(path, "name"), name))
        names.add(name)
    image = c.str(ctr, "image", child(path, "image"))
    if not image:
        if ctr.get("image") in (None, ""):
            c.add(required(child(path, "image"), ""))
    elif image != image.strip():
        c.add(invalid_value(child(path, "image"), image, "must not have leading or trailing whitespace"))
    c.str_list(ctr, "command", child(path, "command"))
    c.str_list(ctr, "args", child(path, "args"))
    c.str(ctr, "workingDir", child(path, "workingDir"))
    for field in ("stdin", "stdinOnce", "tty"):
        c.bool(ctr, field, child(path, field))
    c.obj(ctr, "securityContext", child(path, "securityContext"))
    pull = c.str(ctr, "imagePullPolicy", child(path, "imagePullPolicy"))
    if pull is not None and pull not in PULL_POLICIES:
        if pull == "":
            c.add(required(child(path, "imagePullPolicy"), ""))
        else:
            c.add(not_supported(child(path, "imagePullPolicy"), pull, PULL_POLICIES))
    tmp = c.str(ctr, "terminationMessagePolicy", child(path, "terminationMessagePolicy"))
    if tmp is not None and tmp not in TERMINATION_MESSAGE_POLICIES:
        c.add(not_supported(child(path, "terminationMessagePolicy"), tmp, TERMINATION_MESSAGE_POLICIES))
    c.str(ctr, "terminationMessagePath", child(path, "terminationMessagePath"))
    validate_ports(c, ctr, child(path, "ports"), host_network, host_ports)
    validate_env(c, ctr, child(path, "env"))
    for i, p, src in c.items(ctr, "envFrom", child(path, "envFrom")):
        c.str(src, "prefix", child(p, "prefix"))
    validate_resources(c, ctr, child(path, "resources"))
    validate_volume_mounts(c, ctr, child(path, "volumeMounts"), volumes)
    restart = c.str(ctr, "restartPolicy", child(path, "restartPolicy"))
    sidecar = init and restart == "Always"
    if restart is not None:
        if not init:
            c.add(forbidden(child(path, "restartPolicy"), "may not be set for non-init containers"))
        elif restart != "Always":
            c.add(not_supported(child(path, "restartPolicy"), restart, ["Always"]))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        pr = c.obj(ctr, probe, child(path, probe))
        if pr is None:
            continue
        if init and not sidecar:
            c.add(forbidden(child(path, probe),
                            "may not be set for init containers without restartPolicy=Always"))
            continue
        validate_probe(c, pr, child(path, probe), readiness=probe == "readinessProbe")
    lifecycle = c.obj(ctr, "lifecycle", child(path, "lifecycle"))
    if lifecycle is not None:
        if init and not sidecar:
            c.add(forbidden(child(path, "lifecycle"),
                            "may not be set for init containers without restartPolicy=Always"))
        else:
            for hook in ("postStart", "preStop"):
                h = c.obj(lifecycle, hook, child(child(path, "lifecycle"), hook))
                if h is not None:
                    validate_handler(c, h, child(child(path, "lifecycle"), hook), lifecycle=True)


def validate_ports(c: Checker, ctr: dict, path: str, host_network: bool, host_ports: set[str]) -> None:
    names: set[str] = set()
    for i, p, port in c.items(ctr, "ports", path):
        name = c.str(port, "name", child(p, "name"))
        if name:
            if c.messages(child(p, "name"), name, formats.port_name(name)):
                if name in names:
                    c.add(duplicate(child(p, "name"), name))
                names.add(name)
        cport = c.int(port, "containerPort", child(p, "containerPort"))
        if cport is None or cport == 0:
            if port.get("containerPort") in (None, 0):
                c.add(required(child(p, "containerPort"), ""))
        else:
            c.messages(child(p, "containerPort"), cport, formats.port_num(cport))
        hport = c.int(port, "hostPort", child(p, "hostPort"))
        if hport:
            c.messages(child(p, "hostPort"), hport, formats.port_num(hport))
        proto = _protocol(c, port, child(p, "protocol"))
        if host_network and hport and cport and hport != cport:
            c.add(invalid_value(child(p, "hostPort"), hport,
                                "must match `containerPort` when `hostNetwork` is true"))
        if hport:
            ident = f"{hport}/{proto or 'TCP'}"
            if ident in host_ports:
                c.add(duplicate(child(p, "hostPort"), ident))
            host_ports.add(ident)
        c.str(port, "hostIP", child(p, "hostIP"))


def _protocol(c: Checker, parent: dict, path: str) -> str | None:
    proto = c.str(parent, "protocol", path)
    if proto == "" or (proto is None and parent.get("protocol") is None):
        c.add(required(path, ""))
        return None
    if proto is not None and proto not in PROTOCOLS:
        c.add(not_supported(path, proto, PROTOCOLS))
        return None
    return proto


def validate_env(c: Checker, ctr: dict, path: str) -> None:
    for i, p, ev in c.items(ctr, "env", path):
        name = c.str(ev, "name", child(p, "name"))
        if not name:
            if ev.get("name") in (None, ""):
                c.add(required(child(p, "name"), ""))
        else:
            c.messages(child(p, "name"), name, formats.env_var_name(name))
        value = c.str(ev, "value", child(p, "value"))
        source = c.obj(ev, "valueFrom", child(p, "valueFrom"))
        if source is None:
            continue
        sp = child(p, "valueFrom")
        kinds = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
                 if source.get(k) is not None]
        if value:
            c.add(invalid_value(sp, "", "may not be specified when `value` is not empty"))
        if not kinds:
            c.add(invalid_value(sp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                        "`configMapKeyRef` or `secretKeyRef`"))
            continue
        if len(kinds) > 1:
            c.add(invalid_value(sp, "", "may not have more than one field specified at a time"))
            continue
        ref = c.obj(source, kinds[0], child(sp, kinds[0]))
        if ref is None:
            continue
        rp = child(sp, kinds[0])
        if kinds[0] == "fieldRef":
            fp = c.str(ref, "fieldPath", child(rp, "fieldPath"))
            if not fp:
                if ref.get("fieldPath") in (None, ""):
                    c.add(required(child(rp, "fieldPath"), ""))
            elif fp not in FIELD_REF_PATHS and not _label_ref(fp):
                c.add(not_supported(child(rp, "fieldPath"), fp,
                                    FIELD_REF_PATHS + ["metadata.annotations", "metadata.labels"]))
            c.str(ref, "apiVersion", child(rp, "apiVersion"))
        elif kinds[0] == "resourceFieldRef":
            res = c.str(ref, "resource", child(rp, "resource"))
            if not res and ref.get("resource") in (None, ""):
                c.add(required(child(rp, "resource"), ""))
            c.str(ref, "containerName", child(rp, "containerName"))
        else:
            k = c.str(ref, "key", child(rp, "key"))
            if not k:
                if ref.get("key") in (None, ""):
                    c.add(required(child(rp, "key"), ""))
            else:
                c.messages(child(rp, "key"), k, formats.config_map_key(k))
            c.str(ref, "name", child(rp, "name"))
            c.bool(ref, "optional", child(rp, "optional"))


def _label_ref(fp: str) -> bool:
    for prefix in ("metadata.labels['", "metadata.annotations['"):
        if fp.startswith(prefix) and fp.endswith("']") and len(fp) > len(prefix) + 2:
            return True
    return fp in ("metadata.labels", "metadata.annotations")


def validate_resources(c: Checker, ctr: dict, path: str) -> None:
    res = c.obj(ctr, "resources", path)
    if res is None:
        return
    parsed: dict[str, dict[str, Any]] = {}
    for part in ("limits", "requests"):
        pp = child(path, part)
        values = c.obj(res, part, pp) or {}
        parsed[part] = {}
        for name, raw in values.items():
            kp = key(pp, name)
            if not _resource_name(c, name, kp):
                continue
            q = _quantity(c, raw, kp)
            if q is None:
                continue
            if q < 0:
                c.add(invalid_value(kp, _show_q(raw, q), NEGATIVE))
                continue
            parsed[part][name] = (raw, q)
    for name, (raw, q) in parsed["requests"].items():
        if name in parsed["limits"]:
            lraw, lq = parsed["limits"][name]
            if q > lq:
                c.add(invalid_value(key(child(path, "requests"), name), _show_q(raw, q),
                                    f"must be less than or equal to {name} limit of {_show_q(lraw, lq)}"))


def _show_q(raw: Any, q) -> str:
    return format_quantity(q, binary=is_binary(raw))


def _resource_name(c: Checker, name: str, path: str) -> bool:
    if "/" not in name:
        if name in STANDARD_CONTAINER_RESOURCES or name.startswith("hugepages-"):
            return True
        c.add(invalid_value(path, name, "must be a standard resource for containers"))
        return False
    if not c.messages(path, name, formats.qualified_name(name)):
        return False
    if "kubernetes.io/" in name and not name.startswith("requests."):
        c.add(invalid_value(path, name, "doesn't follow extended resource name standard"))
        return False
    return True


def validate_volume_mounts(c: Checker, ctr: dict, path: str, volumes: set[str]) -> None:
    mount_paths: set[str] = set()
    for i, p, m in c.items(ctr, "volumeMounts", path):
        name = c.str(m, "name", child(p, "name"))
        if not name:
            if m.get("name") in (None, ""):
                c.add(required(child(p, "name"), ""))
        elif name not in volumes:
            c.add(FieldError(child(p, "name"), "FieldValueNotFound", f"Not found: {json.dumps(name)}"))
        mp = c.str(m, "mountPath", child(p, "mountPath"))
        if not mp:
            if m.get("mountPath") in (None, ""):
                c.add(required(child(p, "mountPath"), ""))
        elif mp in mount_paths:
            c.add(invalid_value(child(p, "mountPath"), mp, "must be unique"))
        else:
            mount_paths.add(mp)
        sub = c.str(m, "subPath", child(p, "subPath"))
        if sub and (sub.startswith("/") or ".." in sub.split("/")):
            c.add(invalid_value(child(p, "subPath"), sub, "must be a relative path without '..'"))
        c.bool(m, "readOnly", child(p, "readOnly"))


def validate_probe(c: Checker, probe: dict, path: str, readiness: bool) -> None:
    validate_handler(c, probe, path, lifecycle=False)
    for field in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                  "failureThreshold"):
        v = c.int(probe, field, child(path, field))
        if v is not None and v < 0:
            c.add(invalid_value(child(path, field), v, NEGATIVE))
    success = probe.get("successThreshold")
    if not readiness and is_int(success) and success != 1:
        c.add(invalid_value(child(path, "successThreshold"), success, "must be 1"))
    tg = c.int(probe, "terminationGracePeriodSeconds", child(path, "terminationGracePeriodSeconds"), 64)
    if tg is not None and tg <= 0:
        c.add(invalid_value(child(path, "terminationGracePeriodSeconds"), tg, "must be greater than 0"))


def validate_handler(c: Checker, h: dict, path: str, lifecycle: bool) -> None:
    kinds = ("exec", "httpGet", "tcpSocket", "sleep") if lifecycle else ("exec", "httpGet", "tcpSocket", "grpc")
    present = [k for k in kinds if h.get(k) is not None]
    if not present:
        c.add(required(path, "must specify a handler type"))
        return
    for extra in present[1:]:
        c.add(forbidden(child(path, extra), "may not specify more than 1 handler type"))
    kind = present[0]
    hp = child(path, kind)
    action = c.obj(h, kind, hp)
    if action is None:
        return
    if kind == "exec":
        cmd = c.str_list(action, "command", child(hp, "command"))
        if not cmd and action.get("command") in (None, []):
            c.add(required(child(hp, "command"), ""))
    elif kind == "httpGet":
        p = c.str(action, "path", child(hp, "path"))
        if not p and action.get("path") in (None, ""):
            c.add(required(child(hp, "path"), ""))
        _port_num_or_name(c, action, child(hp, "port"), required_=True)
        scheme = c.str(action, "scheme", child(hp, "scheme"))
        if scheme is not None and scheme not in HTTP_SCHEMES:
            c.add(not_supported(child(hp, "scheme"), scheme, HTTP_SCHEMES))
        c.str(action, "host", child(hp, "host"))
        for i, ip, header in c.items(action, "httpHeaders", child(hp, "httpHeaders")):
            n = c.str(header, "name", child(ip, "name"))
            if n is not None:
                c.messages(child(ip, "name"), n, formats.http_header_name(n))
            c.str(header, "value", child(ip, "value"))
    elif kind == "tcpSocket":
        _port_num_or_name(c, action, child(hp, "port"), required_=True)
        c.str(action, "host", child(hp, "host"))
    elif kind == "grpc":
        port = c.int(action, "port", child(hp, "port"))
        if port is not None:
            c.messages(child(hp, "port"), port, formats.port_num(port))
        elif action.get("port") is None:
            c.add(required(child(hp, "port"), ""))
        c.str(action, "service", child(hp, "service"))
    elif kind == "sleep":
        secs = c.int(action, "seconds", child(hp, "seconds"), 64)
        if secs is not None and secs < 0:
            c.add(invalid_value(child(hp, "seconds"), secs, NEGATIVE))


def _port_num_or_name(c: Checker, parent: dict, path: str, required_: bool = False) -> None:
    port = c.int_or_str(parent, path.rsplit(".", 1)[-1], path)
    if port is None:
        if required_ and parent.get(path.rsplit(".", 1)[-1]) is None:
            c.add(required(path, ""))
        return
    if isinstance(port, int):
        c.messages(path, port, formats.port_num(port))
    else:
        c.messages(path, port, formats.port_name(port))


def validate_pod_status(c: Checker, status: dict, path: str) -> None:
    c.str(status, "phase", child(path, "phase"))
    for field in ("podIP", "hostIP"):
        v = c.str(status, field, child(path, field))
        if v:
            c.messages(child(path, field), v, formats.ip(v))
    for field in ("podIPs", "hostIPs"):
        for i, p, entry in c.items(status, field, child(path, field)):
            v = c.str(entry, "ip", child(p, "ip"))
            if v is not None:
                c.messages(child(p, "ip"), v, formats.ip(v))
    for i, p, cond in c.items(status, "conditions", child(path, "conditions")):
        if not c.str(cond, "type", child(p, "type")) and cond.get("type") in (None, ""):
            c.add(required(child(p, "type"), ""))
        st = c.str(cond, "status", child(p, "status"))
        if st is not None and st not in ("True", "False", "Unknown"):
            c.add(not_supported(child(p, "status"), st, ["False", "True", "Unknown"]))
    for field in ("containerStatuses", "initContainerStatuses"):
        for i, p, cs in c.items(status, field, child(path, field)):
            c.str(cs, "name", child(p, "name"))
            c.bool(cs, "ready", child(p, "ready"))
            rc = c.int(cs, "restartCount", child(p, "restartCount"))
            if rc is not None and rc < 0:
                c.add(invalid_value(child(p, "restartCount"), rc, NEGATIVE))
            c.obj(cs, "state", child(p, "state"))
            c.obj(cs, "lastState", child(p, "lastState"))


def validate_pod_spec_update(c: Checker, new: dict, old: dict) -> None:
    nd, od = new.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds")
    if is_int(nd):
        if is_int(od) and od < nd:
            c.add(invalid_value("spec.activeDeadlineSeconds", nd, "must be less than or equal to previous value"))
    elif nd is None and od is not None:
        c.add(invalid_value("spec.activeDeadlineSeconds", None,
                            "must not update from a positive integer to nil value"))
    old_tols = old.get("tolerations") if isinstance(old.get("tolerations"), list) else []
    new_tols = new.get("tolerations") if isinstance(new.get("tolerations"), list) else []
    for t in old_tols:
        if not any(_same_toleration(t, n) for n in new_tols):
            c.add(forbidden("spec.tolerations", "existing toleration can not be modified except its "
                                                "tolerationSeconds"))
            break

    # Compare with the mutable fields made equal; whatever differs then is forbidden.
    mutated = copy.deepcopy(new)
    original = copy.deepcopy(old)
    for field in ("containers", "initContainers"):
        nl, ol = mutated.get(field), original.get(field)
        if isinstance(nl, list) and isinstance(ol, list) and len(nl) == len(ol):
            for n, o in zip(nl, ol):
                if isinstance(n, dict) and isinstance(o, dict):
                    if "image" in o:
                        n["image"] = o["image"]
                    else:
                        n.pop("image", None)
    for field in ("activeDeadlineSeconds", "tolerations"):
        mutated.pop(field, None)
        original.pop(field, None)
    og, ng = old.get("terminationGracePeriodSeconds"), new.get("terminationGracePeriodSeconds")
    if is_int(og) and og < 0 and ng == 1:
        mutated["terminationGracePeriodSeconds"] = og
    if mutated != original:
        changed = sorted(k for k in set(mutated) | set(original) if mutated.get(k) != original.get(k))
        c.add(forbidden("spec", UPDATABLE_SPEC_MSG + "\n  changed: " + ", ".join(f"spec.{k}" for k in changed)))


def _same_toleration(a: Any, b: Any) -> bool:
    if not isinstance(a, dict) or not isinstance(b, dict):
        return a == b
    strip = lambda t: {k: v for k, v in t.items() if k != "tolerationSeconds" and v not in (None, "")}
    return strip(a) == strip(b)
