"""pods/exec, pods/attach, pods/portforward: the connect subresources.

Like kube-apiserver's upgrade-aware proxy: the request has been authenticated and
authorized (`create` on pods/exec etc., also for a WebSocket GET) by the middleware;
here we find the pod's node, open TLS to the node agent with the apiserver's kubelet
client certificate, send it the same upgrade request on kubelet's path
(/exec/{ns}/{pod}/{container}, /attach/..., /portForward/{ns}/{pod}), and once the
agent answers 101 pass the answer and then the bytes both ways, untouched. The agent
speaks every protocol (WebSocket channels, SPDY, tunnelled SPDY) itself, so one
byte-level proxy serves them all. A refusal from the agent becomes a Status.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kubeling import errors
from kubeling.resources import BY_PLURAL
from kubeling.wire.hijack import hijack

from .registry import Registry

log = logging.getLogger("kubeling.apiserver.streaming")
CONNECT_SUBRESOURCES = ("exec", "attach", "portforward")
# Request headers the agent needs to negotiate the upgrade.
FORWARDED = ("connection", "upgrade", "sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol",
             "x-stream-protocol-version")
DROPPED_ANSWER = ("date", "server", "content-length", "content-type", "transfer-encoding")


@dataclass(frozen=True)
class KubeletClient:
    """How the apiserver reaches node agents (--kubelet-client-certificate/-key). The
    agents' serving certificates are not verified, as kube-apiserver without
    --kubelet-certificate-authority."""
    cert: str | None = None
    key: str | None = None

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if self.cert and self.key:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx


_configured = KubeletClient()


def configure_kubelet_client(cert: str | None, key: str | None) -> None:
    """Set from --kubelet-client-certificate/--kubelet-client-key at start."""
    global _configured
    _configured = KubeletClient(cert, key)
    if cert and key:
        _configured.ssl_context()  # a bad pair stops the start, not the first exec


def kubelet_client(request: web.Request | None = None) -> KubeletClient:
    return _configured


def node_address(node: dict[str, Any]) -> tuple[str, int]:
    """The agent's host and port from the Node: InternalIP (else Hostname) and daemonEndpoints."""
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or [] if isinstance(a, dict)}
    host = addrs.get("InternalIP") or addrs.get("Hostname")
    if not port or not host:
        raise errors.ApiError(503, "ServiceUnavailable",
                              f"node {node['metadata']['name']} does not publish its agent's endpoint")
    return host, int(port)


async def pod_node(registry: Registry, pod: dict[str, Any]) -> tuple[str, str, int]:
    name = pod["metadata"]["name"]
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    node = await registry.get(BY_PLURAL[("", "nodes")], None, node_name)
    host, port = node_address(node)
    return node_name, host, port


def _status_text(head: str) -> tuple[int, str]:
    first = head.split("\r\n", 1)[0].split(" ", 2)
    try:
        return int(first[1]), (first[2] if len(first) > 2 else "")
    except (IndexError, ValueError):
        return 502, "bad answer"


def _headers(head: str) -> list[tuple[str, str]]:
    out = []
    for line in head.split("\r\n")[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            out.append((k.strip(), v.strip()))
    return out


async def serve(request: web.Request, registry: Registry, ns: str, name: str, sub: str) -> web.StreamResponse:
    from .podlogs import _container  # the same container defaulting as pods/log
    pod = await registry.get(BY_PLURAL[("", "pods")], ns, name)
    if sub == "portforward":
        path = f"/portForward/{ns}/{name}"
    else:
        path = f"/{sub}/{ns}/{name}/{_container(pod, request.query.get('container'))}"
    phase = (pod.get("status") or {}).get("phase")
    if sub != "portforward" and phase in ("Succeeded", "Failed"):
        raise errors.bad_request(f"cannot {sub} into a container in a completed pod; current phase is {phase}")
    node_name, host, port = await pod_node(registry, pod)
    raw_query = request.rel_url.raw_query_string  # still percent-encoded, as it must go on the wire
    if raw_query:
        path += "?" + raw_query
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            host, port, ssl=kubelet_client(request).ssl_context(), server_hostname=host, limit=1 << 20), 10)
    except (OSError, asyncio.TimeoutError) as exc:
        raise errors.ApiError(503, "ServiceUnavailable", f"cannot reach the node agent on {node_name}: {exc}")
    try:
        lines = [f"{request.method} {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Length: 0"]
        lines += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() in FORWARDED]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)).decode(errors="replace")
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        writer.close()
        raise errors.ApiError(503, "ServiceUnavailable", f"the node agent on {node_name} did not answer: {exc}")
    code, reason = _status_text(head)
    if code != 101:
        length = next((int(v) for k, v in _headers(head) if k.lower() == "content-length" and v.isdigit()), 0)
        try:
            body = (await asyncio.wait_for(reader.readexactly(min(length, 65536)), 10)).decode(errors="replace")
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            body = ""
        writer.close()
        text = body.strip() or f"the node agent answered {code}"
        kinds = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}
        raise errors.ApiError(code if code in kinds else 500, kinds.get(code, "InternalError"), text)
    raw = await hijack(request, 101, reason or "Switching Protocols",
                       [(k, v) for k, v in _headers(head) if k.lower() not in DROPPED_ANSWER])

    async def to_agent() -> None:
        while data := await raw.read():
            writer.write(data)
            await writer.drain()

    async def to_client() -> None:
        while data := await reader.read(65536):
            await raw.write(data)

    tasks = [asyncio.create_task(to_agent()), asyncio.create_task(to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        # The agent ends a session by closing: let its last bytes reach the client first.
        if tasks[1].done():
            tasks[0].cancel()
        else:
            await asyncio.wait([tasks[1]], timeout=5)
    except (ConnectionError, OSError) as exc:
        log.debug("stream proxy ended: %s", exc)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        raw.close()
    return raw.response
