"""The agent's server (kubelet's port 10250), which the API server's pods/log,
pods/exec, pods/attach and pods/portforward reach:

GET /containerLogs/{namespace}/{pod}/{container}
    ?follow=true&tailLines=N&previous=true&timestamps=true&sinceSeconds=N&sinceTime=RFC3339&limitBytes=N
    200 text/plain: the log bytes (a stream when following); 400/404 with a text
    message as kubelet words it.
GET|POST /exec/{namespace}/{pod}/{container}?command=..&stdin=&stdout=&stderr=&tty=
GET|POST /attach/{namespace}/{pod}/{container}?stdin=&stdout=&stderr=&tty=
GET|POST /portForward/{namespace}/{pod}[?ports=..]
    upgraded to WebSocket (v5/v4.channel.k8s.io, SPDY/3.1+portforward.k8s.io) or SPDY/3.1.

It serves HTTPS only. Like kubelet with --client-ca-file and webhook authorization
left out, it answers only a client certificate signed by the cluster CA whose
identity is the apiserver's kubelet client (CN kube-apiserver-kubelet-client) or
in system:masters; everything else gets 401 (no certificate) or 403, so nobody on
the node's network can read logs or exec. Without a client CA nobody is allowed.
Without a serving certificate the agent makes a self-signed one (as kubelet does
in /var/lib/kubelet/pki); the apiserver does not verify it, as kube-apiserver
without --kubelet-certificate-authority."""
from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.runtime.types import ContainerRecord, Runtime
from agent.streaming import channels as ch
from agent.streaming import portforward as pf
from agent.streaming import remotecommand as rc
from agent.streaming.spdy import SpdyConnection
from kubeling import metrics_server, pki
from kubeling.timefmt import parse_time
from kubeling.wire.hijack import hijack

log = logging.getLogger("agent.logs")
APISERVER_CLIENT_CN = "kube-apiserver-kubelet-client"
ALLOWED_GROUPS = ("system:masters",)
PUBLIC = ("/healthz",)


def ensure_serving_cert(root_dir: str, hosts: list[str]) -> tuple[str, str]:
    """A self-signed serving certificate for the node, made once under root_dir/pki."""
    d = Path(root_dir) / "pki"
    cert, key = d / "agent.crt", d / "agent.key"
    if not (cert.exists() and key.exists()):
        pki.self_signed(cert, key, [h for h in hosts if h])
    return str(cert), str(key)


def peer_identity(request: web.Request) -> tuple[str, list[str]] | None:
    """(CN, O...) of the verified client certificate, None without one."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        return None
    cn, orgs = "", []
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                cn = v
            elif k == "organizationName":
                orgs.append(v)
    return cn, orgs


@web.middleware
async def _authn(request: web.Request, handler):  # type: ignore[no-untyped-def]
    if request.path in PUBLIC:
        return await handler(request)
    who = peer_identity(request)
    if who is None:
        return web.Response(status=401, text="Unauthorized")
    cn, orgs = who
    if cn != APISERVER_CLIENT_CN and not set(orgs) & set(ALLOWED_GROUPS):
        return web.Response(status=403, text=f"Forbidden (user={cn}, verb={request.method.lower()}, "
                                             f"resource=nodes, subresource=proxy)")
    return await handler(request)


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


class LogsServer:
    def __init__(self, runtime: Runtime, get_pod: Callable[[str, str], dict[str, Any] | None]) -> None:
        self.runtime = runtime
        self.get_pod = get_pod
        self.app = web.Application(middlewares=[_authn])
        self.app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.container_logs)
        for verb in ("exec", "attach"):
            for method in ("GET", "POST"):
                self.app.router.add_route(method, f"/{verb}/{{namespace}}/{{pod}}/{{container}}",
                                          self.exec if verb == "exec" else self.attach)
        for method in ("GET", "POST"):
            self.app.router.add_route(method, "/portForward/{namespace}/{pod}", self.port_forward)
        self.app.router.add_get("/healthz", self.healthz)
        # kubelet's /metrics, behind the same client-certificate check as logs and exec.
        metrics_server.add_route(self.app)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        """Serve on host:port; ssl_context None only in unit tests of the handlers."""
        self._runner = web.AppRunner(self.app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, reuse_address=True, ssl_context=ssl_context).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- exec, attach, port-forward -------------------------------------------------

    async def _running(self, ns: str, pod: str, container: str) -> ContainerRecord:
        records = [r for r in await self._find(ns, pod, container) if r.running]
        if not records:
            raise web.HTTPNotFound(text=f'container not found ("{container}")')
        return records[0]

    async def _remotecommand(self, request: web.Request, opts: rc.Options, start: rc.Start,
                             is_exec: bool) -> web.StreamResponse:
        upgrade = request.headers.get("Upgrade", "").lower()
        if upgrade == "websocket":
            return await rc.serve_websocket(request, opts, start, is_exec)
        if upgrade.startswith("spdy/"):
            offered = request.headers.getall("X-Stream-Protocol-Version", [])
            proto = ch.negotiate(offered, ch.SPDY_EXEC_PROTOCOLS)
            if proto is None:
                raise web.HTTPForbidden(text=f"unable to upgrade: unable to negotiate protocol: client supports "
                                             f"{offered}, server supports {list(ch.SPDY_EXEC_PROTOCOLS)}")
            raw = await hijack(request, 101, "Switching Protocols", [
                ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", proto)])
            await rc.serve_spdy(raw, opts, start, is_exec)
            return raw.response
        raise web.HTTPBadRequest(text="Upgrade request required")

    async def exec(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        opts = rc.Options(request.query)
        if not opts.command:
            raise web.HTTPBadRequest(text="you must specify at least one command for the container")
        if not (opts.stdin or opts.stdout or opts.stderr):
            raise web.HTTPBadRequest(text="you must specify at least one of stdin, stdout, stderr")
        record = await self._running(ns, pod, container)

        async def start(size):  # type: ignore[no-untyped-def]
            return await self.runtime.exec_stream(record.id, opts.command, stdin=opts.stdin, stdout=opts.stdout,
                                                  stderr=opts.stderr, tty=opts.tty, size=size)
        return await self._remotecommand(request, opts, start, True)

    async def attach(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        opts = rc.Options(request.query)
        record = await self._running(ns, pod, container)

        async def start(size):  # type: ignore[no-untyped-def]
            return await self.runtime.attach_stream(record.id, stdin=opts.stdin, stdout=opts.stdout,
                                                    stderr=opts.stderr or opts.tty, size=size)
        return await self._remotecommand(request, opts, start, False)

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        ns, pod = request.match_info["namespace"], request.match_info["pod"]
        obj = self.get_pod(ns, pod)
        uid = obj["metadata"]["uid"] if obj else None
        sandboxes = [r for r in await self.runtime.list(uid) if r.is_sandbox and r.running
                     and r.pod_namespace == ns and r.pod_name == pod]
        sandbox = max(sandboxes, key=lambda r: r.created_at) if sandboxes else None
        netns = await self.runtime.sandbox_netns(sandbox.id) if sandbox is not None else None
        if sandbox is None or netns is None:
            raise web.HTTPNotFound(text=f'pod "{pod}" in namespace "{ns}" has no running sandbox on this node')
        target = pf.Target(netns, sandbox.id, sandbox.pod_uid)
        upgrade = request.headers.get("Upgrade", "").lower()
        if upgrade == "websocket":
            ws = web.WebSocketResponse(protocols=ch.WS_PORTFORWARD_PROTOCOLS, heartbeat=None, max_msg_size=0)
            await ws.prepare(request)
            if ws.ws_protocol == ch.WS_TUNNELED_PORTFORWARD:
                await pf.serve_tunneled(request, ws, target)
            else:
                try:
                    ports = pf.parse_ports(request.query.get("ports", ""))
                except ValueError as exc:
                    await ws.close(message=str(exc).encode())
                    return ws
                await pf.serve_channels(ws, target, ports)
            return ws
        if upgrade.startswith("spdy/"):
            offered = request.headers.getall("X-Stream-Protocol-Version", [])
            if ch.negotiate(offered, (ch.SPDY_PORTFORWARD_PROTOCOL,)) is None:
                raise web.HTTPForbidden(text="unable to upgrade: unable to negotiate protocol: client supports "
                                             f"{offered}, server supports [{ch.SPDY_PORTFORWARD_PROTOCOL}]")
            raw = await hijack(request, 101, "Switching Protocols", [
                ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
                ("X-Stream-Protocol-Version", ch.SPDY_PORTFORWARD_PROTOCOL)])
            try:
                await pf.serve_spdy(SpdyConnection(raw.write, raw.read), target)
            finally:
                raw.close()
            return raw.response
        raise web.HTTPBadRequest(text="Upgrade request required")

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _find(self, ns: str, pod: str, container: str) -> list[ContainerRecord]:
        obj = self.get_pod(ns, pod)
        uid = obj["metadata"]["uid"] if obj else None
        records = [r for r in await self.runtime.list(uid) if not r.is_sandbox
                   and r.pod_namespace == ns and r.pod_name == pod and r.name == container]
        if uid is None and records:
            newest = max(records, key=lambda r: r.created_at).pod_uid
            records = [r for r in records if r.pod_uid == newest]
        records.sort(key=lambda r: r.attempt, reverse=True)
        return records

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        q = request.query
        obj = self.get_pod(ns, pod)
        if obj is not None:
            names = [c["name"] for key in ("initContainers", "containers")
                     for c in (obj.get("spec") or {}).get(key) or []]
            if container not in names:
                raise web.HTTPBadRequest(text=f"container {container} is not valid for pod {pod}")
        records = await self._find(ns, pod, container)
        if _flag(q.get("previous")):
            if len(records) < 2:
                raise web.HTTPBadRequest(
                    text=f'previous terminated container "{container}" in pod "{pod}" not found')
            target = records[1]
        else:
            if not records:
                if obj is None:
                    raise web.HTTPNotFound(text=f'pod "{pod}" in namespace "{ns}" not found on this node')
                raise web.HTTPBadRequest(
                    text=f'container "{container}" in pod "{pod}" is waiting to start: ContainerCreating')
            target = records[0]
        tail = None
        if q.get("tailLines") not in (None, ""):
            try:
                tail = max(0, int(q["tailLines"]))
            except ValueError:
                raise web.HTTPBadRequest(text="tailLines must be an integer") from None
        since = None
        if q.get("sinceSeconds"):
            try:
                since = time.time() - int(q["sinceSeconds"])
            except ValueError:
                raise web.HTTPBadRequest(text="sinceSeconds must be an integer") from None
        elif q.get("sinceTime"):
            when = parse_time(q["sinceTime"])
            if when is None:
                raise web.HTTPBadRequest(text="sinceTime must be RFC 3339")
            since = when.timestamp()
        limit = int(q["limitBytes"]) if (q.get("limitBytes") or "").isdigit() else None
        follow = _flag(q.get("follow"))
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        sent = 0
        try:
            async for chunk in self.runtime.logs(target.id, follow=follow, tail=tail, since=since,
                                                 timestamps=_flag(q.get("timestamps"))):
                if limit is not None:
                    chunk = chunk[:max(0, limit - sent)]
                if chunk:
                    await resp.write(chunk)
                    sent += len(chunk)
                if limit is not None and sent >= limit:
                    break
        except (ConnectionResetError, RuntimeError) as exc:
            log.debug("log stream ended: %s", exc)
        await resp.write_eof()
        return resp
