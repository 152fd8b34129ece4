"""Test nodes for the agent e2e tests: each node is a network namespace with its
own dockerd (images copied in from the host's) or, with runtime="containerd", its
own containerd spoken to through CRI, a veth to the root namespace so the agent
inside reaches the API server, and the agent process itself.

Everything a node makes lives under names carrying its random suffix and is
removed by `destroy()`, which also checks that nothing stayed behind."""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from containerd_node import ContainerdDaemon
from tests.conftest import free_link_net, stop_process, wait_for

REPO = Path(__file__).resolve().parents[3]
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
IMAGES = ("busybox:latest", "kubeling/pause:3.9")
TEST_ROOT = Path("/var/lib/kubeling-test")
RUNTIMES = ("docker", "containerd")


def parametrize_runtime(metafunc: Any, scope: str = "function") -> None:
    """Run a test that takes `node_runtime` (directly or through a node fixture) once on each
    runtime, the runtime in its id; KUBELING_TEST_RUNTIME keeps only that runtime."""
    if "node_runtime" not in metafunc.fixturenames:
        return
    only = os.environ.get("KUBELING_TEST_RUNTIME")
    metafunc.parametrize("node_runtime", [r for r in RUNTIMES if not only or r == only], scope=scope)


def sh(*args: str, check: bool = True, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=timeout, **kw)


def docker_env() -> dict[str, str]:
    return {**os.environ, "DOCKER_API_VERSION": "1.41"}


def ensure_host_images() -> None:
    missing = [i for i in IMAGES if sh(DOCKER, "image", "inspect", i, check=False, env=docker_env()).returncode]
    if missing:
        raise RuntimeError(f"images {missing} missing in the host dockerd: run scripts/setup")


@dataclass
class TestNode:
    __test__ = False  # a harness, not a test class
    """A node: netns + dockerd or containerd + agent. Call create(), start_agent(), destroy()."""

    apiserver_port: int
    token: str
    pod_cidr: str | None  # None: the controller manager's node IPAM assigns one
    name: str = field(default_factory=lambda: f"kl-{secrets.token_hex(3)}")
    agent_proc: subprocess.Popen | None = None
    proxy_proc: subprocess.Popen | None = None
    dockerd_proc: subprocess.Popen | None = None
    logs_port: int = 10250
    extra_args: list[str] = field(default_factory=list)
    scheme: str = "http"
    ca_pem: bytes | None = None   # with scheme "https": the API server's CA
    client_ca: Path | None = None  # the agent's --client-ca-file (the apiserver's kubelet client CA)
    # "docker", or "containerd" (the agent gets --container-runtime-endpoint); KUBELING_TEST_RUNTIME
    # sets the default, so the agent e2e tests can run on either.
    runtime: str = field(default_factory=lambda: os.environ.get("KUBELING_TEST_RUNTIME") or "docker")

    def __post_init__(self) -> None:
        suffix = self.name[3:]
        self.root_veth = f"klr{suffix}"
        self.node_veth = f"kln{suffix}"
        self.base = TEST_ROOT / self.name
        self.run_dir = Path("/run") / self.name
        self.netns_path = f"/run/netns/{self.name}"
        self.sock = f"unix://{self.run_dir}/docker.sock"
        self.link_net = free_link_net()
        hosts = list(self.link_net.hosts())
        self.root_ip, self.node_ip = str(hosts[0]), str(hosts[1])
        self.kubeconfig = self.base / "kubeconfig"
        self.agent_root = self.base / "agent"
        self.cni_conf_dir = self.base / "net.d"
        self.agent_log = self.base / "agent.log"
        self.proxy_log = self.base / "proxy.log"
        self.dockerd_log = self.base / "dockerd.log"
        self.containerd = ContainerdDaemon(self.base, self.run_dir, self.netns_path, self.cni_conf_dir,
                                           f"/kubeling-test-{suffix}") if self.runtime == "containerd" else None

    # ---- helpers -----------------------------------------------------------------

    def ns(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return sh("nsenter", f"--net={self.netns_path}", *args, check=check, timeout=timeout)

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        if self.containerd is not None and args[:1] == ("exec",):
            # The one docker command tests use that a containerd node can answer too.
            return self.container_exec(*args[1:], check=check, timeout=timeout)
        return sh(DOCKER, "-H", self.sock, *args, check=check, timeout=timeout, env=docker_env())

    def containers(self, all_: bool = True) -> list[dict[str, Any]]:
        """Containers in this node's dockerd (or containerd), the same keys on both: ID, Names (the
        runtime's name), State, LabelMap, Container (its container name, "POD" for a sandbox) and
        SandboxID (an app container's sandbox)."""
        if self.containerd is not None:
            return self._containerd_containers(all_)
        out = self.docker("ps", "--no-trunc", "--format", "{{json .}}", *(["-a"] if all_ else [])).stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        for r in rows:
            r["LabelMap"] = labels = dict(kv.split("=", 1) for kv in r.get("Labels", "").split(",") if "=" in kv)
            r["Container"] = labels.get("io.kubernetes.container.name", "")
            r["SandboxID"] = labels.get("io.kubernetes.sandbox.id", "")
        return rows

    def kube_container_name(self, pod: dict[str, Any], container: str, attempt: int = 0) -> str:
        """The name the runtime gives a pod's container ("POD": its sandbox): dockershim's
        k8s_<container>_<pod>_<ns>_<uid>_<attempt>, containerd's CRI <container>_<pod>_<ns>_<uid>_<attempt>
        (the sandbox without the container part)."""
        meta = pod["metadata"]
        tail = f"{meta['name']}_{meta['namespace']}_{meta['uid']}_{attempt}"
        if self.containerd is None:
            return f"k8s_{container}_{tail}"
        return tail if container == "POD" else f"{container}_{tail}"

    def _containerd_containers(self, all_: bool) -> list[dict[str, Any]]:
        running = set()
        for line in self.containerd.ctr("tasks", "ls").stdout.splitlines()[1:]:
            w = line.split()
            if len(w) >= 3 and w[2] == "RUNNING":
                running.add(w[0])
        rows = []
        for cid in self.containerd.ctr("containers", "ls", "-q").stdout.split():
            if not all_ and cid not in running:
                continue
            info = self.containerd.ctr("containers", "info", cid, check=False)
            if info.returncode:
                continue  # removed meanwhile
            doc = json.loads(info.stdout)
            labels = doc.get("Labels") or {}
            meta = self.containerd.cri_metadata(doc)
            sandbox = labels.get("io.cri-containerd.kind") == "sandbox"
            rows.append({"ID": cid, "Image": doc.get("Image", ""), "LabelMap": labels,
                         "State": "running" if cid in running else "exited", "Names": meta.get("Name", ""),
                         "Container": "POD" if sandbox else labels.get("io.kubernetes.container.name", ""),
                         "SandboxID": "" if sandbox else meta.get("SandboxID", "")})
        return rows

    def http_get(self, url: str, timeout: float = 5) -> str:
        """GET from inside the node's namespace (as the node host would)."""
        code = ("import sys, urllib.request; "
                f"sys.stdout.write(urllib.request.urlopen({url!r}, timeout={timeout}).read().decode())")
        return self.ns(sys.executable, "-c", code, timeout=timeout + 10).stdout

    def api_client(self):
        import docker
        return docker.APIClient(base_url=self.sock, version="1.41")

    # ---- the runtime, whichever it is (tests stay runtime-neutral through these) ----

    @property
    def container_id_prefix(self) -> str:
        """What pod statuses' containerID starts with: "<runtime>://"."""
        return f"{self.runtime}://"

    @property
    def image_id_prefix(self) -> str:
        """What pod statuses' imageID starts with (dockershim kept its docker:// scheme)."""
        return "docker://sha256:" if self.containerd is None else "sha256:"

    def runtime_version(self) -> str:
        """The version the runtime itself reports (nodeInfo.containerRuntimeVersion is "<runtime>://<this>")."""
        if self.containerd is None:
            return self.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
        out = self.containerd.ctr("version").stdout
        server = out[out.index("Server:"):]
        return server.split("Version:", 1)[1].split()[0].removeprefix("v")

    def container_exec(self, cid: str, *cmd: str, check: bool = True,
                       timeout: float = 60) -> subprocess.CompletedProcess:
        """Run cmd in the running container cid (by the runtime's own CLI, not through the agent)."""
        if self.containerd is not None:
            return self.containerd.ctr("tasks", "exec", "--exec-id", f"test-{secrets.token_hex(4)}", cid, *cmd,
                                       check=check, timeout=timeout)
        return sh(DOCKER, "-H", self.sock, "exec", cid, *cmd, check=check, timeout=timeout, env=docker_env())

    def container_pid(self, cid: str) -> int:
        """The host pid of running container cid's main process (0 when it does not run)."""
        if self.containerd is None:
            return int(self.docker("inspect", "--format", "{{.State.Pid}}", cid).stdout.strip() or 0)
        for line in self.containerd.ctr("tasks", "ls").stdout.splitlines()[1:]:
            w = line.split()
            if len(w) >= 3 and w[0] == cid and w[2] == "RUNNING":
                return int(w[1])
        return 0

    def container_logs(self, cid: str) -> str:
        """What container cid wrote (stdout and stderr), as the runtime keeps it: `docker logs`,
        or the CRI log file containerd wrote (lines "<time> <stream> <P|F> <text>")."""
        if self.containerd is None:
            r = self.docker("logs", cid)
            return r.stdout + r.stderr
        path = self.containerd.container_meta(cid)["LogPath"]
        text = []
        for line in Path(path).read_text().splitlines():
            _, _, tag, msg = (line.split(" ", 3) + [""])[:4]
            text.append(msg if tag == "P" else msg + "\n")
        return "".join(text)

    def container_limits(self, cid: str) -> dict[str, int]:
        """The cgroup limits the runtime gave container cid: memory and swap (bytes), CPU quota,
        period and shares."""
        if self.containerd is None:
            hc = self.api_client().inspect_container(cid)["HostConfig"]
            return {"memory": hc["Memory"], "memory_swap": hc["MemorySwap"], "cpu_quota": hc["CpuQuota"],
                    "cpu_period": hc["CpuPeriod"], "cpu_shares": hc["CpuShares"]}
        res = self.containerd.container_info(cid)["Spec"]["linux"]["resources"]
        mem, cpu = res.get("memory") or {}, res.get("cpu") or {}
        return {"memory": mem.get("limit", 0), "memory_swap": mem.get("swap", 0), "cpu_quota": cpu.get("quota", 0),
                "cpu_period": cpu.get("period", 0), "cpu_shares": cpu.get("shares", 0)}

    def pod_log_dirs(self) -> list[Path]:
        """Pod log directories the runtime keeps outside its containers (CRI's; Docker keeps a
        container's log with the container)."""
        return [] if self.containerd is None else sorted(self.containerd.log_root.glob("*"))

    def stop_runtime(self) -> None:
        """Stop the runtime's daemon; running containers stay (containerd's shims, dockerd's
        --live-restore), as when the daemon is restarted on a real node."""
        if self.containerd is None:
            self.stop_dockerd()
        else:
            self.containerd.stop_daemon()

    def start_runtime(self) -> None:
        if self.containerd is None:
            self.start_dockerd()
        else:
            self.containerd.start_daemon()

    def ipam_files(self) -> list[str]:
        d = self.agent_root / "ipam"
        if not d.exists():
            return []
        return sorted(str(p.relative_to(d)) for p in d.rglob("*")
                      if p.is_file() and p.name[0].isdigit())

    # ---- lifecycle -----------------------------------------------------------------

    def create(self) -> None:
        self.base.mkdir(parents=True)
        self.run_dir.mkdir(parents=True)
        sh("ip", "netns", "add", self.name)
        self.ns("ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", self.root_veth, "type", "veth", "peer", "name", self.node_veth)
        sh("ip", "link", "set", self.node_veth, "netns", self.name)
        sh("ip", "addr", "add", f"{self.root_ip}/30", "dev", self.root_veth)
        sh("ip", "link", "set", self.root_veth, "up")
        self.ns("ip", "addr", "add", f"{self.node_ip}/30", "dev", self.node_veth)
        self.ns("ip", "link", "set", self.node_veth, "up")
        from kubeling.kubeconfig import write
        if self.containerd is not None:
            self.containerd.start(tuple(sorted(IMAGES, key=lambda i: "pause" not in i)))
            write(str(self.kubeconfig), self.server, self.token, self.ca_pem)
            return
        self.start_dockerd()
        save = subprocess.Popen([DOCKER, "save", *IMAGES], stdout=subprocess.PIPE, env=docker_env())
        load = subprocess.run([DOCKER, "-H", self.sock, "load"], stdin=save.stdout, capture_output=True,
                              env=docker_env(), timeout=120)
        save.wait()
        assert load.returncode == 0 and save.returncode == 0, load.stderr
        write(str(self.kubeconfig), self.server, self.token, self.ca_pem)

    def start_dockerd(self) -> None:
        log = open(self.dockerd_log, "ab")
        self.dockerd_proc = subprocess.Popen(
            ["nsenter", f"--net={self.netns_path}", "dockerd", "--data-root", str(self.base / "docker"),
             "--exec-root", str(self.run_dir / "docker-exec"), "-H", self.sock,
             "--pidfile", str(self.run_dir / "docker.pid"), "--bridge=none", "--iptables=false",
             "--ip-forward=false", "--ip-masq=false", "--live-restore"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self.docker("info", check=False, timeout=10).returncode == 0, 60, f"dockerd of {self.name}")

    @property
    def server(self) -> str:
        """The apiserver's URL as this node reaches it (over its veth)."""
        return f"{self.scheme}://{self.root_ip}:{self.apiserver_port}"

    async def join_async(self, bootstrap_token: str, timeout: float = 30) -> None:
        """Get this node's own credentials as `kubeling join` does (bootstrap token ->
        CSR -> certificate the controller-manager signs) and make them the kubeconfig
        its agent and proxy use: from here on they act as `system:node:<name>`."""
        from kubeling import kubeconfig
        from kubeling.bootstrap import request_node_credentials_async
        assert self.scheme == "https" and self.ca_pem, "joining needs the apiserver's TLS and its CA"
        cert, key = await request_node_credentials_async(self.server, bootstrap_token, self.ca_pem, self.name,
                                                         timeout=timeout)
        kubeconfig.write(str(self.kubeconfig), self.server, ca_pem=self.ca_pem, cert_pem=cert, key_pem=key,
                         user=f"system:node:{self.name}")

    def join(self, bootstrap_token: str, timeout: float = 30) -> None:
        """join_async for callers outside an event loop."""
        asyncio.run(self.join_async(bootstrap_token, timeout))

    def stop_dockerd(self) -> None:
        if self.dockerd_proc is not None:
            stop_process(self.dockerd_proc, 30)
            self.dockerd_proc = None

    def runtime_args(self, socket: str | None = None) -> list[str]:
        """The agent's flags for this node's runtime; `socket` ("unix://...") in place of its own."""
        if self.containerd is None:
            return ["--docker-host", socket or self.sock]
        return ["--container-runtime-endpoint", socket or self.containerd.endpoint, "--pod-logs-dir",
                str(self.containerd.log_root), "--cgroup-root", self.containerd.cgroup_root]

    def start_agent(self, *extra: str) -> None:
        args = [
            "nsenter", f"--net={self.netns_path}", sys.executable, "-m", "agent",
            "--kubeconfig", str(self.kubeconfig), "--node-name", self.name, *self.runtime_args(),
            "--cni-conf-dir", str(self.cni_conf_dir), "--cni-bin-dir", "/opt/cni/bin:/usr/lib/cni",
            "--root-dir", str(self.agent_root), "--logs-port", str(self.logs_port),
            *(["--pod-cidr", self.pod_cidr] if self.pod_cidr else []),
            *(["--client-ca-file", str(self.client_ca)] if self.client_ca else []), *self.extra_args, *extra]
        log = open(self.agent_log, "ab")
        self.agent_proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                           start_new_session=True)

    def agent_teardown(self, *extra: str) -> subprocess.CompletedProcess:
        """`agent --teardown` in the node's namespace, as `kubeling down`/`reset` run it."""
        return self.ns(sys.executable, "-m", "agent", "--teardown", "--kubeconfig", str(self.kubeconfig),
                       "--node-name", self.name, *self.runtime_args(), "--cni-conf-dir",
                       str(self.cni_conf_dir), "--root-dir", str(self.agent_root), *self.extra_args, *extra,
                       timeout=120)

    def start_proxy(self, *args: str) -> None:
        """The service proxy in the node's namespace (its rules die with the namespace)."""
        log = open(self.proxy_log, "ab")
        self.proxy_proc = subprocess.Popen(
            ["nsenter", f"--net={self.netns_path}", sys.executable, "-m", "agent.proxy", "--kubeconfig",
             str(self.kubeconfig), "--node-name", self.name, *args],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)

    def routes(self, *selector: str) -> dict[str, str]:
        """IPv4 routes of the node's namespace as {destination: gateway or device}."""
        out = self.ns("ip", "-4", "route", "show", *selector).stdout
        routes = {}
        for line in out.splitlines():
            w = line.split()
            routes[w[0]] = w[w.index("via") + 1] if "via" in w else w[w.index("dev") + 1]
        return routes

    def pod_exec(self, namespace: str, pod: str, container: str, *cmd: str, check: bool = False,
                 timeout: float = 30) -> subprocess.CompletedProcess:
        """container_exec into the running container of a pod on this node."""
        ids = [r["ID"] for r in self.containers(all_=False)
               if r["LabelMap"].get("io.kubernetes.pod.namespace") == namespace
               and r["LabelMap"].get("io.kubernetes.pod.name") == pod
               and r["LabelMap"].get("io.kubernetes.container.name") == container]
        if not ids:
            raise LookupError(f"no running container {container} of pod {namespace}/{pod} on {self.name}")
        return self.container_exec(ids[0], *cmd, check=check, timeout=timeout)

    def stop_agent(self, kill: bool = False) -> None:
        if self.agent_proc is None:
            return
        if kill:
            self.agent_proc.kill()
            self.agent_proc.wait(10)
        else:
            stop_process(self.agent_proc, 20)
        self.agent_proc = None

    def agent_alive(self) -> bool:
        return self.agent_proc is not None and self.agent_proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.agent_log.read_text()
        except OSError:
            return ""

    def destroy(self) -> list[str]:
        """Remove everything; return what was found left behind (should be empty)."""
        problems: list[str] = []
        self.stop_agent()
        if self.proxy_proc is not None:
            stop_process(self.proxy_proc, 20)
            self.proxy_proc = None
        if self.dockerd_proc is not None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False)
            self.stop_dockerd()
        if self.containerd is not None:
            # What the agent left (tests that stop it early) goes through CRI, then containerd stops.
            try:
                self.containerd.remove_all_sandboxes()
            except Exception as exc:
                problems.append(f"removing sandboxes failed: {exc}")
            # containerd's CNI DEL on each sandbox's stop gives its IP back.
            problems += [f"IP allocation left: {a}" for a in self.ipam_files()]
            problems += self.containerd.stop()
        # dockerd with --live-restore keeps the bind mount of its data root on itself when it exits
        # (containers outlive it); that one is its own, not a leak.
        sh("umount", str(self.base / "docker"), check=False)
        for p in (self.base / "docker", self.run_dir):
            if p.exists():
                # dockerd unmounts on exit; anything still mounted would be a leak.
                mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                          if line.split()[1].startswith(str(p))]
                for m in sorted(mounts, reverse=True):
                    problems.append(f"mount left: {m}")
                    sh("umount", "-l", m, check=False)
        sh("ip", "link", "del", self.root_veth, check=False)
        sh("ip", "netns", "del", self.name, check=False)
        shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        try:
            TEST_ROOT.rmdir()
        except OSError:
            pass
        if self.name in sh("ip", "netns", "list").stdout.split():
            problems.append(f"netns {self.name} left")
        if sh("ip", "link", "show", self.root_veth, check=False).returncode == 0:
            problems.append(f"veth {self.root_veth} left")
        left = sh("pgrep", "-f", f"{self.run_dir}/", check=False).stdout.split()
        if left:
            problems.append(f"processes left: {left}")
        return problems


# What a component logs when the apiserver refuses it: a right the authorizers miss.
REFUSALS = ("forbidden", "Unauthorized")


def refusals(logs: dict[str, str], bad: tuple[str, ...] = REFUSALS) -> list[str]:
    """One problem line per log of {who: text} that holds a refusal (case-insensitive)."""
    problems = []
    for who, text in logs.items():
        for word in bad:
            lines = [line for line in text.splitlines() if word.lower() in line.lower()]
            if lines:
                problems.append(f"{who} log has {word!r} ({len(lines)}x), e.g. {lines[0][:400]}")
    return problems


def new_bootstrap_token() -> str:
    """A bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`."""
    return f"{secrets.token_hex(3)}.{secrets.token_hex(8)}"


def component_kubeconfig(api: Any, path: Path, user: str, orgs: tuple[str, ...] = ()) -> Path:
    """A kubeconfig for `user` with a client certificate of the test apiserver's CA
    (started with tls=True), as `kubeling init` writes the components'."""
    from kubeling import kubeconfig, pki
    cert, key = pki.issue_cert_pem(api.ca_pem, api.ca_key.read_bytes(), user, orgs)
    kubeconfig.write(str(path), api.url, ca_pem=api.ca_pem, cert_pem=cert, key_pem=key, user=user)
    return path


def start_controller_manager(api: Any, base: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    """The controller-manager as `system:kube-controller-manager`, with the CSR approver
    and signer on the cluster CA: what signs a joining node's certificate. Returns the
    process and its log."""
    kc = component_kubeconfig(api, base / "controller-manager.kubeconfig", "system:kube-controller-manager")
    log_path = base / "controller-manager.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "controlplane.controllers", "--kubeconfig", str(kc),
                                 "--cluster-signing-cert-file", str(api.ca_cert),
                                 "--cluster-signing-key-file", str(api.ca_key), *extra],
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    return proc, log_path


async def tear_down(node: TestNode, admin: Any, *procs: subprocess.Popen) -> list[str]:
    """The end of a test cluster of its own: the node destroyed (its problems are
    returned), its Node and Lease deleted, the admin client closed, procs stopped."""
    from kubeling import errors
    from kubeling.resources import lookup
    problems = node.destroy()
    for res, ns in ((lookup("nodes"), None), (lookup("leases"), "kube-node-lease")):
        try:
            await admin.delete(res, node.name, ns)
        except errors.ApiError:
            pass
    await admin.close()
    for proc in procs:
        stop_process(proc)
    return problems


async def wait_pod(client, ns: str, name: str, check, timeout: float = 60, what: str = "pod state",
                   interval: float = 0.1):
    """Poll the pod through the API until check(pod) holds; returns the pod."""
    from kubeling.resources import lookup
    pods = lookup("pods")

    async def probe():
        p = await client.get(pods, name, ns)
        return p if check(p) else None
    return await wait_until(probe, timeout, what, interval=interval)


async def get_or_none(client: Any, res: Any, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    """The object, or None while (or once) the API answers 404."""
    from kubeling import errors
    try:
        return await client.get(res, name, namespace)
    except errors.ApiError as exc:
        if exc.code != 404:
            raise
        return None


async def pod_gone(client: Any, namespace: str, name: str) -> bool:
    from kubeling.resources import lookup
    return await get_or_none(client, lookup("pods"), name, namespace) is None


async def wait_until(fn, timeout: float = 30, what: str = "condition", interval: float = 0.1):
    """Await fn() (sync or async) until it returns something truthy."""
    import asyncio
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            r = fn()
            if asyncio.iscoroutine(r):
                r = await r
            if r:
                return r
        except AssertionError:
            raise
        except Exception as exc:
            last = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


def pod_manifest(name: str, node: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    for c in containers:
        c.setdefault("image", "busybox:latest")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": containers, "terminationGracePeriodSeconds": 2,
                     **spec}}


def container_status(pod: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    key = "initContainerStatuses" if init else "containerStatuses"
    for st in (pod.get("status") or {}).get(key) or []:
        if st["name"] == name:
            return st
    return {}


def condition(pod: dict[str, Any], typ: str) -> str:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == typ:
            return c.get("status", "")
    return ""
