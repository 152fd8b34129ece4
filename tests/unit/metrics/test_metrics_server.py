"""The shared /metrics server: Prometheus text (or OpenMetrics when asked), loopback only,
and a taken port leaves the component running without metrics."""
from __future__ import annotations

import socket

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from kubeling import metrics_server


async def test_serves_a_registry_as_prometheus_text_or_openmetrics():
    registry = CollectorRegistry()
    Counter("unit_things", "Things.", ["kind"], registry=registry).labels("x").inc(3)
    runner = await metrics_server.start("127.0.0.1", 0, registry)
    assert runner is not None
    url = f"http://127.0.0.1:{metrics_server.bound_port(runner)}/metrics"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain; version=")
                families = list(text_string_to_metric_families(await resp.text()))
            async with session.get(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}) as resp:
                assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
                assert (await resp.text()).rstrip().endswith("# EOF")
    finally:
        await runner.cleanup()
    [things] = [f for f in families if f.name == "unit_things"]
    assert [(s.name, s.labels, s.value) for s in things.samples if s.name.endswith("_total")] == \
        [("unit_things_total", {"kind": "x"}, 3.0)]


async def test_refuses_a_non_loopback_address_and_survives_a_taken_port():
    assert metrics_server.is_loopback("127.0.0.1") and metrics_server.is_loopback("::1")
    assert metrics_server.is_loopback("localhost") and not metrics_server.is_loopback("0.0.0.0")
    with pytest.raises(ValueError):
        await metrics_server.start("0.0.0.0", 0)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert await metrics_server.start("127.0.0.1", taken.getsockname()[1]) is None
