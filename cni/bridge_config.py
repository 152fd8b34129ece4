"""kubeling-bridge configuration: the reference bridge plugin's keys."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Mapping

from cni.errors import INVALID_NETWORK_CONFIG, CniError
from cni.spec import NETWORK_NAME

DEFAULT_BRIDGE = "cni0"


@dataclass(frozen=True)
class BridgeConfig:
    name: str
    cni_version: str
    bridge: str
    is_gateway: bool
    is_default_gateway: bool
    ip_masq: bool
    # Destinations the masquerade skips (ip-masq-agent's nonMasqueradeCIDRs): the cluster CIDR,
    # so a pod on another node sees the sender's own pod IP.
    non_masquerade_cidrs: tuple[str, ...]
    hairpin: bool
    promisc: bool
    mtu: int | None
    ipam_type: str | None
    prev_result: dict[str, Any] | None


def _bool(conf: Mapping[str, Any], key: str) -> bool:
    value = conf.get(key, False)
    if not isinstance(value, bool):
        raise CniError(INVALID_NETWORK_CONFIG, f"'{key}' must be a boolean")
    return value


def _cidrs(conf: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = conf.get(key) or []
    if not isinstance(value, list):
        raise CniError(INVALID_NETWORK_CONFIG, f"'{key}' must be a list of CIDRs")
    out = []
    for item in value:
        try:
            if not isinstance(item, str):
                raise TypeError(item)
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except (TypeError, ValueError):
            raise CniError(INVALID_NETWORK_CONFIG, f"'{key}': invalid CIDR {item!r}") from None
    return tuple(out)


def load_bridge_config(conf: Mapping[str, Any]) -> BridgeConfig:
    name = conf.get("name")
    if not isinstance(name, str) or not NETWORK_NAME.fullmatch(name):
        raise CniError(INVALID_NETWORK_CONFIG, "network config needs a 'name'")
    bridge = conf.get("bridge") or DEFAULT_BRIDGE
    # The kernel's rules for a link name (dev_valid_name), kept to printable ASCII.
    if not isinstance(bridge, str) or len(bridge) > 15 or not (bridge.isascii() and bridge.isprintable()) \
            or any(c in bridge for c in "/: ") or bridge in (".", ".."):
        raise CniError(INVALID_NETWORK_CONFIG, f"invalid bridge name {bridge!r}")
    mtu = conf.get("mtu")
    if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int) or not 0 <= mtu <= 65535):
        raise CniError(INVALID_NETWORK_CONFIG, "'mtu' must be an integer between 0 and 65535")
    vlan = conf.get("vlan")
    if vlan not in (None, 0):
        raise CniError(INVALID_NETWORK_CONFIG, "'vlan' is not supported by kubeling-bridge")
    ipam = conf.get("ipam")
    ipam_type = None
    if ipam is not None:
        if not isinstance(ipam, Mapping):
            raise CniError(INVALID_NETWORK_CONFIG, "'ipam' must be an object")
        if ipam:
            ipam_type = ipam.get("type")
            if not isinstance(ipam_type, str) or not ipam_type:
                raise CniError(INVALID_NETWORK_CONFIG, "'ipam.type' is required")
    prev = conf.get("prevResult")
    if prev is not None and not isinstance(prev, Mapping):
        raise CniError(INVALID_NETWORK_CONFIG, "'prevResult' must be an object")
    is_default_gateway = _bool(conf, "isDefaultGateway")
    return BridgeConfig(
        name=name,
        cni_version=conf["cniVersion"],
        bridge=bridge,
        # A default gateway has to be a gateway (the reference plugin forces it the same way).
        is_gateway=_bool(conf, "isGateway") or is_default_gateway,
        is_default_gateway=is_default_gateway,
        ip_masq=_bool(conf, "ipMasq"),
        non_masquerade_cidrs=_cidrs(conf, "nonMasqueradeCIDRs"),
        hairpin=_bool(conf, "hairpinMode"),
        promisc=_bool(conf, "promiscMode"),
        mtu=mtu or None,
        ipam_type=ipam_type,
        prev_result=dict(prev) if prev is not None else None,
    )
