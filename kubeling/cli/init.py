"""`kubeling init`: make this machine the control plane (and a node) of a new cluster,
every component a systemd unit.

Everything is checked before anything changes; the files are written next, and taken
back if writing fails; then the units start, in order, and init waits for its own Node."""
from __future__ import annotations

import ipaddress
import shlex
import shutil
from pathlib import Path

import click

from kubeling import encryption_config, kubeconfig, pki, systemd

from .machine import (APISERVER_PORT, FileWriter, Machine, SetupError, check_ip, check_node_name, check_port_free,
                      check_runtime, check_systemd, check_token, default_node_name, existing_installation, fail,
                      import_images_hook, install_cni_plugins, machine_from, machine_options, new_token, read_file,
                      runtime_option, start_and_wait, step, with_runtime_args, write_component, writing_files)

ETCD_PORT = 2379
ETCD_PEER_PORT = 2380
# The apiserver allocates ClusterIPs from this range only (controlplane/apiserver/allocator.py).
SERVICE_CIDR = "10.96.0.0/12"

ENCRYPTION_CONFIG = "encryption-config.yaml"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Who each component is to the apiserver (CN, groups), as kubeadm names them.
IDENTITIES = {
    "admin": ("kubernetes-admin", ("system:masters",)),
    "controller-manager": ("system:kube-controller-manager", ()),
    "scheduler": ("system:kube-scheduler", ()),
    "proxy": ("system:kube-proxy", ()),
    "dns": ("system:kube-dns", ()),
}
# The kube-dns Service's address (kubeadm's: the tenth of the service range), the agents' --cluster-dns.
CLUSTER_DNS_IP = str(ipaddress.ip_network(SERVICE_CIDR)[10])


def serving_hosts(advertise: str, node_name: str, service_cidr: str) -> list[str]:
    """Every name and address the apiserver is reached on (its certificate's SANs)."""
    first_service_ip = str(ipaddress.ip_network(service_cidr)[1])
    return [advertise, "127.0.0.1", first_service_ip, node_name, "localhost", "kubernetes",
            "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]


def component_args(m: Machine, advertise: str, node_name: str, pod_cidr: str,
                   service_cidr: str, port: int = APISERVER_PORT) -> dict[str, list[str]]:
    """Each unit's flags (its /etc/default/kubeling-<component>)."""
    etcd_url = f"http://127.0.0.1:{ETCD_PORT}"
    peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"
    kc = lambda who: ["--kubeconfig", str(m.kubeconfig(who))]  # noqa: E731
    return {
        "etcd": ["--name", node_name, "--data-dir", str(m.data_dir / "etcd"),
                 "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"{node_name}={peer}",
                 "--auto-compaction-mode", "periodic", "--auto-compaction-retention", "10m",
                 "--snapshot-count", "10000",  # kubeadm's: bounds the raft log etcd holds in memory
                 "--logger", "zap"],
        "apiserver": ["--etcd", etcd_url, "--bind", "0.0.0.0", "--port", str(port),
                      "--tls-cert-file", str(m.pki / "apiserver.crt"),
                      "--tls-private-key-file", str(m.pki / "apiserver.key"),
                      "--client-ca-file", str(m.ca_cert),
                      "--token-file", str(m.token_file),
                      # Secrets encrypted at rest; ServiceAccount tokens signed and verified.
                      "--encryption-provider-config", str(m.config_dir / ENCRYPTION_CONFIG),
                      "--service-account-signing-key-file", str(m.pki / "sa.key"),
                      "--service-account-key-file", str(m.pki / "sa.pub"),
                      "--service-account-issuer", SERVICE_ACCOUNT_ISSUER,
                      # The agents answer logs/exec/port-forward to this certificate only.
                      "--kubelet-client-certificate", str(m.pki / "apiserver-kubelet-client.crt"),
                      "--kubelet-client-key", str(m.pki / "apiserver-kubelet-client.key")],
        "controller-manager": [*kc("controller-manager"), "--cluster-cidr", pod_cidr,
                               "--cluster-signing-cert-file", str(m.ca_cert),
                               "--cluster-signing-key-file", str(m.ca_key),
                               "--root-ca-file", str(m.ca_cert)],
        "scheduler": kc("scheduler"),
        "cni-daemon": [],
        "agent": [*kc("node"), "--node-name", node_name, "--node-ip", advertise,
                  "--root-dir", str(m.data_dir / "agent"), "--cni-conf-dir", str(m.cni_conf_dir),
                  "--cni-bin-dir", f"{m.cni_bin_dir}:/usr/lib/cni", "--cluster-cidr", pod_cidr,
                  "--client-ca-file", str(m.ca_cert), "--cluster-dns", CLUSTER_DNS_IP],
        "proxy": [*kc("proxy"), "--node-name", node_name, "--cluster-cidr", pod_cidr,
                  "--service-cidr", service_cidr],
        # The DNS server on this machine's address; it publishes itself as an endpoint of kube-dns.
        "dns": [*kc("dns"), "--node-name", node_name, "--bind", advertise, "--port", "53",
                "--publish-address", advertise, "--service-cidr", service_cidr],
    }


def join_line(advertise: str, port: int, token: str, ca_cert: Path) -> str:
    return shlex.join(["kubeling", "join", f"https://{advertise}:{port}", "--token", token,
                       "--ca-cert", str(ca_cert)])


def _check(m: Machine, advertise: str, node_name: str, token: str, ca_cert: str | None, ca_key: str | None,
           pod_cidr: str, service_cidr: str, port: int, no_start: bool,
           runtime: str = "docker") -> tuple[bytes, bytes] | None:
    found = existing_installation(m)
    if found:
        raise SetupError(f"this machine already is a kubeling control plane or node ({found} exists); "
                         "run `kubeling reset` first")
    check_ip(advertise, "--advertise-address")
    check_node_name(node_name)
    check_token(token)
    try:
        pod_net = ipaddress.IPv4Network(pod_cidr)
    except ValueError:
        raise SetupError(f"--pod-network-cidr {pod_cidr!r} is not an IPv4 CIDR") from None
    if pod_net.prefixlen > 23:
        raise SetupError(f"--pod-network-cidr {pod_cidr} is too small: each node takes a /24 of it")
    if service_cidr != SERVICE_CIDR:
        raise SetupError(f"--service-cidr: the apiserver serves ClusterIPs from {SERVICE_CIDR} only")
    if pod_net.overlaps(ipaddress.IPv4Network(service_cidr)):
        raise SetupError(f"--pod-network-cidr {pod_cidr} overlaps --service-cidr {service_cidr}")
    ca = None
    if bool(ca_cert) != bool(ca_key):
        raise SetupError("give both --ca-cert and --ca-key, or neither (a new CA is made)")
    if ca_cert and ca_key:
        ca = (read_file(ca_cert, "--ca-cert"), read_file(ca_key, "--ca-key"))
        try:
            # A test certificate proves the key is the certificate's and both can sign.
            leaf, _ = pki.issue_cert_pem(ca[0], ca[1], "kubeling-init-check", days=1)
        except (pki.PKIError, ValueError) as exc:
            raise SetupError(f"--ca-cert/--ca-key cannot sign: {exc}") from None
        if not pki.verify_signed_by(leaf, ca[0]):
            raise SetupError("--ca-key is not the key of --ca-cert")
    check_systemd(no_start)
    check_runtime(runtime, no_start)
    if not no_start:
        if shutil.which("etcd") is None:
            raise SetupError("etcd is not installed (Debian: apt-get install etcd-server)")
        if systemd.systemctl("is-active", "--quiet", "etcd.service", check=False).returncode != 0:
            check_port_free(ETCD_PORT, "etcd")  # (Debian's etcd.service is stopped below)
        check_port_free(port, "apiserver")
    return ca


def _write_files(w: FileWriter, m: Machine, advertise: str, node_name: str, token: str,
                 ca: tuple[bytes, bytes] | None, pod_cidr: str, service_cidr: str, port: int,
                 runtime: str = "docker") -> None:
    step(f"writing the cluster CA and certificates to {m.pki}")
    w.mkdir(m.pki, 0o755)
    w.adopt([m.ca_cert, m.ca_key])
    if ca:
        w.write(m.ca_cert, ca[0], 0o644)
        w.write(m.ca_key, ca[1], 0o600)
    else:
        pki.make_ca(m.ca_cert, m.ca_key)
    ca_pem, ca_key_pem = m.ca_cert.read_bytes(), m.ca_key.read_bytes()
    cert, key = pki.issue_cert_pem(ca_pem, ca_key_pem, "kube-apiserver",
                                   hosts=serving_hosts(advertise, node_name, service_cidr),
                                   client=False, server=True)
    w.write(m.pki / "apiserver.crt", cert, 0o644)
    w.write(m.pki / "apiserver.key", key, 0o600)
    # The apiserver's client certificate towards the node agents (kubeadm's apiserver-kubelet-client).
    cert, key = pki.issue_cert_pem(ca_pem, ca_key_pem, pki.KUBELET_CLIENT_CN, pki.KUBELET_CLIENT_GROUPS)
    w.write(m.pki / "apiserver-kubelet-client.crt", cert, 0o644)
    w.write(m.pki / "apiserver-kubelet-client.key", key, 0o600)
    # The ServiceAccount token key pair (kubeadm's sa.key/sa.pub) and the key that
    # encrypts Secrets in etcd: new random keys, readable by root only.
    sa_key = pki.new_key_pem()
    w.write(m.pki / "sa.key", sa_key, 0o600)
    w.write(m.pki / "sa.pub", pki.public_key_pem(sa_key), 0o644)
    w.write(m.config_dir / ENCRYPTION_CONFIG, encryption_config.new_config(), 0o600)

    step(f"writing the kubeconfigs to {m.config_dir}")
    local = f"https://127.0.0.1:{port}"
    who = {**IDENTITIES, "node": (f"system:node:{node_name}", ("system:nodes",))}
    for name, (cn, groups) in who.items():
        cert, key = pki.issue_cert_pem(ca_pem, ca_key_pem, cn, groups, client=True)
        # Admins use the address other machines reach; components on this machine the loopback.
        server = f"https://{advertise}:{port}" if name == "admin" else local
        w.write(m.kubeconfig(name), kubeconfig.render(server, None, ca_pem, user=cn, cert_pem=cert, key_pem=key), 0o600)

    # The bootstrap token: user system:bootstrap:<id> in group system:bootstrappers.
    token_id = token.split(".", 1)[0]
    w.write(m.token_file, f'{token},system:bootstrap:{token_id},{token_id},"system:bootstrappers"\n', 0o600)
    w.write(m.join_command, join_line(advertise, port, token, m.ca_cert) + "\n", 0o600)

    step(f"writing the units to {m.unit_dir} and their flags to {m.defaults_dir}")
    args_of = with_runtime_args(m, component_args(m, advertise, node_name, pod_cidr, service_cidr, port), runtime)
    for component, args in args_of.items():
        write_component(w, m, component, args)
    w.mkdir(m.data_dir, 0o700)


def _disable_debian_etcd() -> None:
    if systemd.systemctl("is-enabled", "--quiet", "etcd.service", check=False).returncode == 0:
        # Debian's etcd-server enables its own etcd on 127.0.0.1:2379.
        step("disabling Debian's etcd.service (kubeling-etcd replaces it)")
        systemd.systemctl("disable", "--now", "etcd.service")


@click.command("init")
@click.option("--advertise-address", required=True, help="this machine's address other nodes reach it on")
@click.option("--node-name", default=None, help="this node's name  [default: the hostname]")
@click.option("--token", default=None, help="bootstrap token for `kubeling join` (abcdef.0123456789abcdef) "
              "[default: a new one]")
@click.option("--ca-cert", default=None, help="use this CA certificate (with --ca-key) instead of making one")
@click.option("--ca-key", default=None, help="the CA's private key")
@click.option("--pod-network-cidr", default="10.244.0.0/16", show_default=True)
@click.option("--service-cidr", default=SERVICE_CIDR, show_default=True)
@click.option("--apiserver-bind-port", "port", type=click.IntRange(1, 65535), default=APISERVER_PORT,
              show_default=True)
@click.option("--wait", "wait_s", type=float, default=180, show_default=True,
              help="seconds to wait for this node to be Ready (0: don't wait)")
@click.option("--no-start", is_flag=True, help="write every file but start nothing (no systemd needed)")
@runtime_option
@machine_options
def init_cmd(advertise_address: str, node_name: str | None, token: str | None, ca_cert: str | None,
             ca_key: str | None, pod_network_cidr: str, service_cidr: str, port: int, wait_s: float,
             no_start: bool, runtime: str, **kw: object) -> None:
    """Make this machine the control plane of a new cluster (and a node of it)."""
    m = machine_from(kw)
    node_name = node_name or default_node_name()
    token = token or new_token()
    try:
        ca = _check(m, advertise_address, node_name, token, ca_cert, ca_key, pod_network_cidr, service_cidr,
                    port, no_start, runtime)
    except SetupError as exc:
        fail(str(exc))
    with writing_files() as w:
        _write_files(w, m, advertise_address, node_name, token, ca, pod_network_cidr, service_cidr, port, runtime)
        install_cni_plugins(m)
    start_and_wait(systemd.with_runtime(systemd.ALL, runtime), m.kubeconfig("admin"), node_name, wait_s, no_start,
                   before=_disable_debian_etcd, after=import_images_hook(runtime))
    click.echo(f"kubeling control plane at https://{advertise_address}:{port}; "
               f"admin kubeconfig {m.kubeconfig('admin')}")
    click.echo("Join a worker with:")
    click.echo("  " + join_line(advertise_address, port, token, m.ca_cert))
