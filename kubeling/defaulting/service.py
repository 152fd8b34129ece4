"""Service defaults: SetDefaults_Service plus the IP-family defaults the registry applies.
ClusterIP and NodePort allocation are the apiserver's job."""
from __future__ import annotations

DEFAULT_CLIENT_IP_TIMEOUT = 10800


def default_service(svc: dict) -> None:
    spec = svc.get("spec")
    if spec is None:
        spec = svc["spec"] = {}
    if not isinstance(spec, dict):
        return
    if spec.get("type") in (None, ""):
        spec["type"] = "ClusterIP"
    if spec.get("sessionAffinity") in (None, ""):
        spec["sessionAffinity"] = "None"
    stype = spec.get("type")
    if spec.get("sessionAffinity") == "ClientIP":
        config = spec.get("sessionAffinityConfig")
        if config is None:
            config = spec["sessionAffinityConfig"] = {}
        if isinstance(config, dict):
            client = config.get("clientIP")
            if client is None:
                client = config["clientIP"] = {}
            if isinstance(client, dict) and client.get("timeoutSeconds") is None:
                client["timeoutSeconds"] = DEFAULT_CLIENT_IP_TIMEOUT
    ports = spec.get("ports")
    if isinstance(ports, list):
        for port in ports:
            if not isinstance(port, dict):
                continue
            if port.get("protocol") in (None, ""):
                port["protocol"] = "TCP"
            if port.get("targetPort") in (None, 0, ""):
                port["targetPort"] = port.get("port")
    if stype in ("NodePort", "LoadBalancer") and spec.get("externalTrafficPolicy") in (None, ""):
        spec["externalTrafficPolicy"] = "Cluster"
    if stype == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    if stype != "ExternalName":
        if spec.get("internalTrafficPolicy") in (None, ""):
            spec["internalTrafficPolicy"] = "Cluster"
        # kubeling's service network is IPv4 only.
        if spec.get("ipFamilyPolicy") in (None, ""):
            spec["ipFamilyPolicy"] = "SingleStack"
        if spec.get("ipFamilies") in (None, []):
            spec["ipFamilies"] = ["IPv4"]
    if svc.get("status") is None:
        svc["status"] = {"loadBalancer": {}}
