"""`python -m agent`: the node agent for one node."""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import socket

from agent.agent import Agent, AgentConfig


def _ip(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IPv4 address: {text!r}") from None


def _cidr(text: str) -> str:
    try:
        return str(ipaddress.IPv4Network(text, strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IPv4 CIDR: {text!r}") from None


def parse_args(argv: list[str] | None = None) -> tuple[AgentConfig, bool]:
    """The agent's configuration, and whether to tear the node down instead of running."""
    p = argparse.ArgumentParser(prog="kubeling agent", description="kubeling node agent")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig of the API server")
    p.add_argument("--node-name", default=socket.gethostname())
    p.add_argument("--docker-host", default="unix:///var/run/docker.sock")
    p.add_argument("--container-runtime-endpoint", default=None,
                   help="a CRI runtime's socket (unix:///run/kubeling/containerd/containerd.sock); "
                        "unset: Docker Engine at --docker-host")
    p.add_argument("--pod-logs-dir", default="/var/log/pods",
                   help="where a CRI runtime writes the pods' container logs")
    p.add_argument("--cgroup-root", default="/", help="pods' cgroups go under <cgroup-root>/kubepods (CRI runtime)")
    p.add_argument("--cni-conf-dir", default="/etc/cni/net.d")
    p.add_argument("--cni-bin-dir", default="/opt/cni/bin:/usr/lib/cni", help="colon-separated plugin dirs")
    p.add_argument("--root-dir", default="/var/lib/kubeling/agent", help="checkpoints, CNI cache, volumes")
    p.add_argument("--logs-port", type=int, default=10250)
    p.add_argument("--logs-address", default="0.0.0.0")
    p.add_argument("--tls-cert-file", default=None,
                   help="serving certificate of the agent's HTTPS port (default: self-signed under --root-dir/pki)")
    p.add_argument("--tls-private-key-file", default=None)
    p.add_argument("--client-ca-file", default=None,
                   help="CA of the apiserver's kubelet client certificate; without it the agent's "
                        "logs/exec/port-forward port refuses everyone")
    p.add_argument("--pod-cidr", default=None, help="use this pod CIDR instead of the Node's spec.podCIDR")
    p.add_argument("--node-ip", type=_ip, default=None,
                   help="InternalIP to report (default: the source address towards the API server, "
                        "never loopback)")
    p.add_argument("--cluster-cidr", type=_cidr, default="10.244.0.0/16",
                   help="the pod network of the whole cluster: pod traffic to it is not masqueraded")
    p.add_argument("--node-routes", action=argparse.BooleanOptionalAction, default=True,
                   help="route the other Nodes' pod CIDRs via their InternalIPs (host-gw)")
    p.add_argument("--route-sync-period", type=float, default=10.0,
                   help="seconds between re-checks of the node routes")
    p.add_argument("--cni-bridge-type", default="kubeling-bridge", help="plugin type in the written conflist")
    p.add_argument("--cni-ipam-type", default="kubeling-ipam")
    p.add_argument("--cni-conf-name", default="10-kubeling.conflist")
    p.add_argument("--pause-image", default="kubeling/pause:3.9")
    p.add_argument("--always-pull", action="store_true",
                   help="pull images with imagePullPolicy Always even when present (needs a registry)")
    p.add_argument("--node-status-period", type=float, default=10.0)
    p.add_argument("--cluster-dns", default="", help="comma-separated cluster DNS addresses for pods' resolv.conf "
                   "(kubelet's; unset: pods keep the runtime's resolv.conf)")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf", help="the host file dnsPolicy Default copies")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--teardown", action="store_true",
                   help="remove every pod of this node (containers, network, state) and the pod network, then exit")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = AgentConfig(
        kubeconfig=a.kubeconfig, node_name=a.node_name, docker_host=a.docker_host,
        cni_conf_dir=a.cni_conf_dir, cni_bin_dirs=[d for d in a.cni_bin_dir.split(":") if d],
        root_dir=a.root_dir, logs_port=a.logs_port, logs_address=a.logs_address, pod_cidr=a.pod_cidr,
        node_ip=a.node_ip, bridge_type=a.cni_bridge_type, ipam_type=a.cni_ipam_type,
        cni_conf_name=a.cni_conf_name, pause_image=a.pause_image, always_pull=a.always_pull,
        status_period=a.node_status_period, cluster_cidr=a.cluster_cidr, node_routes=a.node_routes,
        route_sync_period=a.route_sync_period, tls_cert=a.tls_cert_file, tls_key=a.tls_private_key_file,
        client_ca=a.client_ca_file, cluster_dns=[s for s in a.cluster_dns.split(",") if s],
        cluster_domain=a.cluster_domain, resolv_conf=a.resolv_conf,
        container_runtime_endpoint=a.container_runtime_endpoint, pod_logs_dir=a.pod_logs_dir,
        cgroup_root=a.cgroup_root)
    return cfg, a.teardown


async def amain(cfg: AgentConfig) -> None:
    agent = Agent(cfg)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = asyncio.create_task(agent.run())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    # Containers keep running: an agent restart adopts them.
    runner.cancel()
    stopper.cancel()
    await asyncio.gather(runner, stopper, return_exceptions=True)
    await agent.close()
    if runner in done and runner.exception():
        raise runner.exception()


def main(argv: list[str] | None = None) -> None:
    cfg, teardown = parse_args(argv)
    if teardown:
        from agent.teardown import teardown_node
        n = asyncio.run(teardown_node(cfg))
        print(f"removed {n} pod(s) and the pod network")
        return
    asyncio.run(amain(cfg))


if __name__ == "__main__":
    main()
