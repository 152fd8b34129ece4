"""The CNI invoker against fake plugins (shell scripts that record what they got)."""
import json
import os
import stat

import pytest

from agent.cni import CniError, CniInvoker, NetworkList, cni_args, load_network, pod_ips
from agent.cni_config import conflist, write_conflist

PLUGIN = """#!/bin/sh
echo "$CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME $CNI_NETNS $CNI_ARGS" >> {log}
cat > {log}.$CNI_COMMAND.{name}.$CNI_IFNAME
if [ "$CNI_COMMAND" = ADD ]; then
  if [ -n "{fail}" ]; then echo '{{"cniVersion":"1.0.0","code":7,"msg":"boom"}}'; exit 1; fi
  echo '{{"cniVersion":"1.0.0","interfaces":[{{"name":"eth0","sandbox":"/x"}}],"ips":[{{"address":"10.1.0.{n}/24","interface":0}}]}}'
fi
"""


def make_plugin(d, name, log, n=5, fail=""):
    p = d / name
    p.write_text(PLUGIN.format(log=log, name=name, n=n, fail=fail))
    p.chmod(p.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def env(tmp_path):
    bins, conf, cache = tmp_path / "bin", tmp_path / "net.d", tmp_path / "cache"
    bins.mkdir()
    log = tmp_path / "calls"
    for name, n in (("one", 5), ("two", 6), ("loopback", 1)):
        make_plugin(bins, name, log, n)
    write_conflist(str(conf), {"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "one"}, {"type": "two"}]},
                   "10-net.conflist")
    return CniInvoker(str(conf), [str(bins)], str(cache)), log, bins, conf, cache


async def test_add_chains_and_caches_then_del_in_reverse(env):
    cni, log, bins, conf, cache = env
    result = await cni.add("abc", "/proc/1/ns/net", "ns", "pod")
    assert pod_ips(result) == ["10.1.0.6"]
    calls = log.read_text().splitlines()
    assert [c.split()[0:3] for c in calls] == [["ADD", "abc", "lo"], ["ADD", "abc", "eth0"], ["ADD", "abc", "eth0"]]
    assert calls[1].split()[4] == cni_args("ns", "pod", "abc")
    assert "IgnoreUnknown=1" in calls[1] and "K8S_POD_INFRA_CONTAINER_ID=abc" in calls[1]
    second_stdin = json.loads((log.parent / "calls.ADD.two.eth0").read_text())
    assert second_stdin["prevResult"]["ips"][0]["address"] == "10.1.0.5/24" and second_stdin["name"] == "net"
    assert (cache / "results" / "net-abc-eth0").exists()
    # DEL uses the cached config even after the conf dir changed
    os.remove(conf / "10-net.conflist")
    log.write_text("")
    await cni.delete("abc", "", "ns", "pod")
    calls = log.read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["DEL", "DEL", "DEL"]
    del_two = json.loads((log.parent / "calls.DEL.two.eth0").read_text())
    assert del_two["prevResult"]["ips"][0]["address"] == "10.1.0.6/24"
    assert calls[0].startswith("DEL abc eth0") and calls[2].startswith("DEL abc lo")
    assert not list((cache / "results").iterdir())


async def test_failed_add_reports_plugin_error_and_cleans_up(env):
    cni, log, bins, conf, cache = env
    make_plugin(bins, "two", log, fail="yes")
    with pytest.raises(CniError, match="boom") as exc:
        await cni.add("abc", "/proc/1/ns/net", "ns", "pod")
    assert exc.value.code == 7
    assert [c.split()[0] for c in log.read_text().splitlines()][-2:] == ["DEL", "DEL"]
    assert not (cache / "results" / "net-abc-eth0").exists()


def test_load_network_picks_first_valid(tmp_path):
    (tmp_path / "00-bad.conflist").write_text("{not json")
    (tmp_path / "05-single.conf").write_text(json.dumps({"cniVersion": "0.4.0", "name": "s", "type": "bridge"}))
    (tmp_path / "10-list.conflist").write_text(json.dumps({"name": "l", "plugins": [{"type": "x"}]}))
    net = load_network(str(tmp_path))
    assert isinstance(net, NetworkList) and net.name == "s" and net.plugins[0]["type"] == "bridge"


def test_conflist_for_pod_cidr():
    doc = conflist("10.244.3.0/24", bridge_type="kubeling-bridge", ipam_data_dir="/d")
    p = doc["plugins"][0]
    assert p["type"] == "kubeling-bridge" and p["isDefaultGateway"] is True
    assert p["ipam"] == {"type": "host-local", "ranges": [[{"subnet": "10.244.3.0/24"}]], "dataDir": "/d"}


async def test_plugins_get_the_kubeling_cni_socket_of_the_agent(env, monkeypatch):
    # libcni hands the runtime's environment to plugins; the kubeling plugins need the
    # daemon's socket from it when the node runs its cni-daemon somewhere else than the default.
    cni, log, bins, conf, cache = env
    (bins / "one").write_text(f'#!/bin/sh\necho "sock=$KUBELING_CNI_SOCKET" >> {log}\n'
                              '[ "$CNI_COMMAND" = ADD ] && echo \'{"cniVersion":"1.0.0"}\'\nexit 0\n')
    monkeypatch.setenv("KUBELING_CNI_SOCKET", "/run/kl-x/cni.sock")
    await cni.add("abc", "/proc/1/ns/net", "ns", "pod")
    assert "sock=/run/kl-x/cni.sock" in log.read_text().splitlines()
