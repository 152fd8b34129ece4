"""The controller manager: `kubeling controller-manager --kubeconfig ...`."""
from __future__ import annotations

import argparse
import asyncio
import logging

from kubeling.client import Client
from kubeling.resources import lookup

from .csr_signer import CSRSigningController
from .endpoints import EndpointsController
from .endpointslices import EndpointSliceController
from .nodeipam import NodeIpamController
from .namespace import NamespaceController
from .deployment import DeploymentController
from .garbage_collector import GarbageCollector
from .replicaset import ReplicaSetController
from kubeling.shared_informers import SharedInformers
from kubeling.tasks import guarded


async def main(args: argparse.Namespace) -> None:
    client = Client.from_kubeconfig(args.kubeconfig, user_agent="kubeling-controller-manager")
    # The controllers share one informer per resource (each resource watched once).
    informers = SharedInformers(client)
    controllers = [NodeIpamController(client, args.cluster_cidr, args.node_cidr_mask_size),
                   NamespaceController(client), EndpointsController(client, informers),
                   EndpointSliceController(client, informers)]
    controllers += [ReplicaSetController(client, informers),
                    ReplicaSetController(client, informers, lookup("replicationcontrollers")),
                    DeploymentController(client, informers), GarbageCollector(client, informers)]
    # admin/edit/view gather the rules of the ClusterRoles labelled aggregate-to-*.
    from .clusterrole_aggregation import ClusterRoleAggregationController
    controllers.append(ClusterRoleAggregationController(client, informers))
    if args.cluster_signing_cert_file:
        # Nodes that join get their client certificates from here.
        controllers.append(CSRSigningController(client, args.cluster_signing_cert_file,
                                                args.cluster_signing_key_file))
    # Every namespace gets its `default` ServiceAccount and (with --root-ca-file) kube-root-ca.crt.
    from pathlib import Path

    from .root_ca_publisher import RootCACertPublisher
    from .serviceaccounts import ServiceAccountsController
    controllers.append(ServiceAccountsController(client))
    if args.root_ca_file:
        controllers.append(RootCACertPublisher(client, Path(args.root_ca_file).read_bytes()))
    # Workload controllers share one informer per resource (client-go's SharedInformerFactory).
    shared = informers
    from .cronjob import CronJobController
    from .daemonset import DaemonSetController
    from .job import JobController
    from .statefulset import StatefulSetController
    from .ttl_after_finished import TTLAfterFinishedController
    controllers += [DaemonSetController(client, shared), StatefulSetController(client, shared),
                    JobController(client, shared), CronJobController(client, shared),
                    TTLAfterFinishedController(client, shared)]
    try:
        # Guarded: a controller or informer loop that ends fails the process (systemd restarts it).
        await asyncio.gather(guarded(shared.run(), "shared informers"),
                             *(guarded(c.run(), type(c).__name__) for c in controllers))
    finally:
        await client.close()


parser = argparse.ArgumentParser(prog="kubeling controller-manager")
parser.add_argument("--kubeconfig", default=None)
parser.add_argument("--cluster-cidr", default="10.244.0.0/16")
parser.add_argument("--node-cidr-mask-size", type=int, default=24)
parser.add_argument("--cluster-signing-cert-file", default=None,
                    help="CA certificate that signs approved node client CSRs (with --cluster-signing-key-file)")
parser.add_argument("--cluster-signing-key-file", default=None, help="private key of --cluster-signing-cert-file")
parser.add_argument("--root-ca-file", default=None,
                    help="the CA that verifies the apiserver, published as ConfigMap kube-root-ca.crt in every namespace")
args = parser.parse_args()
if bool(args.cluster_signing_cert_file) != bool(args.cluster_signing_key_file):
    parser.error("--cluster-signing-cert-file and --cluster-signing-key-file go together")
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
asyncio.run(main(args))
