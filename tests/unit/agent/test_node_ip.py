"""The node IP choice: --node-ip, else the source towards the API server, never loopback."""
from __future__ import annotations

import pytest

from agent.node_ip import choose_node_ip


def test_explicit_node_ip_wins():
    assert choose_node_ip("192.168.56.11", "10.0.2.15", "10.0.2.15", ["10.0.2.15"]) == \
        ("192.168.56.11", "--node-ip")


def test_source_towards_the_apiserver():
    ip, how = choose_node_ip(None, "192.168.56.12", "10.0.2.15", ["10.0.2.15", "192.168.56.12"])
    assert ip == "192.168.56.12" and "API server" in how


@pytest.mark.parametrize("towards", ["127.0.0.1", "127.0.1.1", None, "169.254.3.4", "0.0.0.0"])
def test_loopback_source_falls_back_to_the_default_route_interface(towards):
    ip, how = choose_node_ip(None, towards, "10.1.2.3", ["127.0.0.1", "172.17.0.1"])
    assert ip == "10.1.2.3" and "default route" in how


def test_no_default_route_takes_the_first_non_loopback_address():
    ip, how = choose_node_ip(None, "127.0.0.1", None, ["127.0.0.1", "169.254.1.1", "172.31.0.6", "10.9.0.1"])
    assert (ip, how) == ("172.31.0.6", "first non-loopback interface address")


def test_only_loopback_left_keeps_loopback():
    # A machine with nothing else is a one-node cluster: 127.0.0.1 is all there is.
    assert choose_node_ip(None, "127.0.0.1", None, ["127.0.0.1"])[0] == "127.0.0.1"
