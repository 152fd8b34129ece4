"""The controller manager: `kubeling controller-manager --kubeconfig ...`."""
from __future__ import annotations

import argparse
import asyncio
import logging

from kubeling import metrics_server
from kubeling.client import Client
from kubeling.resources import lookup

from .csr_signer import CSRSigningController
from .endpoints import EndpointsController
from .endpointslices import EndpointSliceController
from .node_lifecycle import NodeLifecycleController
from .nodeipam import NodeIpamController
from .namespace import NamespaceController
from .deployment import DeploymentController
from .garbage_collector import GarbageCollector
from .replicaset import ReplicaSetController
from .workqueue import WorkQueue
from kubeling.shared_informers import SharedInformers
from kubeling.tasks import guarded


# The names kube-controller-manager gives its controllers' work queues (the `name` label
# of the workqueue_* metrics).
QUEUE_NAMES = {
    "ReplicaSetController": "replicaset", "DeploymentController": "deployment",
    "GarbageCollector": "garbage_collector_attempt_to_delete",
    "ClusterRoleAggregationController": "ClusterRoleAggregator", "EndpointsController": "endpoint",
    "EndpointSliceController": "endpoint_slice", "ServiceAccountsController": "serviceaccount",
    "RootCACertPublisher": "root_ca_cert_publisher", "DaemonSetController": "daemonset",
    "StatefulSetController": "statefulset", "JobController": "job", "CronJobController": "cronjob",
    "TTLAfterFinishedController": "ttl_jobs_to_delete",
}


def name_queues(controllers: list[object]) -> None:
    """Give each controller's work queue its Kubernetes name, so it reports metrics."""
    for c in controllers:
        queue = getattr(c, "queue", None)
        if not isinstance(queue, WorkQueue) or queue.name:  # the CSR signer's is a plain asyncio.Queue
            continue
        cls = type(c).__name__
        name = QUEUE_NAMES.get(cls, cls)
        if getattr(getattr(c, "res", None), "plural", "") == "replicationcontrollers":
            name = "replicationmanager"
        queue.name = name


async def main(args: argparse.Namespace) -> None:
    client = Client.from_kubeconfig(args.kubeconfig, user_agent="kubeling-controller-manager")
    # The controllers share one informer per resource (each resource watched once).
    informers = SharedInformers(client)
    controllers = [NodeIpamController(client, args.cluster_cidr, args.node_cidr_mask_size),
                   NodeLifecycleController(client, args.node_monitor_grace_period, args.node_monitor_period),
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
    name_queues(controllers)
    metrics = None
    if args.metrics_port >= 0:
        metrics = await metrics_server.start(args.bind_address, args.metrics_port)
    try:
        # Guarded: a controller or informer loop that ends fails the process (systemd restarts it).
        await asyncio.gather(guarded(shared.run(), "shared informers"),
                             *(guarded(c.run(), type(c).__name__) for c in controllers))
    finally:
        if metrics is not None:
            await metrics.cleanup()
        await client.close()


def seconds(value: str) -> float:
    """A duration flag as kube-controller-manager takes it ("40s", "1m") or plain seconds."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in sorted(units, key=len, reverse=True):
        if value.endswith(unit):
            return float(value[:-len(unit)]) * units[unit]
    return float(value)


parser = argparse.ArgumentParser(prog="kubeling controller-manager")
parser.add_argument("--kubeconfig", default=None)
parser.add_argument("--cluster-cidr", default="10.244.0.0/16")
parser.add_argument("--node-cidr-mask-size", type=int, default=24)
parser.add_argument("--node-monitor-grace-period", type=seconds, default=40.0,
                    help="how long a Node may stay silent before its conditions go Unknown (e.g. 40s)")
parser.add_argument("--node-monitor-period", type=seconds, default=5.0,
                    help="how often Nodes are checked for silence (e.g. 5s)")
parser.add_argument("--cluster-signing-cert-file", default=None,
                    help="CA certificate that signs approved node client CSRs (with --cluster-signing-key-file)")
parser.add_argument("--cluster-signing-key-file", default=None, help="private key of --cluster-signing-cert-file")
parser.add_argument("--root-ca-file", default=None,
                    help="the CA that verifies the apiserver, published as ConfigMap kube-root-ca.crt in every namespace")
parser.add_argument("--bind-address", default="127.0.0.1",
                    help="address of the /metrics server (plain HTTP without authentication: loopback only)")
parser.add_argument("--metrics-port", type=int, default=10257,
                    help="port of the /metrics server (kube-controller-manager's 10257); 0: a free one, "
                         "-1: none")
args = parser.parse_args()
if not metrics_server.is_loopback(args.bind_address):
    parser.error("--bind-address must be a loopback address: /metrics is served without authentication")
if bool(args.cluster_signing_cert_file) != bool(args.cluster_signing_key_file):
    parser.error("--cluster-signing-cert-file and --cluster-signing-key-file go together")
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
asyncio.run(main(args))
