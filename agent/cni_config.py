"""The network config the agent writes for its node's pod CIDR."""
from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

CONF_NAME = "10-kubeling.conflist"
NETWORK_NAME = "kubeling"


def conflist(pod_cidr: str, *, bridge_type: str = "bridge", ipam_type: str = "host-local",
             bridge: str = "cni0", ipam_data_dir: str | None = None, ip_masq: bool = True,
             cluster_cidr: str | None = None) -> dict[str, Any]:
    """The conflist for one node. With `cluster_cidr`, pod traffic to it is not masqueraded
    (pods on other nodes must see the sender's pod IP); everything else leaving the node is."""
    net = ipaddress.ip_network(pod_cidr, strict=False)
    # isDefaultGateway makes the bridge plugin add the default route itself; a
    # route from IPAM as well would collide with it ("file exists").
    ipam: dict[str, Any] = {"type": ipam_type, "ranges": [[{"subnet": str(net)}]]}
    if ipam_data_dir:
        ipam["dataDir"] = ipam_data_dir
    plugin: dict[str, Any] = {"type": bridge_type, "bridge": bridge, "isGateway": True,
                              "isDefaultGateway": True, "ipMasq": ip_masq, "hairpinMode": True}
    if cluster_cidr:
        # kubeling-bridge's key (ip-masq-agent's name); the reference bridge plugin ignores it.
        plugin["nonMasqueradeCIDRs"] = [str(ipaddress.ip_network(cluster_cidr, strict=False))]
    plugin["ipam"] = ipam
    return {"cniVersion": "1.0.0", "name": NETWORK_NAME, "plugins": [plugin]}


def write_conflist(conf_dir: str, doc: dict[str, Any], name: str = CONF_NAME) -> bool:
    """Write atomically; True when the file changed."""
    path = Path(conf_dir, name)
    data = json.dumps(doc, indent=2) + "\n"
    try:
        if path.read_text() == data:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{name}.tmp")
    tmp.write_text(data)
    os.replace(tmp, path)
    return True
