"""`kubeling proxy`: program this node's service rules; `--cleanup` removes them all."""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import signal
import sys

from agent.proxy import rules
from agent.proxy.iptables import Iptables, cleanup_all_backends
from agent.proxy.model import USE_TERMINATING_DEFAULT
from agent.proxy.proxier import Proxier
from kubeling.client import Client
from kubeling.tasks import guarded


def _cidr(text: str) -> str:
    net = ipaddress.ip_network(text, strict=False)
    if net.version != 4:
        raise argparse.ArgumentTypeError("only IPv4 CIDRs are supported")
    return str(net)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kubeling proxy", description="Program iptables service rules.")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig of the API server")
    p.add_argument("--node-name", default="", help="this node's name (for logs)")
    p.add_argument("--cluster-cidr", type=_cidr, default="10.244.0.0/16", help="the pod network")
    p.add_argument("--service-cidr", type=_cidr, default="10.96.0.0/12", help="the ClusterIP range")
    p.add_argument("--sync-period", type=float, default=30.0, help="seconds between full resyncs")
    p.add_argument("--min-sync-interval", type=float, default=0.0,
                   help="seconds at least between the starts of two syncs (changes in between coalesce)")
    p.add_argument("--iptables-backend", choices=["nft", "legacy"], default=None,
                   help="force a backend instead of detecting the one that holds the host's rules")
    # Off by default (model.USE_TERMINATING_DEFAULT): a deleted pod must stop getting new
    # connections before it gets SIGTERM; with it, serving terminating endpoints are used while none is ready.
    p.add_argument("--terminating-fallback", action=argparse.BooleanOptionalAction, default=USE_TERMINATING_DEFAULT,
                   help="send traffic to serving terminating endpoints when no endpoint is ready")
    p.add_argument("--cleanup", action="store_true", help="remove all our chains and jump rules, then exit")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    client = Client.from_kubeconfig(args.kubeconfig, user_agent="kubeling-proxy")
    ipt = Iptables(args.iptables_backend)
    cfg = rules.Config(cluster_cidr=args.cluster_cidr, service_cidr=args.service_cidr,
                       use_terminating=args.terminating_fallback)
    logging.getLogger("kubeling.proxy").info(
        "node %s: %s backend, cluster CIDR %s, service CIDR %s", args.node_name or "-", ipt.backend,
        cfg.cluster_cidr, cfg.service_cidr)
    proxier = Proxier(client, cfg, ipt, sync_period=args.sync_period, min_sync_interval=args.min_sync_interval)
    # Guarded: the proxier ending on its own fails the process (systemd restarts it).
    task = guarded(proxier.run(), "proxier")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # The rules stay on exit, as kube-proxy's do: traffic keeps flowing across a restart.
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        # The signal handler cancelled the proxier: a clean stop. A cancellation of this
        # coroutine itself is not ours to swallow.
        current = asyncio.current_task()
        if not task.cancelled() or (current is not None and current.cancelling()):
            raise
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.cleanup:
        if args.iptables_backend:
            removed = {args.iptables_backend: Iptables(args.iptables_backend).cleanup()}
        else:
            removed = cleanup_all_backends()
        print(json.dumps({"removed": removed}))
        return 0
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
