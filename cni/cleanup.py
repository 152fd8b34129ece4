"""Explicit teardown of a kubeling-bridge network: bridge, our chains, allocation files.

`python -m cni.cleanup --bridge BR [--network NAME] [--data-dir DIR]`
"""
from __future__ import annotations

import argparse
import os
import shutil

from cni import iptables_rules
from cni.ipam_config import DEFAULT_DATA_DIR


def remove_network(bridge: str, network: str | None = None, data_dir: str = DEFAULT_DATA_DIR) -> None:
    """Delete the bridge, every rule/chain kubeling-cni made for it and (with `network`) the
    network's allocation directory. Safe to call when some or all of it is already gone."""
    from cni import netlink_ops

    ns = netlink_ops.Namespace()
    try:
        link = netlink_ops.get_link(ns.ipr, bridge)
        if link is not None and link.kind == "bridge":
            netlink_ops.delete_index(ns.ipr, link.index)
    finally:
        ns.close()
    iptables_rules.remove_bridge_rules(bridge)
    if network:
        if not network or "/" in network or network in (".", ".."):
            raise ValueError(f"invalid network name {network!r}")
        shutil.rmtree(os.path.join(data_dir, network), ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cni.cleanup")
    parser.add_argument("--bridge", required=True)
    parser.add_argument("--network")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    opts = parser.parse_args(argv)
    remove_network(opts.bridge, opts.network, opts.data_dir)


if __name__ == "__main__":
    main()
