"""The pieces of init/join/reset that need no cluster: checks, flags, all-or-nothing writes."""
from __future__ import annotations

from pathlib import Path

import pytest

from kubeling.cli import init, join, machine


def _machine(tmp_path: Path) -> machine.Machine:
    return machine.Machine(tmp_path / "etc", tmp_path / "var", tmp_path / "units", tmp_path / "default",
                           tmp_path / "cni-conf", tmp_path / "cni-bin")


def test_bootstrap_tokens_are_checked_and_new_ones_fit_the_format():
    for _ in range(20):
        assert machine.TOKEN_RE.match(machine.new_token())
    assert machine.check_token("abcdef.0123456789abcdef")
    for bad in ("abcdef0123456789abcdef", "ABCDEF.0123456789abcdef", "abcdef.012345678", "", "a.b"):
        with pytest.raises(machine.SetupError, match="bootstrap token"):
            machine.check_token(bad)


def test_node_ips_that_other_nodes_cannot_reach_are_refused():
    assert machine.check_ip("192.168.56.11", "--node-ip") == "192.168.56.11"
    for bad in ("127.0.0.1", "0.0.0.0", "224.0.0.1", "10.0.0", "host"):
        with pytest.raises(machine.SetupError, match="--node-ip"):
            machine.check_ip(bad, "--node-ip")


def test_join_refuses_a_loopback_route_to_the_apiserver_without_node_ip():
    with pytest.raises(machine.SetupError, match="pass --node-ip"):
        join.choose_node_ip(None, "127.0.0.1", 6443)
    assert join.choose_node_ip("192.168.56.12", "127.0.0.1", 6443) == "192.168.56.12"


def test_join_server_must_be_an_https_url():
    assert join.check_server("https://192.168.56.10:6443/") == ("https://192.168.56.10:6443", "192.168.56.10", 6443)
    for bad in ("http://192.168.56.10:6443", "192.168.56.10:6443", "https://", "https://h:99999",
                "https://h:6443/api"):
        with pytest.raises(machine.SetupError):
            join.check_server(bad)


def test_node_names_must_be_dns_subdomains():
    assert machine.check_node_name("worker-1.local") == "worker-1.local"
    for bad in ("Worker", "-w", "w_1", "", "a" * 254):
        with pytest.raises(machine.SetupError, match="DNS-1123"):
            machine.check_node_name(bad)


def test_the_apiserver_certificate_names_every_address_it_is_reached_on():
    hosts = init.serving_hosts("192.168.56.10", "cp", "10.96.0.0/12")
    for h in ("192.168.56.10", "127.0.0.1", "10.96.0.1", "cp", "kubernetes", "kubernetes.default",
              "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"):
        assert h in hosts


def test_control_plane_flags_point_at_this_machines_files(tmp_path):
    m = _machine(tmp_path)
    args = init.component_args(m, "192.168.56.10", "cp", "10.244.0.0/16", "10.96.0.0/12", 6443)
    assert set(args) == {"etcd", "apiserver", "controller-manager", "scheduler", "dns", "cni-daemon", "agent",
                         "proxy"}
    agent = args["agent"]
    assert agent[agent.index("--node-ip") + 1] == "192.168.56.10"
    assert agent[agent.index("--kubeconfig") + 1] == str(m.kubeconfig("node"))
    assert agent[agent.index("--cluster-cidr") + 1] == "10.244.0.0/16"
    cm = args["controller-manager"]
    assert cm[cm.index("--cluster-signing-key-file") + 1] == str(m.ca_key)
    assert args["etcd"][args["etcd"].index("--data-dir") + 1] == str(m.data_dir / "etcd")
    # Each component has credentials of its own.
    for c in ("controller-manager", "scheduler", "proxy", "dns"):
        assert args[c][args[c].index("--kubeconfig") + 1] == str(m.kubeconfig(c))
    # Pods resolve through kube-dns; the DNS server listens on, and publishes, this machine's address.
    assert agent[agent.index("--cluster-dns") + 1] == "10.96.0.10"
    dns = args["dns"]
    assert dns[dns.index("--bind") + 1] == dns[dns.index("--publish-address") + 1] == "192.168.56.10"
    worker = join.node_args(m, "w1", "192.168.56.11", "10.244.0.0/16")
    assert set(worker) == {"cni-daemon", "agent", "proxy"}
    assert worker["proxy"][worker["proxy"].index("--kubeconfig") + 1] == str(m.kubeconfig("node"))
    assert worker["agent"][worker["agent"].index("--cluster-dns") + 1] == "10.96.0.10"


def test_a_failed_write_takes_back_everything_it_created_and_nothing_else(tmp_path):
    keep = tmp_path / "etc" / "kept"
    keep.parent.mkdir()
    keep.write_text("someone else's")
    w = machine.FileWriter()
    w.write(tmp_path / "etc" / "kubeling" / "pki" / "ca.key", b"secret", 0o600)
    w.write(tmp_path / "default" / "kubeling-agent", "X=1\n")
    assert oct((tmp_path / "etc" / "kubeling" / "pki" / "ca.key").stat().st_mode & 0o777) == "0o600"
    w.rollback()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["etc", "etc/kept"]


def test_an_installation_is_recognised_by_its_units_or_kubeconfigs(tmp_path):
    m = _machine(tmp_path)
    assert machine.existing_installation(m) is None
    m.config_dir.mkdir()
    m.kubeconfig("node").write_text("x")
    assert machine.existing_installation(m) == str(m.kubeconfig("node"))
    m.kubeconfig("node").unlink()
    m.unit_dir.mkdir()
    (m.unit_dir / "kubeling-proxy.service").write_text("[Unit]\n")
    assert "kubeling-proxy.service" in machine.existing_installation(m)


def test_pod_network_must_hold_node_subnets_and_not_overlap_services(tmp_path):
    m = _machine(tmp_path)
    def check(pod: str, svc: str = "10.96.0.0/12") -> None:
        init._check(m, "192.168.56.10", "cp", "abcdef.0123456789abcdef", None, None, pod, svc, 6443, True)
    check("10.244.0.0/16")
    with pytest.raises(machine.SetupError, match="too small"):
        check("10.244.0.0/24")
    with pytest.raises(machine.SetupError, match="overlaps"):
        check("10.96.0.0/16")
    with pytest.raises(machine.SetupError, match="only"):
        check("10.244.0.0/16", "10.100.0.0/16")


def test_without_systemd_init_and_join_say_so_unless_only_writing_files(monkeypatch):
    monkeypatch.setattr(machine.systemd, "booted", lambda: False)
    with pytest.raises(machine.SetupError, match="does not run systemd"):
        machine.check_systemd(no_start=False)
    machine.check_systemd(no_start=True)


def test_a_node_on_containerd_gets_its_unit_before_the_agent_and_the_agent_its_endpoint(tmp_path):
    m = _machine(tmp_path)
    docker = join.node_args(m, "w1", "192.168.56.11", "10.244.0.0/16")
    assert machine.with_runtime_args(m, docker, "docker") == docker
    args = machine.with_runtime_args(m, docker, "containerd")
    assert list(args) == ["cni-daemon", "containerd", "agent", "proxy"]
    agent = args["agent"]
    assert agent[agent.index("--container-runtime-endpoint") + 1] == \
        "unix:///run/kubeling/containerd/containerd.sock"
    cd = args["containerd"]
    assert cd[cd.index("--root") + 1] == str(m.data_dir / "containerd")
    assert cd[cd.index("--config") + 1] == str(m.config_dir / "containerd" / "config.toml")
    assert cd[cd.index("--cni-conf-dir") + 1] == str(m.cni_conf_dir)
    # The flags pass through the unit's EnvironmentFile.
    assert machine.systemd.parse_defaults(machine.systemd.render_defaults("containerd", cd), "containerd") == cd
    cp = machine.with_runtime_args(m, init.component_args(m, "192.168.56.10", "cp", "10.244.0.0/16",
                                                          "10.96.0.0/12", 6443), "containerd")
    assert list(cp).index("containerd") == list(cp).index("agent") - 1


def test_runtime_containerd_needs_containerd_ctr_and_docker_unless_only_writing_files(monkeypatch):
    monkeypatch.setattr(machine.shutil, "which", lambda tool: None if tool == "ctr" else f"/usr/bin/{tool}")
    with pytest.raises(machine.SetupError, match="needs ctr"):
        machine.check_runtime("containerd", no_start=False)
    machine.check_runtime("containerd", no_start=True)
    machine.check_runtime("docker", no_start=False)
