"""`kubeling join https://IP:6443 --token T --ca-cert F`: make this machine a worker node.

The token is traded for credentials of this node's own (a CSR the control plane signs;
the private key never leaves this machine). Every check, the exchange included, comes
before the first file is written, so a failed join changes nothing and can be retried."""
from __future__ import annotations

import socket
import urllib.parse

import click

from kubeling import kubeconfig, pki, systemd

from .init import CLUSTER_DNS_IP
from .machine import (Machine, SetupError, check_ip, check_node_name, check_runtime, check_systemd, check_token,
                      default_node_name, existing_installation, fail, import_images_hook, install_cni_plugins,
                      machine_from, machine_options, read_file, runtime_option, start_and_wait, step,
                      with_runtime_args, write_component, writing_files)


def check_server(url: str) -> tuple[str, str, int]:
    """(url without a trailing slash, host, port) of an https:// apiserver URL."""
    parsed = urllib.parse.urlparse(url)
    try:
        port = parsed.port or 443
    except ValueError:
        raise SetupError(f"{url!r} has an invalid port") from None
    if parsed.scheme != "https" or not parsed.hostname or parsed.path not in ("", "/"):
        raise SetupError(f"{url!r} is not an API server URL like https://192.168.56.10:6443")
    return url.rstrip("/"), parsed.hostname, port


def choose_node_ip(node_ip: str | None, host: str, port: int) -> str:
    if node_ip:
        return check_ip(node_ip, "--node-ip")
    from_route = source_ip_towards(host, port)
    if not from_route:
        raise SetupError(f"there is no route to the API server at {host}; pass --node-ip")
    try:
        return check_ip(from_route, "the address on the route to the API server")
    except SetupError:
        raise SetupError(f"this machine reaches the API server from {from_route}, which other nodes "
                         "cannot reach; pass --node-ip") from None


def source_ip_towards(host: str, port: int) -> str | None:
    """The local address the kernel picks to reach host:port (a UDP connect sends nothing).
    agent/node_ip.py has its twin; kubeling/ may not import the agent."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((socket.gethostbyname(host), port))
            return s.getsockname()[0]
    except OSError:
        return None


def node_args(m: Machine, node_name: str, node_ip: str, pod_cidr: str) -> dict[str, list[str]]:
    """The flags of a worker's units: the agent and the proxy both use the node's credentials
    (the Node authorizer lets a node read services and endpointslices)."""
    kc = ["--kubeconfig", str(m.kubeconfig("node"))]
    return {
        "cni-daemon": [],
        "agent": [*kc, "--node-name", node_name, "--node-ip", node_ip, "--root-dir", str(m.data_dir / "agent"),
                  "--cni-conf-dir", str(m.cni_conf_dir), "--cni-bin-dir", f"{m.cni_bin_dir}:/usr/lib/cni",
                  "--cluster-cidr", pod_cidr,
                  # Only the apiserver's kubelet client certificate (signed by this CA) is let in.
                  "--client-ca-file", str(m.ca_cert), "--cluster-dns", CLUSTER_DNS_IP],
        "proxy": [*kc, "--node-name", node_name, "--cluster-cidr", pod_cidr],
    }


@click.command("join")
@click.argument("server")
@click.option("--token", required=True, help="the bootstrap token `kubeling init` printed")
@click.option("--ca-cert", required=True, help="the cluster CA certificate (trusted, never fetched)")
@click.option("--node-ip", default=None,
              help="InternalIP of this node  [default: the source address of the route to the API server]")
@click.option("--node-name", default=None, help="this node's name  [default: the hostname]")
@click.option("--pod-network-cidr", default="10.244.0.0/16", show_default=True,
              help="the cluster's pod network, as given to init")
@click.option("--timeout", type=float, default=60, show_default=True,
              help="seconds for getting this node's credentials signed")
@click.option("--wait", "wait_s", type=float, default=180, show_default=True,
              help="seconds to wait for this node to be Ready (0: don't wait)")
@click.option("--no-start", is_flag=True, help="write every file but start nothing (no systemd needed)")
@runtime_option
@machine_options
def join_cmd(server: str, token: str, ca_cert: str, node_ip: str | None, node_name: str | None,
             pod_network_cidr: str, timeout: float, wait_s: float, no_start: bool, runtime: str,
             **kw: object) -> None:
    """Join this machine to a cluster as a worker node."""
    from kubeling import bootstrap  # the CSR exchange: only a join needs it loaded
    m = machine_from(kw)
    node_name = node_name or default_node_name()
    try:
        found = existing_installation(m)
        if found:
            raise SetupError(f"this machine already is a kubeling node or control plane ({found} exists); "
                             "run `kubeling reset` first")
        server, host, port = check_server(server)
        check_token(token)
        check_node_name(node_name)
        ca_pem = read_file(ca_cert, "--ca-cert")
        try:
            pki.load_cert(ca_pem)
        except pki.PKIError as exc:
            raise SetupError(f"--ca-cert {ca_cert}: {exc}") from None
        check_systemd(no_start)
        check_runtime(runtime, no_start)
        ip = choose_node_ip(node_ip, host, port)
        step(f"asking {server} for credentials of node {node_name} (node IP {ip})")
        cert_pem, key_pem = bootstrap.request_node_credentials(server, token, ca_pem, node_name, timeout)
    except SetupError as exc:
        fail(str(exc))
    except bootstrap.JoinError as exc:
        fail(str(exc))
    with writing_files() as w:
        step(f"writing {m.kubeconfig('node')} and {m.ca_cert}")
        w.mkdir(m.pki)
        w.write(m.ca_cert, ca_pem, 0o644)
        w.write(m.kubeconfig("node"),
                kubeconfig.render(server, None, ca_pem, user=f"system:node:{node_name}",
                                  cert_pem=cert_pem, key_pem=key_pem), 0o600)
        step(f"writing the units to {m.unit_dir} and their flags to {m.defaults_dir}")
        for component, args in with_runtime_args(m, node_args(m, node_name, ip, pod_network_cidr), runtime).items():
            write_component(w, m, component, args)
        w.mkdir(m.data_dir, 0o700)
        install_cni_plugins(m)
    if not start_and_wait(systemd.with_runtime(systemd.NODE, runtime), m.kubeconfig("node"), node_name, wait_s,
                          no_start, after=import_images_hook(runtime)):
        return
    click.echo(f"node {node_name} joined the cluster at {server}")
