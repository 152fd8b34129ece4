#!/usr/bin/env python3
"""CNI benchmark: ADD+DEL cycles of kubeling-bridge+kubeling-ipam (through the daemon, as
deployed) and of the reference bridge+host-local, interleaved, with the same config.

Everything happens in a throwaway network namespace standing in for the node. Progress goes
to stderr; the last stdout line is JSON:
{"add_p50_ms", "ref_add_p50_ms", "ratio_p50", "del_p50_ms", ...}
"shim" says which kubeling-bridge ran: "compiled" (cni/shim.c, what cni.install writes when cc is
present) or "python" (--python-shim, the interpreter-started shim, for comparison).
Usage: .venv/bin/python scripts/bench_cni.py [--cycles 100] [--ip-masq] [--python-shim]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REF = "/usr/lib/cni"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def conf(label: str, plugin: str, ipam: str, bridge: str, subnet: str, data_dir: str, masq: bool) -> bytes:
    # The plugin config the agent writes into /etc/cni/net.d/10-kubeling.conflist.
    return json.dumps({
        "cniVersion": "1.0.0", "name": f"bench-{label}", "type": plugin, "bridge": bridge,
        "isGateway": True, "ipMasq": masq, "hairpinMode": True,
        "ipam": {"type": ipam, "dataDir": data_dir, "ranges": [[{"subnet": subnet}]],
                 "routes": [{"dst": "0.0.0.0/0"}]},
    }).encode()


def invoke(exe: str, command: str, stdin: bytes, cid: str, netns: str, env: dict) -> float:
    e = dict(env, CNI_COMMAND=command, CNI_CONTAINERID=cid, CNI_NETNS=netns, CNI_IFNAME="eth0")
    t = time.perf_counter()
    proc = subprocess.run([exe], input=stdin, env=e, capture_output=True)
    dt = (time.perf_counter() - t) * 1000
    if proc.returncode != 0:
        raise SystemExit(f"{exe} {command} failed: {proc.stdout.decode()} {proc.stderr.decode()}")
    return dt


def inner(opts: argparse.Namespace) -> dict:
    """Runs inside the node namespace."""
    tmp = Path(tempfile.mkdtemp(prefix="kubeling-bench-cni-"))
    bindir = tmp / "bin"
    subprocess.run([sys.executable, "-m", "cni.install", "--dest", str(bindir),
                    *(["--no-compile"] if opts.python_shim else [])], cwd=REPO, check=True, capture_output=True)
    with open(bindir / "kubeling-bridge", "rb") as f:
        shim = "compiled" if f.read(4) == b"\x7fELF" else "python"
    sock = str(tmp / "cni.sock")
    daemon = subprocess.Popen([sys.executable, "-m", "cni.daemon", "--socket", sock], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=open(tmp / "daemon.log", "wb"), text=True)
    if daemon.stdout.readline().strip() != "ready":
        raise SystemExit(f"daemon failed: {(tmp / 'daemon.log').read_text()}")
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "CNI_PATH": f"{bindir}:{REF}", "KUBELING_CNI_SOCKET": sock}
    sfx = secrets.token_hex(2)
    ours = conf("ours", "kubeling-bridge", "kubeling-ipam", f"kbb{sfx}", "10.250.201.0/24", str(tmp / "ipam"), opts.ip_masq)
    ref = conf("ref", "bridge", "host-local", f"kbr{sfx}", "10.250.202.0/24", str(tmp / "ipam"), opts.ip_masq)
    pod = f"kcbench-pod-{sfx}"
    subprocess.run(["ip", "netns", "add", pod], check=True)
    netns = f"/run/netns/{pod}"
    times = {"add": [], "del": [], "ref_add": [], "ref_del": []}
    try:
        # one warm-up cycle each: first bridge creation and page cache are not steady state
        for exe, c in ((str(bindir / "kubeling-bridge"), ours), (f"{REF}/bridge", ref)):
            invoke(exe, "ADD", c, "warm", netns, env)
            invoke(exe, "DEL", c, "warm", netns, env)
        for i in range(opts.cycles):
            pair = [("", str(bindir / "kubeling-bridge"), ours), ("ref_", f"{REF}/bridge", ref)]
            if i % 2:
                pair.reverse()  # neither side always runs right after the other
            for prefix, exe, c in pair:
                cid = f"bench{i}"
                times[prefix + "add"].append(invoke(exe, "ADD", c, cid, netns, env))
                times[prefix + "del"].append(invoke(exe, "DEL", c, cid, netns, env))
            if (i + 1) % 10 == 0:
                log(f"cycle {i + 1}/{opts.cycles}: ours add p50 {statistics.median(times['add']):.1f} ms, "
                    f"ref add p50 {statistics.median(times['ref_add']):.1f} ms")
    finally:
        subprocess.run(["ip", "netns", "del", pod], check=False)
        daemon.terminate()
        daemon.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    p50 = {k: statistics.median(v) for k, v in times.items()}
    p90 = {k: statistics.quantiles(v, n=10)[-1] for k, v in times.items()}
    return {
        "add_p50_ms": round(p50["add"], 2),
        "ref_add_p50_ms": round(p50["ref_add"], 2),
        "ratio_p50": round(p50["add"] / p50["ref_add"], 3),
        "del_p50_ms": round(p50["del"], 2),
        "ref_del_p50_ms": round(p50["ref_del"], 2),
        "add_p90_ms": round(p90["add"], 2),
        "ref_add_p90_ms": round(p90["ref_add"], 2),
        "cycles": opts.cycles,
        "ip_masq": opts.ip_masq,
        "shim": shim,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--ip-masq", action="store_true", help="bench with ipMasq on (per-pod NAT rule)")
    parser.add_argument("--python-shim", action="store_true",
                        help="bench kubeling-bridge as the Python shim instead of the compiled forwarder")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.inner:
        print(json.dumps(inner(opts)), flush=True)
        return
    if os.geteuid() != 0:
        raise SystemExit("bench_cni needs root (network namespaces, bridges, iptables)")
    node = f"kcbench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", node], check=True)
    try:
        log(f"node namespace {node}: {opts.cycles} interleaved ADD+DEL cycles per plugin pair")
        args = [sys.executable, str(Path(__file__).resolve()), "--inner", "--cycles", str(opts.cycles)]
        if opts.ip_masq:
            args.append("--ip-masq")
        if opts.python_shim:
            args.append("--python-shim")
        proc = subprocess.run(["nsenter", f"--net=/run/netns/{node}", *args], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
        if proc.returncode != 0:
            raise SystemExit(proc.returncode)
        print(proc.stdout.strip().splitlines()[-1], flush=True)
    finally:
        subprocess.run(["ip", "netns", "del", node], check=False)


if __name__ == "__main__":
    main()
