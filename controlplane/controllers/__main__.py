"""The controller manager: `kubeling controller-manager --kubeconfig ...`."""
from __future__ import annotations

import argparse
import asyncio
import logging

from kubeling.client import Client

from .csr_signer import CSRSigningController
from .endpoints import EndpointsController
from .endpointslices import EndpointSliceController
from .nodeipam import NodeIpamController
from .namespace import NamespaceController


async def main(args: argparse.Namespace) -> None:
    client = Client.from_kubeconfig(args.kubeconfig, user_agent="kubeling-controller-manager")
    controllers = [NodeIpamController(client, args.cluster_cidr, args.node_cidr_mask_size),
                   NamespaceController(client), EndpointsController(client),
                   EndpointSliceController(client)]
    if args.cluster_signing_cert_file:
        # Nodes that join get their client certificates from here.
        controllers.append(CSRSigningController(client, args.cluster_signing_cert_file,
                                                args.cluster_signing_key_file))
    try:
        await asyncio.gather(*(c.run() for c in controllers))
    finally:
        await client.close()


parser = argparse.ArgumentParser(prog="kubeling controller-manager")
parser.add_argument("--kubeconfig", default=None)
parser.add_argument("--cluster-cidr", default="10.244.0.0/16")
parser.add_argument("--node-cidr-mask-size", type=int, default=24)
parser.add_argument("--cluster-signing-cert-file", default=None,
                    help="CA certificate that signs approved node client CSRs (with --cluster-signing-key-file)")
parser.add_argument("--cluster-signing-key-file", default=None, help="private key of --cluster-signing-cert-file")
args = parser.parse_args()
if bool(args.cluster_signing_cert_file) != bool(args.cluster_signing_key_file):
    parser.error("--cluster-signing-cert-file and --cluster-signing-key-file go together")
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
asyncio.run(main(args))
