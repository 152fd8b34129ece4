"""`kubeling proxy`: program this node's service rules; `--cleanup` removes them all.

Two modes, as kube-proxy's: `iptables` (iptables-restore batches) and `nftables` (one `nft -f`
transaction per sync, in a table of our own). Without --proxy-mode: where the host's iptables
is itself the nft backend, the one measured faster there (FASTER_ON_NFT); iptables otherwise."""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import signal
import sys

from agent.events import EventRecorder
from agent.proxy import nft_rules, rules, trace_events
from agent.proxy.iptables import Iptables, IptablesError, IptablesSync, cleanup_all_backends
from agent.proxy.nftables import Nft, NftablesError, NftablesSync
from agent.proxy.nftables import available as nft_available
from agent.proxy.model import USE_TERMINATING_DEFAULT
from agent.proxy.proxier import Proxier
from kubeling import metrics_server
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
    p.add_argument("--proxy-mode", choices=["iptables", "nftables"], default=None,
                   help="the rules' mode (default: see FASTER_ON_NFT)")
    p.add_argument("--iptables-backend", choices=["nft", "legacy"], default=None,
                   help="force a backend instead of detecting the one that holds the host's rules")
    # Off by default (model.USE_TERMINATING_DEFAULT): a deleted pod must stop getting new
    # connections before it gets SIGTERM; with it, serving terminating endpoints are used while none is ready.
    p.add_argument("--terminating-fallback", action=argparse.BooleanOptionalAction, default=USE_TERMINATING_DEFAULT,
                   help="send traffic to serving terminating endpoints when no endpoint is ready")
    p.add_argument("--metrics-port", type=int, default=10249,
                   help="port of /metrics on 127.0.0.1 (kube-proxy's metricsBindAddress); -1: none")
    p.add_argument("--cleanup", action="store_true", help="remove all our chains and jump rules, then exit")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


# The faster mode where iptables is itself the nft backend, as scripts/bench_proxy.py measured it
# (10k services, nft 1.0.6, iptables 1.8.9): nftables writes a full sync in 3.5 s against 6.2 s,
# but an endpoint change takes 225 ms to its rules against 153 ms (each `nft -f` first reads the
# whole table, 30k chains, into its cache), and changes are the steady state.
FASTER_ON_NFT = "iptables"


def default_mode(iptables_backend: str) -> str:
    """FASTER_ON_NFT where the host's iptables is the nft backend and nft works; iptables
    otherwise (a legacy-iptables host keeps one rule system)."""
    return FASTER_ON_NFT if iptables_backend == "nft" and nft_available() else "iptables"


def make_backend(mode: str, ipt: Iptables, cfg: rules.Config) -> IptablesSync | NftablesSync:
    """The mode's backend; the other mode's rules, left by an earlier run, go first (two sets
    of DNAT rules on the same hooks would race), but for the forward-accept chain both use."""
    if mode == "nftables":
        ipt.cleanup(keep=frozenset({("filter", rules.FORWARD)}))
        return NftablesSync(Nft(), cfg, ipt)
    if nft_available():
        Nft().cleanup()
    return IptablesSync(ipt, cfg)


async def _serve(args: argparse.Namespace) -> None:
    client = Client.from_kubeconfig(args.kubeconfig, user_agent="kubeling-proxy")
    ipt = Iptables(args.iptables_backend)
    cfg = rules.Config(cluster_cidr=args.cluster_cidr, service_cidr=args.service_cidr,
                       use_terminating=args.terminating_fallback)
    mode = args.proxy_mode or default_mode(ipt.backend)
    backend = await asyncio.to_thread(make_backend, mode, ipt, cfg)
    logging.getLogger("kubeling.proxy").info(
        "node %s: %s mode, iptables %s backend, cluster CIDR %s, service CIDR %s", args.node_name or "-", mode,
        ipt.backend, cfg.cluster_cidr, cfg.service_cidr)
    programmed = (trace_events.programmed_events(EventRecorder(client, args.node_name, "kube-proxy"), args.node_name)
                  if args.node_name else None)
    proxier = Proxier(client, cfg, backend, sync_period=args.sync_period, min_sync_interval=args.min_sync_interval,
                      on_programmed=programmed)
    metrics = await metrics_server.start("127.0.0.1", args.metrics_port) if args.metrics_port >= 0 else None
    # Guarded: the proxier ending on its own fails the process (systemd restarts it).
    task = guarded(proxier.run(), "proxier")
    # A signal sets `stop` and the proxier is cancelled from here, so no cancellation is ever
    # caught and swallowed. The rules stay on exit, as kube-proxy's do: traffic keeps flowing
    # across a restart.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopped = asyncio.create_task(stop.wait(), name="stop signal")
    try:
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # it only ends by failing: exit non-zero with why
    finally:
        for t in (task, stopped):
            t.cancel()
        await asyncio.gather(task, stopped, return_exceptions=True)
        if metrics is not None:
            await metrics.cleanup()
        await client.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.cleanup:
        if args.iptables_backend:
            removed: dict = {args.iptables_backend: Iptables(args.iptables_backend).cleanup()}
        else:
            removed = cleanup_all_backends()
        try:
            if nft_available() and Nft().cleanup():
                removed["nft-table"] = [f"{nft_rules.FAMILY} {nft_rules.TABLE}"]
        except (NftablesError, IptablesError, OSError) as exc:
            print(f"nft cleanup: {exc}", file=sys.stderr)
            return 1
        print(json.dumps({"removed": removed}))
        return 0
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
