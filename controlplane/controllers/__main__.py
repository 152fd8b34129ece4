"""The controller manager: `kubeling controller-manager --kubeconfig ...`."""
from __future__ import annotations

import argparse
import asyncio
import logging

from kubeling.client import Client

from .endpoints import EndpointsController
from .endpointslices import EndpointSliceController
from .nodeipam import NodeIpamController
from .namespace import NamespaceController


async def main(args: argparse.Namespace) -> None:
    client = Client.from_kubeconfig(args.kubeconfig, user_agent="kubeling-controller-manager")
    controllers = [NodeIpamController(client, args.cluster_cidr, args.node_cidr_mask_size),
                   NamespaceController(client), EndpointsController(client),
                   EndpointSliceController(client)]
    try:
        await asyncio.gather(*(c.run() for c in controllers))
    finally:
        await client.close()


parser = argparse.ArgumentParser(prog="kubeling controller-manager")
parser.add_argument("--kubeconfig", default=None)
parser.add_argument("--cluster-cidr", default="10.244.0.0/16")
parser.add_argument("--node-cidr-mask-size", type=int, default=24)
args = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
asyncio.run(main(args))
