"""The long-lived half of the thick plugin: holds pyroute2 loaded and serves the executables.

Run standalone with `python -m cni.daemon [--socket PATH]`, or inside another process with
CniDaemon(path).start() / .stop().
"""
from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import socket
import stat
import struct
import sys
import threading
import time

from cni import netns, runner, wire

log = logging.getLogger("kubeling.cni.daemon")


def _peer(conn: socket.socket) -> tuple[int, int]:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    return pid, uid


class CniDaemon:
    def __init__(self, socket_path: str = wire.DEFAULT_SOCKET) -> None:
        self.socket_path = socket_path
        self._sock: socket.socket | None = None
        self._inode: int | None = None
        self._stopping = threading.Event()
        self._acceptor: threading.Thread | None = None
        self._workers: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def _bind(self) -> None:
        # Warm up first so the first forwarded ADD doesn't pay for the imports.
        from cni import bridge_plugin, ipam_plugin  # noqa: F401

        os.makedirs(os.path.dirname(self.socket_path) or ".", exist_ok=True)
        tmp = f"{self.socket_path}.{os.getpid()}.tmp"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(tmp)
        os.chmod(tmp, 0o600)
        sock.listen(256)
        # rename replaces a stale socket of a dead predecessor atomically.
        os.replace(tmp, self.socket_path)
        self._inode = os.stat(self.socket_path).st_ino
        sock.settimeout(0.2)
        self._sock = sock

    def start(self) -> None:
        """Bind and serve in a background thread."""
        self._bind()
        self._acceptor = threading.Thread(target=self._accept_loop, name="cni-daemon", daemon=True)
        self._acceptor.start()

    def serve_forever(self) -> None:
        self._bind()
        self._accept_loop()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop taking requests, let the ones in flight finish, remove our socket."""
        self._stopping.set()
        if self._acceptor is not None and self._acceptor is not threading.current_thread():
            self._acceptor.join(timeout)
        with self._lock:
            workers = list(self._workers)
        deadline = time.monotonic() + timeout
        for w in workers:
            w.join(max(0.0, deadline - time.monotonic()))
        stuck = [w for w in workers if w.is_alive()]
        if stuck:
            # Leave evidence of what never finished instead of hanging a shutdown forever.
            log.error("%d CNI requests still running at shutdown; thread stacks follow", len(stuck))
            faulthandler.dump_traceback(all_threads=True)

    def _accept_loop(self) -> None:
        assert self._sock is not None
        try:
            while not self._stopping.is_set():
                try:
                    conn, _ = self._sock.accept()
                except socket.timeout:
                    continue
                except OSError:
                    if self._stopping.is_set():
                        break
                    raise
                t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                with self._lock:
                    self._workers.add(t)
                t.start()
        finally:
            self._unlink_own_socket()
            self._sock.close()

    def _unlink_own_socket(self) -> None:
        try:
            if os.stat(self.socket_path).st_ino == self._inode:
                os.unlink(self.socket_path)
        except FileNotFoundError:
            pass

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                pid, uid = _peer(conn)
                items = wire.recv(conn)
                if items is None or len(items) < 2:
                    return
                plugin = items[0].decode()
                # The caller does the work itself when it is not root, runs in another host
                # namespace (e.g. a test node: the work belongs there) or names a plugin we
                # don't know.
                if (uid != 0 and uid != os.getuid()) or not netns.same_netns(pid) or plugin not in runner.PLUGINS:
                    conn.sendall(wire.DECLINED)
                    return
                conn.sendall(wire.ACCEPTED)
                env = {}
                for item in items[2:]:
                    k, _, v = item.partition(b"=")
                    env[os.fsdecode(k)] = os.fsdecode(v)
                started = time.perf_counter()
                out = runner.run(plugin, env, items[1])
                log.debug("%s %s took %.1f ms", plugin, env.get("CNI_COMMAND"), (time.perf_counter() - started) * 1e3)
                conn.sendall(wire.encode([str(out.exit_code).encode(), out.stdout, out.stderr]))
                if out.stderr:
                    log.warning("%s %s: %s", plugin, env.get("CNI_COMMAND"), out.stderr.decode(errors="replace"))
        except Exception:
            log.exception("CNI request failed")
        finally:
            with self._lock:
                self._workers.discard(threading.current_thread())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cni.daemon", description=__doc__)
    parser.add_argument("--socket", default=os.environ.get(wire.SOCKET_ENV) or wire.DEFAULT_SOCKET)
    parser.add_argument("--debug", action="store_true", help="log every request with its duration")
    opts = parser.parse_args(argv)
    if opts.debug:
        log.setLevel(logging.DEBUG)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    daemon = CniDaemon(opts.socket)
    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    daemon.start()
    log.info("serving on %s", opts.socket)
    print("ready", flush=True)  # lets a supervisor or test know the socket is live
    # Not a bare done.wait(): the kernel may hand SIGTERM to a request thread, and a main thread
    # blocked in an untimed lock wait is not woken to run the handler (a restart under load
    # waited 60 s for it). Waking now and then lets the handler run within that time.
    while not done.wait(0.2):
        pass
    log.info("stopping")
    daemon.stop(timeout=30)


if __name__ == "__main__":
    main()
