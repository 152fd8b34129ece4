"""The agent's HTTP endpoint for container logs (kubelet's /containerLogs), which
the API server's pods/{name}/log proxies to:

GET /containerLogs/{namespace}/{pod}/{container}
    ?follow=true&tailLines=N&previous=true&timestamps=true&sinceSeconds=N&sinceTime=RFC3339&limitBytes=N
200 text/plain: the log bytes (a stream when following); 400/404 with a text
message as kubelet words it."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from agent.runtime.types import ContainerRecord, Runtime
from kubeling.timefmt import parse_time

log = logging.getLogger("agent.logs")


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


class LogsServer:
    def __init__(self, runtime: Runtime, get_pod: Callable[[str, str], dict[str, Any] | None]) -> None:
        self.runtime = runtime
        self.get_pod = get_pod
        self.app = web.Application()
        self.app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.container_logs)
        self.app.router.add_get("/healthz", self.healthz)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

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
