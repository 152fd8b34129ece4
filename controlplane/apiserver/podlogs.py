"""pods/{name}/log: find the pod's node and stream the agent's container logs.

Like the kube-apiserver's LogREST: the container defaults to the
`kubectl.kubernetes.io/default-container` annotation or the only container;
the request goes to the node's InternalIP at its daemonEndpoints port, over TLS
with the apiserver's kubelet client certificate.
"""
from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from kubeling import errors
from kubeling.resources import BY_PLURAL

from .registry import Registry
from .streaming import kubelet_client, node_address

PASSED = ("follow", "tailLines", "previous", "timestamps", "sinceSeconds", "sinceTime", "limitBytes")


def _container(pod: dict[str, Any], asked: str | None) -> str:
    spec = pod.get("spec") or {}
    names = [c.get("name") for c in (spec.get("containers") or []) if isinstance(c, dict)]
    init = [c.get("name") for c in (spec.get("initContainers") or []) if isinstance(c, dict)]
    name = pod["metadata"]["name"]
    if asked:
        if asked not in names and asked not in init:
            raise errors.bad_request(f"container {asked} is not valid for pod {name}")
        return asked
    default = ((pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container"))
    if default in names:
        return default
    if len(names) == 1:
        return names[0]
    raise errors.bad_request(f"a container name must be specified for pod {name}, "
                             f"choose one of: [{' '.join(n for n in names if n)}]")


def _node_endpoint(node: dict[str, Any]) -> str:
    """The agent's HTTPS base URL (it serves TLS only, see agent/logs_server.py)."""
    host, port = node_address(node)
    return f"https://{host}:{port}"


async def serve(request: web.Request, registry: Registry, ns: str, name: str) -> web.StreamResponse:
    pod = await registry.get(BY_PLURAL[("", "pods")], ns, name)
    container = _container(pod, request.query.get("container"))
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise errors.bad_request(f'pod "{name}" is not yet scheduled to a node; no logs yet')
    node = await registry.get(BY_PLURAL[("", "nodes")], None, node_name)
    url = f"{_node_endpoint(node)}/containerLogs/{ns}/{name}/{container}"
    params = {k: request.query[k] for k in PASSED if k in request.query}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    try:
        connector = aiohttp.TCPConnector(ssl=kubelet_client(request).ssl_context())
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            async with session.get(url, params=params) as upstream:
                if upstream.status >= 400:
                    text = (await upstream.text()).strip()
                    raise errors.ApiError(upstream.status if upstream.status < 500 else 502,
                                          "BadRequest" if upstream.status < 500 else "InternalError",
                                          text or f"the node agent answered {upstream.status}")
                resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
                await resp.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
    except aiohttp.ClientError as exc:
        raise errors.ApiError(503, "ServiceUnavailable", f"cannot reach the node agent on {node_name}: {exc}")
