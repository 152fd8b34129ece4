"""`python -m controlplane.scheduler`: run the scheduler against an API server."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys

from prometheus_client import REGISTRY

from kubeling import eventloop, metrics_server
from kubeling.client import Client

from . import metrics
from .leader_election import LeaderElector, LeadershipLost
from .scheduler import DEFAULT_SCHEDULER_NAME, Scheduler

log = logging.getLogger("kubeling.scheduler")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kubeling-scheduler", description="Bind pending pods to nodes.")
    p.add_argument("--kubeconfig", help="kubeconfig of the API server (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                   help="act only while holding the lease, so several schedulers can run (default: on)")
    p.add_argument("--lease-namespace", default="kube-system")
    p.add_argument("--lease-name", default="kubeling-scheduler")
    p.add_argument("--identity", default=f"{socket.gethostname()}_{os.getpid()}",
                   help="this candidate's name in the lease (default: hostname_pid)")
    p.add_argument("--scheduler-name", default=DEFAULT_SCHEDULER_NAME,
                   help="schedule pods whose spec.schedulerName is this")
    p.add_argument("--lease-duration", type=float, default=15.0, help="seconds")
    p.add_argument("--renew-deadline", type=float, default=10.0, help="seconds")
    p.add_argument("--retry-period", type=float, default=2.0, help="seconds")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--bind-address", default="127.0.0.1",
                   help="address of /metrics (plain HTTP without authentication: loopback only)")
    p.add_argument("--metrics-port", type=int, default=10259,
                   help="port of /metrics (kube-scheduler's 10259); 0: a free one, -1: none")
    return p.parse_args(argv)


async def _work(args: argparse.Namespace, client: Client, scheduler: Scheduler) -> None:
    await scheduler.start()
    log.info("caches synced: %d nodes, %d pods", len(scheduler.nodes.cache), len(scheduler.pods.cache))
    if args.leader_elect:
        elector = LeaderElector(client, args.lease_namespace, args.lease_name, args.identity,
                                lease_duration=args.lease_duration, renew_deadline=args.renew_deadline,
                                retry_period=args.retry_period)
        await elector.run(scheduler.run)
    else:
        await scheduler.run()


async def run(args: argparse.Namespace) -> int:
    client = Client.from_kubeconfig(args.kubeconfig, user_agent="kubeling-scheduler")
    scheduler = Scheduler(client, scheduler_name=args.scheduler_name, identity=args.identity)
    # A signal or a failed background loop sets `stop`; the work is then cancelled from here,
    # so no cancellation is ever caught and swallowed.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    failures: list[BaseException] = []

    def background_failed(exc: BaseException) -> None:
        failures.append(exc)  # logged by the guard; stop with a failure
        stop.set()

    scheduler.on_failure = background_failed
    REGISTRY.register(metrics.PendingPods(scheduler.queue.pending_counts))
    served = await metrics_server.start(args.bind_address, args.metrics_port) if args.metrics_port >= 0 else None
    work = asyncio.create_task(_work(args, client, scheduler), name="scheduler")
    stopped = asyncio.create_task(stop.wait(), name="stop signal")
    code = 0
    try:
        await asyncio.wait([work, stopped], return_when=asyncio.FIRST_COMPLETED)
        if failures:
            log.error("stopping: a background loop failed: %s", failures[0])
            code = 1
        elif work.done():
            work.result()  # the work only ends by failing (LeadershipLost, a start that failed)
            log.error("the scheduling loop ended on its own")
            code = 1
        else:
            log.info("stopping")
    except LeadershipLost as exc:
        log.error("leader election lost: %s", exc)
        code = 1
    finally:
        for t in (work, stopped):
            t.cancel()
        await asyncio.gather(work, stopped, return_exceptions=True)
        await scheduler.stop()
        if served is not None:
            await served.cleanup()
        await client.close()
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # libuv's loop: less CPU per HTTP request and watch event than asyncio's own, and
    # the scheduler's work is mostly those (bindings, Events, the pods watch).
    return eventloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
