"""`kubeling init`, `join` and `reset` against a real control plane.

This machine has no systemd, so init and join run with --no-start and every path moved
into a temporary "machine" root; the control plane is then started from exactly the
flags init wrote (its /etc/default/kubeling-* files): a real apiserver serving the
certificate init made, trusting init's CA, knowing init's bootstrap token, and the
controller-manager signing node CSRs with init's CA key. Only etcd's address (the
session's etcd) and the bind address (loopback) differ. The units themselves run in
the systemd node containers (scripts/test-vms).
"""
from __future__ import annotations

import asyncio
import base64
import os
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from kubeling import errors, pki, systemd
from kubeling.client import Client
from kubeling.resources import lookup
from tests.conftest import REPO, free_port, stop_process, wait_for

from controlplane.apiserver.authn import parse_token_file

TOKEN = "u7nits.0123456789abcdef"
SUFFIX = str(os.getpid() % 100000)
CP, WORKER = f"init-cp-{SUFFIX}", f"init-w-{SUFFIX}"
SECRET_FILES = ("admin.kubeconfig", "controller-manager.kubeconfig", "scheduler.kubeconfig",
                "proxy.kubeconfig", "node.kubeconfig", "tokens.csv", "join-command", "pki/ca.key",
                "pki/apiserver.key")


def machine_env(root: Path) -> dict[str, str]:
    """A machine of its own: every path init/join/reset touch lies under root."""
    return {**os.environ, "KUBELING_CONFIG_DIR": str(root / "etc/kubeling"),
            "KUBELING_DATA_DIR": str(root / "var/lib/kubeling"), "KUBELING_UNIT_DIR": str(root / "etc/systemd"),
            "KUBELING_DEFAULTS_DIR": str(root / "etc/default"), "KUBELING_CNI_CONF_DIR": str(root / "etc/cni"),
            "KUBELING_CNI_BIN_DIR": str(root / "opt/cni/bin")}


def kubeling(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "kubeling", *args], capture_output=True, text=True,
                          env=machine_env(root), cwd=REPO, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubeling {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under root with its mode and content (what 'nothing changed' compares)."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): (p.stat().st_mode, p.read_bytes() if p.is_file() else b"")
            for p in sorted(root.rglob("*"))}


def files_left(root: Path) -> list[str]:
    """What reset leaves: nothing but the CNI plugins, which belong to the installation
    (like the kubeling command itself), not to the cluster."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.parent != root / "opt/cni/bin")


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, err


def _flags(root: Path, component: str, **replace: str) -> list[str]:
    args = systemd.parse_defaults((root / f"etc/default/kubeling-{component}").read_text(), component)
    for flag, value in replace.items():
        args[args.index(flag) + 1] = value
    return args


@pytest.fixture(scope="module")
def control_plane(etcd, tmp_path_factory):
    """`kubeling init --no-start`, then its apiserver and controller-manager, as its units would run them."""
    base = tmp_path_factory.mktemp("init-join")
    root = base / "cp"
    port = free_port()
    out = kubeling(root, "init", "--advertise-address", "192.0.2.10", "--node-name", CP, "--token", TOKEN,
                   "--apiserver-bind-port", str(port), "--no-start").stdout
    procs, logs = [], []
    try:
        for module, component, replace in (
                ("controlplane.apiserver", "apiserver", {"--etcd": etcd.url, "--bind": "127.0.0.1"}),
                ("controlplane.controllers", "controller-manager", {})):
            log = base / f"{component}.log"
            logs.append(log)
            with open(log, "wb") as f:
                procs.append(subprocess.Popen([sys.executable, "-m", module, *_flags(root, component, **replace)],
                                              stdout=f, stderr=subprocess.STDOUT, cwd=REPO))
            if component == "apiserver":
                ctx = ssl.create_default_context(cafile=str(root / "etc/kubeling/pki/ca.crt"))

                def ready() -> bool:
                    assert procs[0].poll() is None, logs[0].read_text()[-3000:]
                    # The serving certificate init made verifies against init's CA for 127.0.0.1.
                    with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", timeout=1, context=ctx) as r:
                        return r.status == 200
                wait_for(ready, 30, "the apiserver init configured")
        yield {"root": root, "base": base, "server": f"https://127.0.0.1:{port}", "port": port, "init_out": out}
    finally:
        for p in reversed(procs):
            stop_process(p)
    for log in logs:
        assert "Traceback" not in log.read_text(), log.read_text()[-4000:]


def test_init_writes_the_control_plane_files_secrets_0600(control_plane):
    root, port = control_plane["root"], control_plane["port"]
    etc = root / "etc/kubeling"
    for name in SECRET_FILES:
        assert oct((etc / name).stat().st_mode & 0o777) == "0o600", name
    assert oct((etc / "pki/ca.crt").stat().st_mode & 0o777) == "0o644"
    for c in systemd.ALL:
        assert (root / f"etc/systemd/kubeling-{c}.service").read_text() == \
            systemd.render_unit(c, systemd.Dirs(root / "etc/systemd", root / "etc/default", etc))
        assert (root / f"etc/default/kubeling-{c}").exists()
    assert (root / "opt/cni/bin/kubeling-bridge").exists() and (root / "opt/cni/bin/kubeling-ipam").exists()

    ca = (etc / "pki/ca.crt").read_bytes()
    expected = {"admin": ("kubernetes-admin", ["system:masters"]),
                "controller-manager": ("system:kube-controller-manager", []),
                "scheduler": ("system:kube-scheduler", []), "proxy": ("system:kube-proxy", []),
                "dns": ("system:kube-dns", []),
                "node": (f"system:node:{CP}", ["system:nodes"])}
    for who, identity in expected.items():
        doc = yaml.safe_load((etc / f"{who}.kubeconfig").read_text())
        user = doc["users"][0]["user"]
        assert "token" not in user, "components use certificates of their own"
        cert = base64.b64decode(user["client-certificate-data"])
        assert pki.verify_signed_by(cert, ca)
        assert pki.subject_of(pki.load_cert(cert)) == identity, who
        server = doc["clusters"][0]["cluster"]["server"]
        assert server == (f"https://192.0.2.10:{port}" if who == "admin" else f"https://127.0.0.1:{port}")

    users = parse_token_file((etc / "tokens.csv").read_text())
    boot = users[TOKEN]
    assert boot.name == "system:bootstrap:u7nits" and "system:bootstrappers" in boot.groups
    line = f"kubeling join https://192.0.2.10:{port} --token {TOKEN} --ca-cert {etc / 'pki/ca.crt'}"
    assert (etc / "join-command").read_text().strip() == line
    assert line in control_plane["init_out"]
    agent = _flags(root, "agent")
    assert agent[agent.index("--node-ip") + 1] == "192.0.2.10"
    # The agent's port answers only the apiserver's kubelet client certificate, of this CA.
    assert agent[agent.index("--client-ca-file") + 1] == str(etc / "pki/ca.crt")
    apiserver = _flags(root, "apiserver")
    kubelet_cert = (etc / "pki/apiserver-kubelet-client.crt").read_bytes()
    flag = apiserver.index("--kubelet-client-certificate")
    assert apiserver[flag + 1] == str(etc / "pki/apiserver-kubelet-client.crt")
    assert pki.verify_signed_by(kubelet_cert, ca)
    assert pki.subject_of(pki.load_cert(kubelet_cert)) == ("kube-apiserver-kubelet-client", ["system:masters"])
    assert oct((etc / "pki/apiserver-kubelet-client.key").stat().st_mode & 0o777) == "0o600"


def test_join_gets_credentials_of_its_own_and_refuses_a_second_time(control_plane, tmp_path):
    root = tmp_path / "worker"
    ca = control_plane["root"] / "etc/kubeling/pki/ca.crt"
    out = kubeling(root, "join", control_plane["server"], "--token", TOKEN, "--ca-cert", str(ca),
                   "--node-name", WORKER, "--node-ip", "192.0.2.11", "--timeout", "30", "--no-start").stdout
    assert "==> " in out
    etc = root / "etc/kubeling"
    assert sorted(p.name for p in etc.iterdir()) == ["node.kubeconfig", "pki"], "no admin or CA key on a worker"
    assert sorted(p.name for p in (etc / "pki").iterdir()) == ["ca.crt"]
    assert oct((etc / "node.kubeconfig").stat().st_mode & 0o777) == "0o600"
    doc = yaml.safe_load((etc / "node.kubeconfig").read_text())
    cert = base64.b64decode(doc["users"][0]["user"]["client-certificate-data"])
    assert pki.subject_of(pki.load_cert(cert)) == (f"system:node:{WORKER}", ["system:nodes"])
    assert pki.verify_signed_by(cert, ca.read_bytes())
    assert sorted(p.name for p in (root / "etc/systemd").iterdir()) == \
        ["kubeling-agent.service", "kubeling-cni-daemon.service", "kubeling-proxy.service"]
    agent = _flags(root, "agent")
    assert agent[agent.index("--node-ip") + 1] == "192.0.2.11"
    assert agent[agent.index("--node-name") + 1] == WORKER
    assert agent[agent.index("--client-ca-file") + 1] == str(etc / "pki/ca.crt")

    # The credentials work: the node may read its own Node (not there yet: 404, not 401/403).
    async def get_own_node() -> int:
        client = Client.from_kubeconfig(str(etc / "node.kubeconfig"))
        try:
            await client.get(lookup("nodes"), WORKER)
            return 200
        except errors.ApiError as exc:
            return exc.code
        finally:
            await client.close()
    assert asyncio.run(get_own_node()) == 404

    before = snapshot(root)
    again = kubeling(root, "join", control_plane["server"], "--token", TOKEN, "--ca-cert", str(ca),
                     "--node-name", WORKER, "--node-ip", "192.0.2.11", "--no-start", check=False)
    assert_one_line_error(again, "already", "kubeling reset")
    init = kubeling(root, "init", "--advertise-address", "192.0.2.11", "--no-start", check=False)
    assert_one_line_error(init, "already", "kubeling reset")
    assert snapshot(root) == before

    # reset takes it all away, and again finds nothing to do.
    kubeling(root, "reset")
    assert files_left(root) == []
    assert kubeling(root, "reset").returncode == 0


@pytest.mark.parametrize("case", ["wrong token", "wrong CA", "unreachable", "loopback node IP", "bad token"])
def test_a_join_that_cannot_work_says_why_in_one_line_and_writes_nothing(control_plane, tmp_path, case):
    root = tmp_path / "worker"
    ca = str(control_plane["root"] / "etc/kubeling/pki/ca.crt")
    server, token, words = control_plane["server"], TOKEN, []
    extra = ["--node-ip", "192.0.2.12"]
    if case == "wrong token":
        token, words = "u7nits.ffffffffffffffff", ["refused the token"]
    elif case == "wrong CA":
        pki.make_ca(tmp_path / "other-ca.crt", tmp_path / "other-ca.key")
        ca, words = str(tmp_path / "other-ca.crt"), ["CA certificate does not verify"]
    elif case == "unreachable":
        server, words = f"https://127.0.0.1:{free_port()}", ["cannot reach"]
    elif case == "loopback node IP":
        extra, words = [], ["pass --node-ip"]  # the route to 127.0.0.1 starts at 127.0.0.1
    elif case == "bad token":
        token, words = "not-a-token", ["bootstrap token"]
    proc = kubeling(root, "join", server, "--token", token, "--ca-cert", ca, "--node-name", f"bad-{SUFFIX}",
                    "--timeout", "10", "--no-start", *extra, check=False)
    assert_one_line_error(proc, *words)
    assert snapshot(root) == {}


def test_init_on_a_control_plane_refuses_and_reset_removes_it(control_plane, tmp_path):
    root = tmp_path / "cp2"
    kubeling(root, "init", "--advertise-address", "192.0.2.20", "--node-name", "cp2", "--no-start")
    before = snapshot(root)
    again = kubeling(root, "init", "--advertise-address", "192.0.2.20", "--node-name", "cp2", "--no-start",
                     check=False)
    assert_one_line_error(again, "already is a kubeling control plane")
    assert snapshot(root) == before
    out = kubeling(root, "reset").stdout
    assert "removed" in out
    assert files_left(root) == []


def test_init_checks_its_input_before_writing(tmp_path):
    root = tmp_path / "m"
    for args, words in (
            (["--advertise-address", "127.0.0.1"], ["cannot be used"]),
            (["--advertise-address", "192.0.2.1", "--token", "short"], ["bootstrap token"]),
            (["--advertise-address", "192.0.2.1", "--ca-cert", str(tmp_path / "none.crt")], ["both"]),
            (["--advertise-address", "192.0.2.1", "--ca-cert", str(tmp_path / "none.crt"),
              "--ca-key", str(tmp_path / "none.key")], ["cannot read"])):
        assert_one_line_error(kubeling(root, "init", *args, "--no-start", check=False), *words)
    # A CA whose key is not its own.
    pki.make_ca(tmp_path / "a.crt", tmp_path / "a.key")
    pki.make_ca(tmp_path / "b.crt", tmp_path / "b.key")
    proc = kubeling(root, "init", "--advertise-address", "192.0.2.1", "--ca-cert", str(tmp_path / "a.crt"),
                    "--ca-key", str(tmp_path / "b.key"), "--no-start", check=False)
    assert_one_line_error(proc, "--ca-key")
    assert snapshot(root) == {}
    # A CA given is the one used.
    kubeling(root, "init", "--advertise-address", "192.0.2.1", "--ca-cert", str(tmp_path / "a.crt"),
             "--ca-key", str(tmp_path / "a.key"), "--no-start")
    assert (root / "etc/kubeling/pki/ca.crt").read_bytes() == (tmp_path / "a.crt").read_bytes()
    assert oct((root / "etc/kubeling/pki/ca.key").stat().st_mode & 0o777) == "0o600"
    kubeling(root, "reset")


def test_init_with_runtime_containerd_writes_its_unit_before_the_agent_and_reset_removes_it(tmp_path):
    root = tmp_path / "m"
    kubeling(root, "init", "--advertise-address", "192.0.2.30", "--node-name", "cd1", "--runtime", "containerd",
             "--no-start")
    units = root / "etc/systemd"
    cd = units / "kubeling-containerd.service"
    assert cd.read_text() == systemd.render_unit("containerd", systemd.Dirs(units, root / "etc/default",
                                                                            root / "etc/kubeling"))
    agent = _flags(root, "agent")
    assert agent[agent.index("--container-runtime-endpoint") + 1] == "unix:///run/kubeling/containerd/containerd.sock"
    flags = _flags(root, "containerd")
    assert flags[flags.index("--root") + 1] == str(root / "var/lib/kubeling/containerd")
    assert flags[flags.index("--config") + 1] == str(root / "etc/kubeling/containerd/config.toml")
    assert flags[flags.index("--cni-bin-dir") + 1] == str(root / "opt/cni/bin")
    # The unit's command line parses: `kubeling containerd <flags>` is `run` (nothing started here).
    help_ = subprocess.run([sys.executable, "-m", "agent.runtime.containerd_host", "run", "--help"],
                           capture_output=True, text=True, cwd=REPO, timeout=60)
    assert all(f in help_.stdout for f in flags if f.startswith("--"))
    # Docker stays the default: no containerd unit, no endpoint.
    other = tmp_path / "d"
    kubeling(other, "init", "--advertise-address", "192.0.2.31", "--node-name", "d1", "--no-start")
    assert not (other / "etc/systemd/kubeling-containerd.service").exists()
    assert "--container-runtime-endpoint" not in _flags(other, "agent")

    out = kubeling(root, "reset").stdout
    assert "removed" in out
    assert files_left(root) == [] and not cd.exists()
    assert not (root / "etc/default/kubeling-containerd").exists()
