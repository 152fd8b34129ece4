"""The node agent: wires the runtime (with the pod network behind it), pod
workers, PLEG, status, node registration and the logs endpoint together."""
from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from agent import dns_config, metrics
from agent.checkpoints import CheckpointStore
from agent.cni import CniInvoker
from agent.cni_config import CONF_NAME, conflist, write_conflist
from agent.events import EventRecorder
from agent.logs_server import LogsServer, ensure_serving_cert
from agent.node_ip import node_ip
from agent.node_routes import NodeRoutesController
from agent.node_status import NodeStatusReporter
from agent.pleg import Pleg
from agent.pod_sync import PodSyncer, SyncConfig
from agent.pod_workers import PodWorkers
from agent.probe_results import ProbeResults
from agent.projected import ObjectVolumes
from agent.prober import Prober
from agent.runtime.select import make_runtime
from agent.runtime.sandbox_network import SandboxNetwork
from agent.runtime.types import RuntimeError_, Runtime
from agent.status_manager import StatusManager
from kubeling import errors, pki
from kubeling.client import Client, resource_path
from kubeling.informer import Informer
from kubeling.resources import lookup
from kubeling.tasks import guarded

log = logging.getLogger("agent")
PODS = lookup("pods")
CONFIGMAPS = lookup("configmaps")
SECRETS = lookup("secrets")
SERVICEACCOUNTS = lookup("serviceaccounts")
RESYNC_PERIOD = 10.0


@dataclass
class AgentConfig:
    kubeconfig: str | None
    node_name: str
    docker_host: str = "unix:///var/run/docker.sock"
    # kubelet's --container-runtime-endpoint: a CRI runtime instead of Docker (agent/runtime/select.py).
    container_runtime_endpoint: str | None = None
    pod_logs_dir: str = "/var/log/pods"   # CRI log files (kubelet's /var/log/pods)
    cgroup_root: str = "/"                # pods' cgroups go under <root>/kubepods
    cni_conf_dir: str = "/etc/cni/net.d"
    cni_bin_dirs: list[str] = field(default_factory=lambda: ["/opt/cni/bin", "/usr/lib/cni"])
    root_dir: str = "/var/lib/kubeling/agent"
    logs_port: int = 10250
    logs_address: str = "0.0.0.0"
    pod_cidr: str | None = None
    node_ip: str | None = None
    bridge_type: str = "bridge"
    ipam_type: str = "host-local"
    cni_conf_name: str = CONF_NAME
    pause_image: str = "kubeling/pause:3.9"
    always_pull: bool = False
    status_period: float = 10.0
    cluster_cidr: str | None = "10.244.0.0/16"  # pod traffic to it is not masqueraded
    node_routes: bool = True  # host-gw routes to the other Nodes' pod CIDRs
    route_sync_period: float = 10.0
    # The agent's server is HTTPS only (see logs_server): its serving certificate
    # (self-signed under root_dir/pki when not given) and the CA of client certificates.
    tls_cert: str | None = None
    tls_key: str | None = None
    client_ca: str | None = None
    # kubelet's --cluster-dns / --cluster-domain / --resolv-conf: pods' resolv.conf (agent/dns_config.py).
    cluster_dns: list[str] = field(default_factory=list)
    cluster_domain: str = "cluster.local"
    resolv_conf: str = "/etc/resolv.conf"


class Agent:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.client = Client.from_kubeconfig(cfg.kubeconfig, user_agent=f"kubeling-agent/{cfg.node_name}")
        self.host_ip = node_ip(cfg.node_ip, self.client.server)
        # CNI and the sandbox checkpoints live behind the Docker runtime, as dockershim's did.
        self.sandbox_network = SandboxNetwork(
            CniInvoker(cfg.cni_conf_dir, cfg.cni_bin_dirs, os.path.join(cfg.root_dir, "cni")),
            CheckpointStore(cfg.root_dir), os.path.join(cfg.cni_conf_dir, cfg.cni_conf_name))
        self.runtime: Runtime = self._make_runtime()
        self.probes = ProbeResults()
        self.prober = Prober(self.probes, self.runtime.exec,
                             lambda pod, reason, msg, typ, name: self.events.pod_event(pod, typ, reason, msg, name))
        self.events = EventRecorder(self.client, cfg.node_name)
        self.status = StatusManager(self.client)
        self.syncer = PodSyncer(
            SyncConfig(cfg.node_name, self.host_ip, cfg.root_dir, cfg.pause_image, cfg.always_pull,
                       dns=dns_config.ClusterDNS(cfg.cluster_dns, cfg.cluster_domain,
                                                 dns_config.read_host_resolv_conf(cfg.resolv_conf))
                       if cfg.cluster_dns else None),
            self.runtime, self.status, self.events, self.probes,
            self._get_configmap, self.network_ready, self.prober,
            object_volumes=ObjectVolumes(cfg.root_dir, self._get_configmap, self._get_secret, self._request_token,
                                         cfg.node_name, self.host_ip, memory_backed=True),
            get_secret=self._get_secret)
        self._by_uid: dict[str, tuple[str, str]] = {}
        self.informer = Informer(self.client, PODS, field_selector=f"spec.nodeName={cfg.node_name}",
                                 on_add=self._pod_changed, on_update=self._pod_updated,
                                 on_delete=self._pod_deleted)
        # kubelet_pod_worker_duration_seconds around each sync; the pod start SLI from the watch.
        self.workers = PodWorkers(metrics.TimedSyncer(self.syncer), self._get_pod_by_uid)
        self.pod_starts = metrics.PodStartTracker()
        self.pleg = Pleg(self.runtime, self._runtime_changed)
        self.node = NodeStatusReporter(
            self.client, self.runtime, cfg.node_name, self.host_ip, root_dir=cfg.root_dir,
            logs_port=cfg.logs_port, pod_cidr=cfg.pod_cidr, on_pod_cidr=self._pod_cidr,
            runtime_healthy=lambda: self.pleg.healthy, network_ready=self.network_ready,
            period=cfg.status_period)
        self.routes = NodeRoutesController(self.client, cfg.node_name, self.node.pod_cidr, self.host_ip,
                                           period=cfg.route_sync_period)
        self.logs = LogsServer(self.runtime, self.informer.get)
        self.probes.on_change = self._probe_changed
        self.probes.on_liveness_failure = self._liveness_failed
        self._tasks: list[asyncio.Task] = []
        self.ready = asyncio.Event()

    # ---- wiring ----------------------------------------------------------------

    def _make_runtime(self) -> Runtime:
        """The container runtime: the one place it is chosen."""
        return make_runtime(self.cfg, self.sandbox_network)

    def network_ready(self) -> bool:
        return self.runtime.network_ready()

    def _pod_cidr(self, cidr: str) -> None:
        doc = conflist(cidr, bridge_type=self.cfg.bridge_type, ipam_type=self.cfg.ipam_type,
                       ipam_data_dir=os.path.join(self.cfg.root_dir, "ipam"), cluster_cidr=self.cfg.cluster_cidr)
        if write_conflist(self.cfg.cni_conf_dir, doc, self.cfg.cni_conf_name):
            log.info("wrote %s for pod CIDR %s", self.cfg.cni_conf_name, cidr)

    async def _get_configmap(self, ns: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.client.get(CONFIGMAPS, name, ns)
        except errors.ApiError as exc:
            if exc.code == 404:
                return None
            raise

    async def _get_secret(self, ns: str, name: str) -> dict[str, Any] | None:
        # Read on every sync (no watch): the node authorizer lets a node get only the
        # Secrets of its pods, by name.
        try:
            return await self.client.get(SECRETS, name, ns)
        except errors.ApiError as exc:
            if exc.code == 404:
                return None
            raise

    async def _request_token(self, ns: str, service_account: str, body: dict[str, Any]) -> dict[str, Any]:
        """TokenRequest with the node's own credentials, bound to the pod in `body`."""
        return await self.client.request(
            "POST", resource_path(SERVICEACCOUNTS, ns, service_account, "token"), body)

    def _get_pod_by_uid(self, uid: str) -> dict[str, Any] | None:
        key = self._by_uid.get(uid)
        if key is None:
            return None
        pod = self.informer.get(*key)
        if pod is None or pod["metadata"].get("uid") != uid:
            return None
        return pod

    def _pod_changed(self, pod: dict[str, Any]) -> None:
        self.pod_starts.observe(pod)
        meta = pod["metadata"]
        self._by_uid[meta["uid"]] = (meta.get("namespace", ""), meta["name"])
        self.workers.update(meta["uid"])

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if old["metadata"].get("uid") != new["metadata"].get("uid"):
            self._pod_deleted(old)
        self._pod_changed(new)

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"].get("uid")
        if uid:
            self.pod_starts.forget(uid)
            self._by_uid.pop(uid, None)
            self.workers.update(uid)

    def _runtime_changed(self, uid: str) -> None:
        if uid in self._by_uid or uid in self.workers or self.informer.synced.is_set():
            self.workers.update(uid)

    def _probe_changed(self, uid: str) -> None:
        if uid in self._by_uid:
            self.workers.update(uid)

    def _liveness_failed(self, uid: str, container: str, message: str) -> None:
        # The pod's worker stops the container in its turn (not a task of its own
        # racing the worker's syncs and kills).
        if uid in self._by_uid:
            self.workers.kill_container(uid, container, message)

    async def sandbox_pod_uids(self) -> set[str]:
        try:
            return {sb.pod_uid for sb in await self.runtime.list_sandboxes()}
        except RuntimeError_:
            # Docker not up yet: the checkpoints alone still name the pods to clean.
            return {cp.pod_uid for cp in self.sandbox_network.checkpointed()}

    async def _release_unowned_sandboxes(self) -> None:
        try:
            for sandbox_id in await self.runtime.release_unowned_sandboxes():
                log.warning("sandbox %s: its checkpoint was corrupt and its container gone; "
                            "released its network", sandbox_id)
        except Exception as exc:  # the runtime away: the next start tries again
            log.warning("releasing sandboxes of corrupt checkpoints: %s", exc)

    # ---- running -----------------------------------------------------------------

    async def _register(self) -> None:
        while True:
            try:
                await self.node.register()
                return
            except Exception as exc:
                log.warning("node registration failed: %s; retrying", exc)
                await asyncio.sleep(2)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_PERIOD)
            for uid in list(self._by_uid):
                self.workers.update(uid)

    async def _until(self, event: asyncio.Event) -> None:
        """Wait for `event`, failing at once when a task started so far fails meanwhile."""
        waiter = asyncio.create_task(event.wait())
        try:
            await asyncio.wait({waiter, *self._tasks}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not event.is_set():
            await asyncio.gather(*self._tasks)   # raises the failure
            raise RuntimeError("agent tasks ended before the pod informer synced")

    async def run(self) -> None:
        cert, key = self.cfg.tls_cert, self.cfg.tls_key
        if not (cert and key):
            cert, key = ensure_serving_cert(self.cfg.root_dir, [self.cfg.node_name, self.host_ip])
        await self.logs.start(self.cfg.logs_address, self.cfg.logs_port,
                              pki.server_tls_context(cert, key, self.cfg.client_ca))
        try:
            await self.pleg.relist()
            self.pleg.healthy = True
        except Exception as exc:
            log.warning("Docker is not reachable yet: %s", exc)
        await self._register()
        # Every long-lived task is guarded: one that ends on its own fails the agent (the
        # gather below), so systemd restarts it rather than it running with a hole.
        # The status writer comes first: pod workers' final deletes wait on it.
        self._tasks += [guarded(self.status.run(), "status-writer"),
                        guarded(self.informer.run(), "pod-informer")]
        await self._until(self.informer.synced)
        # Adopt what the runtime shows (its remembered sandboxes too): pods of this node
        # resume in their workers; anything whose pod left the API is torn down.
        known = set(self._by_uid)
        leftovers = (self.pleg.pod_uids() | await self.sandbox_pod_uids()) - known
        for uid in leftovers:
            log.info("tearing down pod %s: gone from the API", uid)
            self.workers.update(uid)
        await self._release_unowned_sandboxes()
        self._tasks += [guarded(self.pleg.run_relist(), "pleg-relist"),
                        guarded(self.pleg.run_events(), "pleg-events"),
                        guarded(self.node.run(), "node-status"),
                        guarded(self._resync(), "resync")]
        if self.cfg.node_routes:
            self._tasks.append(guarded(self.routes.run(), "node-routes"))
        self.ready.set()
        log.info("agent for node %s running (host IP %s, logs port %d)", self.cfg.node_name,
                 self.host_ip, self.cfg.logs_port)
        await asyncio.gather(*self._tasks)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.workers.stop()
        await self.prober.stop()
        await self.events.drain()
        await self.logs.stop()
        await self.runtime.close()
        await self.client.close()
