"""ADD / CHECK / DEL / VERSION / STATUS / GC of kubeling-bridge + kubeling-ipam, run as a runtime
runs them, both through the daemon and in-process."""
from __future__ import annotations

import ipaddress
import os

import pytest

from conftest import bridge_conf, in_pod, sh

pytestmark = pytest.mark.e2e


def _is_script(data: bytes) -> bool:
    return data.startswith(b"#!") and data.splitlines()[0].endswith(b" -IS")


def test_install_is_idempotent_and_runnable(plugin_dir):
    from cni.install import install

    names = ("kubeling-bridge", ".kubeling-bridge.py", "kubeling-ipam")
    before = {n: open(os.path.join(plugin_dir, n), "rb").read() for n in names}
    stat_before = os.stat(os.path.join(plugin_dir, "kubeling-bridge"))
    install(plugin_dir)
    for name, data in before.items():
        path = os.path.join(plugin_dir, name)
        assert open(path, "rb").read() == data
        assert os.access(path, os.X_OK)
    # cc is installed on these machines (scripts/setup), so the bridge is the compiled forwarder
    # with the Python shim beside it; IPAM stays a script (cni.delegate runs it in-process).
    assert before["kubeling-bridge"].startswith(b"\x7fELF")
    assert os.stat(os.path.join(plugin_dir, "kubeling-bridge")).st_mtime_ns == stat_before.st_mtime_ns, "recompiled"
    assert _is_script(before[".kubeling-bridge.py"]) and _is_script(before["kubeling-ipam"])


def test_install_without_compiler_writes_scripts(tmp_path):
    from cni.install import install

    paths = install(str(tmp_path), compile_forwarder=False)
    assert sorted(paths) == [str(tmp_path / "kubeling-bridge"), str(tmp_path / "kubeling-ipam")]
    assert all(_is_script(open(p, "rb").read()) for p in paths)
    assert not (tmp_path / ".kubeling-bridge.py").exists()


@pytest.mark.parametrize("plugin", ["kubeling-bridge", "kubeling-ipam"])
def test_version(node, plugin):
    res = node.cni(plugin, "VERSION", {"cniVersion": "1.0.0"}, drop=("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"))
    assert res.ok, res
    assert res.out["cniVersion"] == "1.0.0"
    assert {"0.3.1", "0.4.0", "1.0.0", "1.1.0"} <= set(res.out["supportedVersions"])


@pytest.mark.parametrize("mode", ["daemon", "in-process"])
def test_add_check_del(node, request, mode, bridge, subnet, tmp_path):
    use_daemon = mode == "daemon"
    if use_daemon:
        request.getfixturevalue("daemon")
    conf = bridge_conf("kc-net", bridge, subnet, str(tmp_path / "ipam"), mtu=1400, promiscMode=True)
    pod = node.new_pod()
    add = node.cni("kubeling-bridge", "ADD", conf, cid="c-one", netns=pod, daemon=use_daemon)
    assert add.ok, add
    r = add.out
    net = ipaddress.ip_network(subnet)
    gw = str(net.network_address + 1)
    assert r["cniVersion"] == "1.0.0"
    bridge_if, host_if, cont_if = r["interfaces"]
    assert bridge_if["name"] == bridge and "sandbox" not in bridge_if
    assert host_if["name"].startswith("veth") and "sandbox" not in host_if
    assert cont_if == {"name": "eth0", "mac": cont_if["mac"], "sandbox": pod}
    [ip] = r["ips"]
    assert ip["interface"] == 2 and ip["gateway"] == gw
    assert "version" not in ip
    addr = ipaddress.ip_interface(ip["address"])
    assert addr.network == net and str(addr.ip) == str(net.network_address + 2)
    assert r["routes"] == [{"dst": "0.0.0.0/0"}]

    # What the pod sees: address, default route via the gateway, lo up, the MTU asked for.
    show = in_pod(pod, "ip", "-o", "addr", "show", "dev", "eth0").stdout
    assert ip["address"] in show
    assert f"default via {gw} dev eth0" in in_pod(pod, "ip", "route").stdout
    assert "UP" in in_pod(pod, "ip", "link", "show", "lo").stdout.split(">")[0]
    assert "mtu 1400" in in_pod(pod, "ip", "link", "show", "eth0").stdout
    assert cont_if["mac"] in in_pod(pod, "ip", "link", "show", "eth0").stdout
    # What the node sees: bridge up with the gateway, veth enslaved with hairpin, forwarding on.
    assert f"{gw}/{net.prefixlen}" in node.run("ip", "-o", "addr", "show", "dev", bridge).stdout
    brlink = node.run("ip", "link", "show", bridge).stdout
    assert "PROMISC" in brlink and "mtu 1400" in brlink
    veth = node.run("ip", "-d", "link", "show", host_if["name"]).stdout
    assert f"master {bridge}" in veth and "hairpin on" in veth
    assert node.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    alloc = tmp_path / "ipam" / "kc-net" / str(addr.ip)
    assert alloc.read_bytes() == b"c-one\r\neth0"
    rules = node.our_rules()
    assert any(l.startswith("-A FORWARD") and "KUBELING-CNI-F-" in l for l in rules)
    assert any(f"-A POSTROUTING -s {addr.ip}/32" in l for l in rules)

    check_conf = dict(conf, prevResult=r)
    chk = node.cni("kubeling-bridge", "CHECK", check_conf, cid="c-one", netns=pod, daemon=use_daemon)
    assert chk.ok and chk.raw == "", chk
    # CHECK notices a pod that drifted from the recorded result.
    in_pod(pod, "ip", "addr", "del", ip["address"], "dev", "eth0")
    bad = node.cni("kubeling-bridge", "CHECK", check_conf, cid="c-one", netns=pod, daemon=use_daemon)
    assert bad.code != 0 and bad.out["code"] == 999 and ip["address"] in bad.out["msg"]

    for _ in range(2):  # DEL is idempotent
        dl = node.cni("kubeling-bridge", "DEL", conf, cid="c-one", netns=pod, daemon=use_daemon)
        assert dl.ok and dl.raw == "", dl
    assert "eth0" not in in_pod(pod, "ip", "-o", "link").stdout
    assert host_if["name"] not in node.links()
    assert not alloc.exists()
    assert node.pod_rules() == []
    # What DEL keeps on purpose, like the reference: the bridge, and with it the forward accept.
    assert bridge in node.links() and len(node.forward_rules(bridge)) == 4
    node.cleanup_network(bridge, "kc-net", str(tmp_path / "ipam"))


def test_del_without_netns_and_with_missing_netns(node, daemon, bridge, subnet, tmp_path):
    conf = bridge_conf("kc-net", bridge, subnet, str(tmp_path / "ipam"))
    pod = node.new_pod()
    add = node.cni("kubeling-bridge", "ADD", conf, cid="c-gone", netns=pod)
    assert add.ok, add
    host_veth = add.out["interfaces"][1]["name"]
    # The sandbox disappears before the runtime gets to DEL: DEL must still succeed and free all.
    name = pod.split("/")[-1]
    node.pods.remove(name)
    sh("ip", "netns", "del", name)
    assert node.cni("kubeling-bridge", "DEL", conf, cid="c-gone", netns=pod).ok
    assert node.cni("kubeling-bridge", "DEL", conf, cid="c-gone", netns="").ok
    assert host_veth not in node.links()
    assert sorted(os.listdir(tmp_path / "ipam" / "kc-net")) == ["last_reserved_ip.0", "lock"]
    assert node.pod_rules() == []
    node.cleanup_network(bridge)


def test_legacy_result_version(node, daemon, bridge, subnet, tmp_path):
    conf = bridge_conf("kc-net", bridge, subnet, str(tmp_path / "ipam"), version="0.4.0")
    pod = node.new_pod()
    add = node.cni("kubeling-bridge", "ADD", conf, cid="c-old", netns=pod)
    assert add.ok, add
    assert add.out["cniVersion"] == "0.4.0" and add.out["ips"][0]["version"] == "4"
    chk = node.cni("kubeling-bridge", "CHECK", dict(conf, prevResult=add.out), cid="c-old", netns=pod)
    assert chk.ok, chk
    assert node.cni("kubeling-bridge", "DEL", conf, cid="c-old", netns=pod).ok


def test_status_and_gc(node, daemon, bridge, subnet, tmp_path):
    conf = bridge_conf("kc-net", bridge, subnet, str(tmp_path / "ipam"), version="1.1.0")
    pods = [node.new_pod() for _ in range(3)]
    ips = []
    for i, pod in enumerate(pods):
        add = node.cni("kubeling-bridge", "ADD", conf, cid=f"c-{i}", netns=pod)
        assert add.ok, add
        ips.append(add.out["ips"][0]["address"].split("/")[0])
    st = node.cni("kubeling-bridge", "STATUS", conf, drop=("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"))
    assert st.ok and st.raw == "", st
    old = bridge_conf("kc-net", bridge, subnet, str(tmp_path / "ipam"), version="1.0.0")
    st_old = node.cni("kubeling-bridge", "STATUS", old, drop=("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"))
    assert st_old.out["code"] == 1

    # The runtime only knows c-0 any more: GC frees the others' addresses and masquerade rules.
    gc_conf = dict(conf, **{"cni.dev/valid-attachments": [{"containerID": "c-0", "ifname": "eth0"}]})
    gc = node.cni("kubeling-bridge", "GC", gc_conf, drop=("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"))
    assert gc.ok, gc
    left = sorted(p for p in os.listdir(tmp_path / "ipam" / "kc-net") if p[0].isdigit() and "." in p and not p.startswith("last"))
    assert left == [ips[0]]
    masq = [l for l in node.our_rules() if l.startswith("-A POSTROUTING")]
    assert len(masq) == 1 and f"-s {ips[0]}/32" in masq[0]
    for i, pod in enumerate(pods):
        assert node.cni("kubeling-bridge", "DEL", conf, cid=f"c-{i}", netns=pod).ok
    assert node.pod_rules() == []
    node.cleanup_network(bridge, "kc-net", str(tmp_path / "ipam"))
