"""`kubeling dns`: the cluster DNS server (what CoreDNS is to a kubeadm cluster)."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import socket
import sys

from prometheus_client import REGISTRY

from clusterdns import publish
from clusterdns.forward import Forwarder, parse_upstream, upstreams_from_resolv_conf
from clusterdns.records import ClusterRecords
from clusterdns.server import DNSServer
from kubeling import eventloop, metrics_server
from kubeling.client import Client
from kubeling.informer import Informer
from kubeling.resources import lookup

log = logging.getLogger("kubeling.dns")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kubeling dns", description="Serve the cluster DNS.")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig of the API server")
    p.add_argument("--bind", default="0.0.0.0",
                   help="address to listen on (UDP and TCP); `auto`: that of the default route's interface")
    p.add_argument("--port", type=int, default=53, help="port to listen on; 0 picks a free one")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--ttl", type=int, default=5, help="TTL of the cluster's records")
    p.add_argument("--upstream", action="append", default=[],
                   help="upstream resolver ip[:port] (repeatable); default: /etc/resolv.conf's")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf")
    p.add_argument("--cache-size", type=int, default=10000, help="forwarded answers kept at most")
    p.add_argument("--publish-address", default="",
                   help="write the kube-dns Service and this server's EndpointSlice with this address "
                        "(`auto`: the address of the default route's interface)")
    p.add_argument("--service-cidr", default="10.96.0.0/12", help="kube-dns gets its tenth address")
    p.add_argument("--node-name", default=socket.gethostname())
    p.add_argument("--metrics-bind-address", default="127.0.0.1:9153",
                   help="host:port of /metrics (CoreDNS's prometheus plugin port); plain HTTP without "
                        "authentication, so a loopback host only; port 0 picks one; empty: none")
    p.add_argument("--ready-file", default="",
                   help="write {\"port\": N, \"metrics_port\": M} here once serving (tests)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.metrics_bind_address:
        host, _, port = args.metrics_bind_address.rpartition(":")
        if not port.isdigit() or not metrics_server.is_loopback(host.strip("[]")):
            p.error("--metrics-bind-address must be a loopback host:port: /metrics has no authentication")
    return args


def _default_route_ip() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 53))  # TEST-NET-1: asks the kernel the source, sends nothing
            return s.getsockname()[0]
        except OSError:  # no default route: a machine alone, where loopback still works
            return "127.0.0.1"


async def _serve(args: argparse.Namespace) -> None:
    client = Client.from_kubeconfig(args.kubeconfig, user_agent="kubeling-dns")
    records = ClusterRecords(args.cluster_domain, ttl=args.ttl)
    upstreams = [parse_upstream(u) for u in args.upstream] or upstreams_from_resolv_conf(args.resolv_conf)
    server = DNSServer(records, Forwarder(upstreams, cache_size=args.cache_size))
    REGISTRY.register(server.metrics)
    informers = [
        Informer(client, lookup("services"),  # type: ignore[arg-type]
                 on_add=records.set_service, on_update=lambda _o, n: records.set_service(n),
                 on_delete=records.delete_service),
        Informer(client, lookup("endpointslices"),  # type: ignore[arg-type]
                 on_add=records.set_slice, on_update=lambda _o, n: records.set_slice(n),
                 on_delete=lambda o: records.set_slice(o, deleted=True)),
        Informer(client, lookup("pods"),  # type: ignore[arg-type]
                 on_add=records.set_pod, on_update=lambda _o, n: records.set_pod(n),
                 on_delete=lambda o: records.set_pod(o, deleted=True)),
    ]
    tasks = [asyncio.create_task(i.run()) for i in informers]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    published = False
    metrics = None
    try:
        # Answer only once the caches are full: an empty cache would say NXDOMAIN for real names.
        await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in informers)), 60)
        bind = _default_route_ip() if args.bind == "auto" else args.bind
        port = await server.start(bind, args.port)
        log.info("serving %s on %s:%d (UDP+TCP), upstreams %s", args.cluster_domain, bind, port,
                 ", ".join(f"{h}:{p}" for h, p in upstreams) or "none")
        metrics_port = 0
        if args.metrics_bind_address:
            mhost, _, mport = args.metrics_bind_address.rpartition(":")
            metrics = await metrics_server.start(mhost.strip("[]"), int(mport))
            metrics_port = metrics_server.bound_port(metrics) if metrics is not None else 0
        if args.publish_address:
            ip = _default_route_ip() if args.publish_address == "auto" else args.publish_address
            await publish.publish(client, publish.tenth_address(args.service_cidr), args.node_name, ip, port)
            published = True
        if args.ready_file:
            with open(args.ready_file, "w") as f:
                json.dump({"port": port, "metrics_port": metrics_port}, f)
        await stop.wait()
    finally:
        if published:
            try:  # stop getting queries through the ClusterIP before the port closes
                await asyncio.wait_for(publish.unpublish(client, args.node_name), 5)
            except Exception as exc:
                log.warning("could not remove our EndpointSlice: %s", exc)
        await server.stop()
        if metrics is not None:
            await metrics.cleanup()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    eventloop.run(_serve(args))  # uvloop: about four times the datagrams per second of asyncio's
    return 0


if __name__ == "__main__":
    sys.exit(main())
