"""DEL removes the devices before it releases the address (the reference bridge plugin's
order): an address released while still configured could be handed to a concurrent ADD."""
from __future__ import annotations

from typing import Any

import pytest

from cni import bridge_plugin
from cni.bridge_config import load_bridge_config
from cni.spec import parse_env

CONF = {"cniVersion": "1.0.0", "name": "podnet", "type": "kubeling-bridge", "bridge": "kbr0",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.22.0.0/24"}]]}}
ENV = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/p1",
       "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}


class FakeNamespace:
    def __init__(self, path: str | None = None) -> None:
        self.path = path

    def close(self) -> None:
        pass


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    log: list[Any] = []
    monkeypatch.setattr(bridge_plugin.netlink_ops, "Namespace", FakeNamespace)
    monkeypatch.setattr(bridge_plugin.delegate, "run_ipam",
                        lambda command, plugin, env, stdin: log.append(("ipam", command)))
    return log


def _delete() -> None:
    bridge_plugin.delete(parse_env(ENV), load_bridge_config(CONF), b"{}")


def test_the_links_go_before_the_address(calls: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge_plugin.netlink_ops, "delete_link",
                        lambda ns, name: calls.append(("link", "pod" if ns.path else "host")) or True)
    _delete()
    assert calls == [("link", "pod"), ("link", "host"), ("ipam", "DEL")]


@pytest.mark.parametrize("failing", ["pod", "host"])
def test_a_failed_link_removal_keeps_the_address(calls: list[Any], monkeypatch: pytest.MonkeyPatch,
                                                 failing: str) -> None:
    def delete_link(ns: FakeNamespace, name: str) -> bool:
        where = "pod" if ns.path else "host"
        if where == failing:
            raise OSError(16, "Device or resource busy")
        calls.append(("link", where))
        return True
    monkeypatch.setattr(bridge_plugin.netlink_ops, "delete_link", delete_link)
    with pytest.raises(OSError):
        _delete()
    assert ("ipam", "DEL") not in calls  # still configured, so still allocated
