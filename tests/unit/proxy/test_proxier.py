"""The Proxier's sync logic on fakes: an API client whose watches the test feeds, an iptables
backend that applies each restore batch to an in-memory table (so a test reads the rules as the
kernel would hold them after every batch) and a conntrack recorder. Covered: the first sync
waits for both caches, a service and its endpoints in either order, stale UDP conntrack entries
flushed after the rules stop using an endpoint, bursts coalesced under min_sync_interval, failed
syncs retried, and terminating endpoints used only when no endpoint is ready."""
from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agent.proxy import rules
from agent.proxy.iptables import IptablesError, IptablesSync
from agent.proxy.proxier import Proxier
from kubeling.resources import lookup
from kubeling.shared_informers import SharedInformers

BOUND = 10.0  # seconds any awaited condition gets; generous for a loaded 2-core machine
SERVICES = lookup("services")


# --- fakes ---------------------------------------------------------------------------------------

class FakeClient:
    """`list` returns `objects[plural]` (once `list_gates[plural]` is set, when there is one);
    `watch` streams what the test sends with `send`."""

    def __init__(self) -> None:
        self.objects: dict[str, list[dict[str, Any]]] = {}
        self.list_gates: dict[str, asyncio.Event] = {}
        self.lists: dict[str, int] = {}
        self.watches: dict[str, int] = {}
        self.events: dict[str, asyncio.Queue[tuple[str, dict[str, Any]]]] = {}
        self._rv = 100

    async def list(self, res: Any, namespace: Any = None, **_: Any) -> dict[str, Any]:
        gate = self.list_gates.get(res.plural)
        if gate is not None:
            await gate.wait()
        self.lists[res.plural] = self.lists.get(res.plural, 0) + 1
        return {"items": list(self.objects.get(res.plural, [])), "metadata": {"resourceVersion": "1"}}

    async def watch(self, res: Any, namespace: Any = None, **_: Any) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        self.watches[res.plural] = self.watches.get(res.plural, 0) + 1
        q = self.events.setdefault(res.plural, asyncio.Queue())
        while True:
            yield await q.get()

    def send(self, plural: str, typ: str, obj: dict[str, Any]) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self.events.setdefault(plural, asyncio.Queue()).put_nowait((typ, obj))


class FakeIptables:
    """Applies `iptables-restore --noflush` batches to {table: {chain: [rules]}}, as the kernel
    would: `:CHAIN` creates or flushes that chain only, `-A` appends, `-X` deletes. `log` is
    shared with the conntrack recorder, so a test sees the order of the two."""

    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.tables: dict[str, dict[str, list[str]]] = {t: {} for t in rules.TABLES}
        self.log = log
        self.restores = 0
        self.full_reads = 0  # our_chains() calls: one per full sync
        self.jumps = 0
        self.fail_next = 0
        # While `hold` is set, a restore waits for `release` (and sets `held` once it waits).
        self.hold = threading.Event()
        self.held = threading.Event()
        self.release = threading.Event()

    def our_chains(self) -> dict[str, set[str]]:
        self.full_reads += 1
        return {t: {c for c in chains if rules.is_ours(t, c)} for t, chains in self.tables.items()}

    def ensure_jumps(self) -> None:
        self.jumps += 1

    def restore(self, text: str) -> None:
        if self.hold.is_set():
            self.held.set()
            assert self.release.wait(BOUND), "the test never released the held restore"
        if self.fail_next:
            self.fail_next -= 1
            raise IptablesError("iptables-restore failed: Another app is currently holding the xtables lock")
        table: dict[str, list[str]] | None = None
        staged = {t: {c: list(r) for c, r in chains.items()} for t, chains in self.tables.items()}
        for line in text.splitlines():
            if line.startswith("*"):
                table = staged[line[1:]]
            elif line.startswith(":"):
                assert table is not None
                table[line[1:].split()[0]] = []
            elif line.startswith("-A "):
                assert table is not None
                chain = line.split()[1]
                assert chain in table, f"rule for undeclared chain {chain}"
                table[chain].append(line)
            elif line.startswith("-X "):
                assert table is not None
                del table[line.split()[1]]
            elif line == "COMMIT":
                table = None
        self.tables = staged  # atomic, as one restore batch is
        self.restores += 1
        self.log.append(("restore", self.view(f"{n}/{p}" for n, p in _keys_in(text))))

    def view(self, keys: Any = ()) -> dict[str, tuple[set[str], bool]]:
        return {k: (self.dnat(k), self.rejects(k)) for k in keys}

    def dnat(self, key: str) -> set[str]:
        """The endpoints the nat table sends `key` (ns/name[:port]) to."""
        out = set()
        for chain, lines in self.tables["nat"].items():
            if not chain.startswith(rules.SEP_PREFIX):
                continue
            for line in lines:
                m = re.search(r'--comment "([^"]+)" .*-j DNAT --to-destination (\S+)', line)
                if m and m.group(1) == key:
                    out.add(m.group(2))
        return out

    def rejects(self, key: str) -> bool:
        return any(f'"{key} has no endpoints"' in line for line in self.tables["filter"].get(rules.SERVICES, []))


def _keys_in(text: str) -> set[tuple[str, str]]:
    return {(m.group(1), m.group(2)) for m in re.finditer(r'--comment "([\w.-]+)/([\w.:-]+?)[ "]', text)}


# --- objects -------------------------------------------------------------------------------------

def service(name: str, ip: str, port: int = 80, protocol: str = "TCP", ns: str = "ns") -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name, "resourceVersion": "1"},
            "spec": {"clusterIP": ip, "type": "ClusterIP",
                     "ports": [{"port": port, "protocol": protocol, "targetPort": 8080}]}}


def eslice(name: str, svc: str, *endpoints: tuple[str, str], protocol: str = "TCP",
           ns: str = "ns") -> dict[str, Any]:
    """endpoints: (ip, state) with state ready | terminating (serving, not ready) | gone (neither)."""
    conds = {"ready": {"ready": True, "serving": True, "terminating": False},
             "terminating": {"ready": False, "serving": True, "terminating": True},
             "gone": {"ready": False, "serving": False, "terminating": True}}
    return {"metadata": {"namespace": ns, "name": name, "resourceVersion": "1",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"port": 8080, "protocol": protocol}],
            "endpoints": [{"addresses": [ip], "conditions": conds[state]} for ip, state in endpoints]}


# --- harness -------------------------------------------------------------------------------------

async def eventually(check: Callable[[], Any], what: str, timeout: float = BOUND) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class Node:
    def __init__(self, *, use_terminating: bool = rules.Config().use_terminating, min_sync_interval: float = 0.0,
                 retry_interval: float = 0.05, informers: SharedInformers | None = None,
                 client: FakeClient | None = None) -> None:
        self.client = client or FakeClient()
        self.log: list[tuple[str, Any]] = []
        self.ipt = FakeIptables(self.log)
        self.conntrack: list[list[str]] = []
        cfg = rules.Config(use_terminating=use_terminating)
        self.proxier = Proxier(self.client, cfg, IptablesSync(self.ipt, cfg),  # type: ignore[arg-type]
                               sync_period=3600, min_sync_interval=min_sync_interval,
                               retry_interval=retry_interval, informers=informers,
                               run_conntrack=self._conntrack)
        self.task: asyncio.Task[None] | None = None
        self.expect_failures = 0  # syncs the test makes fail; any other failure fails the test

    def _conntrack(self, cmds: list[list[str]]) -> int:
        self.conntrack += cmds
        if cmds:
            self.log.append(("conntrack", cmds))
        return len(cmds)

    async def __aenter__(self) -> "Node":
        self.task = asyncio.create_task(self.proxier.run())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.task is not None
        self.ipt.release.set()  # never leave a worker thread waiting
        if self.task.done():
            self.task.result()  # a proxier that died on its own fails the test with why
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        if exc[0] is None:
            assert self.proxier.stats.failures == self.expect_failures

    async def synced_once(self) -> None:
        await eventually(lambda: self.proxier.stats.count >= 1, "the first sync")


# --- tests ---------------------------------------------------------------------------------------

async def test_first_sync_waits_for_both_caches() -> None:
    client = FakeClient()
    client.objects["services"] = [service("web", "10.96.0.10")]
    client.objects["endpointslices"] = [eslice("web-1", "web", ("10.244.1.5", "ready"))]
    client.list_gates["endpointslices"] = asyncio.Event()
    async with Node(client=client) as node:
        await eventually(node.proxier.service_informer.synced.is_set, "the services listed and handled")
        # Services are known, slices are not: a sync now would REJECT a service that has endpoints.
        for _ in range(20):
            await asyncio.sleep(0)
        assert not any(t.get_name() == "proxy sync loop" for t in asyncio.all_tasks())
        assert node.ipt.restores == 0
        client.list_gates["endpointslices"].set()
        await node.synced_once()
        assert node.ipt.dnat("ns/web") == {"10.244.1.5:8080"}
        assert not node.ipt.rejects("ns/web")
        assert node.ipt.jumps >= 1 and node.ipt.full_reads == 1  # the first sync is a full one


async def test_service_then_endpoints_switches_from_reject_to_dnat_in_one_batch() -> None:
    async with Node() as node:
        await node.synced_once()
        node.client.send("services", "ADDED", service("web", "10.96.0.10"))
        await eventually(lambda: node.ipt.rejects("ns/web"), "the service without endpoints rejected")
        node.client.send("endpointslices", "ADDED", eslice("web-1", "web", ("10.244.1.5", "ready")))
        await eventually(lambda: node.ipt.dnat("ns/web") == {"10.244.1.5:8080"}, "the DNAT to the endpoint")
        assert not node.ipt.rejects("ns/web")
        # Every batch that touched the service left it either rejecting or forwarding, never both
        # or neither: the switch happened in one restore.
        states = [v["ns/web"] for kind, v in node.log if kind == "restore" and "ns/web" in v]
        assert states and all(bool(dnat) != reject for dnat, reject in states), states
        assert states[-1] == ({"10.244.1.5:8080"}, False)


async def test_endpoints_known_before_their_service_are_in_its_first_rules() -> None:
    async with Node() as node:
        await node.synced_once()
        node.client.send("endpointslices", "ADDED", eslice("web-1", "web", ("10.244.1.5", "ready")))
        await eventually(lambda: ("ns", "web-1") in node.proxier.slices, "the slice handled")
        node.client.send("services", "ADDED", service("web", "10.96.0.10"))
        await eventually(lambda: node.ipt.dnat("ns/web"), "the service's rules")
        states = [v["ns/web"] for kind, v in node.log if kind == "restore" and "ns/web" in v]
        assert states[0] == ({"10.244.1.5:8080"}, False)  # never a REJECT in between


async def test_removed_udp_endpoints_get_their_conntrack_entries_flushed_after_the_rules() -> None:
    async with Node() as node:
        await node.synced_once()
        node.client.send("services", "ADDED", service("dns", "10.96.0.53", 53, "UDP"))
        node.client.send("services", "ADDED", service("web", "10.96.0.80", 80, "TCP"))
        node.client.send("endpointslices", "ADDED",
                         eslice("dns-1", "dns", ("10.244.1.2", "ready"), ("10.244.1.3", "ready"), protocol="UDP"))
        node.client.send("endpointslices", "ADDED", eslice("web-1", "web", ("10.244.2.2", "ready")))
        await eventually(lambda: len(node.ipt.dnat("ns/dns")) == 2 and node.ipt.dnat("ns/web"), "both services")
        node.conntrack.clear()

        # One endpoint goes: only its flows to this service are flushed.
        node.client.send("endpointslices", "MODIFIED", eslice("dns-1", "dns", ("10.244.1.2", "ready"), protocol="UDP"))
        gone = ["-D", "-p", "udp", "--orig-dst", "10.96.0.53", "--reply-src", "10.244.1.3"]
        await eventually(lambda: gone in node.conntrack, "the removed endpoint's conntrack entries flushed")
        assert node.conntrack == [gone]
        # ... after the batch that stopped sending new packets to it (else they would recreate them).
        i_flush = next(i for i, (kind, v) in enumerate(node.log) if kind == "conntrack" and gone in v)
        i_rules = max(i for i, (kind, v) in enumerate(node.log[:i_flush])
                      if kind == "restore" and "ns/dns" in v)
        assert node.log[i_rules][1]["ns/dns"] == ({"10.244.1.2:8080"}, False)

        # The slice goes altogether: the last endpoint's flows too. TCP endpoints never need it.
        node.client.send("endpointslices", "DELETED", eslice("dns-1", "dns", protocol="UDP"))
        node.client.send("endpointslices", "DELETED", eslice("web-1", "web"))
        last = ["-D", "-p", "udp", "--orig-dst", "10.96.0.53", "--reply-src", "10.244.1.2"]
        await eventually(lambda: last in node.conntrack, "the last endpoint's conntrack entries flushed")
        await eventually(lambda: node.ipt.rejects("ns/web") and node.ipt.rejects("ns/dns"), "both rejecting")
        assert not any("10.96.0.80" in cmd or "10.244.2.2" in cmd for cmd in node.conntrack)


async def test_a_burst_during_a_sync_is_coalesced_into_one_more_sync() -> None:
    async with Node() as node:
        node.client.send("services", "ADDED", service("web", "10.96.0.10"))
        await eventually(lambda: node.ipt.rejects("ns/web"), "the service")
        before = node.ipt.restores
        node.ipt.hold.set()
        node.client.send("endpointslices", "ADDED", eslice("web-1", "web", ("10.244.1.1", "ready")))
        await eventually(node.ipt.held.is_set, "a sync stuck in its restore")
        # 30 changes while that sync runs; all handled before it ends.
        for i in range(2, 32):
            node.client.send("endpointslices", "MODIFIED", eslice("web-1", "web", (f"10.244.1.{i}", "ready")))
        await eventually(lambda: [e.ip for eps in node.proxier.endpoints.values() for e in eps] == ["10.244.1.31"],
                         "every change handled")
        node.ipt.hold.clear()
        node.ipt.release.set()
        await eventually(lambda: node.ipt.dnat("ns/web") == {"10.244.1.31:8080"}, "the last change's rules")
        # The held sync plus exactly one more, which took all 30 changes.
        assert node.ipt.restores == before + 2


async def test_min_sync_interval_bounds_the_number_of_syncs() -> None:
    interval = 0.25
    async with Node(min_sync_interval=interval) as node:
        node.client.send("services", "ADDED", service("web", "10.96.0.10"))
        await eventually(lambda: node.ipt.rejects("ns/web"), "the service")
        before = node.ipt.restores
        t0 = time.monotonic()
        n = 40
        for i in range(1, n + 1):  # a stream of changes, each handled before the next is sent
            node.client.send("endpointslices", "MODIFIED" if i > 1 else "ADDED",
                             eslice("web-1", "web", (f"10.244.1.{i}", "ready")))
            await eventually(lambda: (ep := node.proxier.endpoints.get(("ns", "web", "", "tcp")))
                             and ep[0].ip == f"10.244.1.{i}", f"change {i} handled")
            await asyncio.sleep(0.02)  # pacing, so the stream spans several intervals
        await eventually(lambda: node.ipt.dnat("ns/web") == {f"10.244.1.{n}:8080"}, "the last change's rules")
        elapsed = time.monotonic() - t0
        syncs = node.ipt.restores - before
        # Sync starts are at least `interval` apart; one may have started before t0.
        assert 1 <= syncs <= elapsed / interval + 2, (syncs, elapsed)


async def test_a_failed_sync_is_retried_in_full_and_still_flushes_conntrack() -> None:
    async with Node(retry_interval=0.05) as node:
        node.client.send("services", "ADDED", service("dns", "10.96.0.53", 53, "UDP"))
        node.client.send("endpointslices", "ADDED",
                         eslice("dns-1", "dns", ("10.244.1.2", "ready"), ("10.244.1.3", "ready"), protocol="UDP"))
        await eventually(lambda: len(node.ipt.dnat("ns/dns")) == 2, "the service's rules")
        full_before, count_before = node.ipt.full_reads, node.proxier.stats.count
        node.ipt.fail_next = node.expect_failures = 1
        node.client.send("endpointslices", "MODIFIED", eslice("dns-1", "dns", ("10.244.1.2", "ready"), protocol="UDP"))
        await eventually(lambda: node.proxier.stats.failures == 1, "the failed sync")
        # No further event arrives: the retry comes on its own, as a full sync (state unknown).
        await eventually(lambda: node.ipt.dnat("ns/dns") == {"10.244.1.2:8080"}, "the retried sync's rules")
        assert node.proxier.stats.count == count_before + 1
        assert node.ipt.full_reads == full_before + 1
        # The failed sync flushed nothing (its rules never applied); the retry flushed the endpoint.
        assert node.conntrack[-1:] == [["-D", "-p", "udp", "--orig-dst", "10.96.0.53", "--reply-src", "10.244.1.3"]]


@pytest.mark.parametrize("use_terminating", [False, True])
async def test_terminating_endpoints_only_when_none_is_ready(use_terminating: bool) -> None:
    async with Node(use_terminating=use_terminating) as node:
        node.client.send("services", "ADDED", service("web", "10.96.0.10"))
        node.client.send("endpointslices", "ADDED",
                         eslice("web-1", "web", ("10.244.1.1", "ready"), ("10.244.1.2", "terminating"),
                                ("10.244.1.3", "gone")))
        await eventually(lambda: node.ipt.dnat("ns/web"), "the service's rules")
        assert node.ipt.dnat("ns/web") == {"10.244.1.1:8080"}  # a ready one exists: only it

        node.client.send("endpointslices", "MODIFIED",
                         eslice("web-1", "web", ("10.244.1.2", "terminating"), ("10.244.1.3", "gone")))
        if use_terminating:
            await eventually(lambda: node.ipt.dnat("ns/web") == {"10.244.1.2:8080"},
                             "the serving terminating endpoint used")
            assert not node.ipt.rejects("ns/web")
        else:
            await eventually(lambda: node.ipt.rejects("ns/web"), "the service rejected")
            assert node.ipt.dnat("ns/web") == set()


async def test_default_config_does_not_use_terminating_endpoints() -> None:
    # The Proxier reads the one default through rules.Config (model.USE_TERMINATING_DEFAULT).
    async with Node() as node:
        node.client.send("services", "ADDED", service("web", "10.96.0.10"))
        node.client.send("endpointslices", "ADDED", eslice("web-1", "web", ("10.244.1.2", "terminating")))
        await eventually(lambda: node.ipt.rejects("ns/web"), "the service rejected")
        assert node.proxier.cfg.use_terminating is False


async def test_a_shared_factory_lists_and_watches_each_resource_once() -> None:
    client = FakeClient()
    client.objects["services"] = [service("web", "10.96.0.10")]
    factory = SharedInformers(client)  # type: ignore[arg-type]
    other: list[str] = []
    factory.add_handlers(SERVICES, on_add=lambda o: other.append(o["metadata"]["name"]))
    node = Node(client=client, informers=factory)
    runner = asyncio.create_task(factory.run())  # the factory's owner runs it, not the proxier
    try:
        async with node:
            await node.synced_once()
            assert node.ipt.rejects("ns/web")
            client.send("services", "ADDED", service("db", "10.96.0.20"))
            await eventually(lambda: node.ipt.rejects("ns/db") and other == ["web", "db"], "both handlers")
            assert client.lists == {"services": 1, "endpointslices": 1}
            assert client.watches == {"services": 1, "endpointslices": 1}
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
