"""kube-apiserver's metrics (k8s.io/apiserver/pkg/endpoints/metrics and storage's object
counts), served at /metrics behind authentication and authorization like the rest of the API
(RBAC's system:monitoring group may read it; anonymous gets 401).

- apiserver_request_total and apiserver_request_duration_seconds: every request, by
  Kubernetes' labels (verb as RequestInfo reports it: LIST, WATCH, GET, POST, ..., CONNECT;
  group, version, resource, subresource, scope, component, code). Unlike kube-apiserver,
  requests refused by authentication or authorization are counted too (code 401 / 403).
  Non-resource requests are counted only for health, version, discovery and /metrics
  (subresource is the path), so a client asking for random paths cannot grow the label values.
- apiserver_longrunning_requests: watches and connections (exec, attach, port-forward,
  logs while following) in flight.
- apiserver_storage_objects: the keys of each resource in etcd, counted by etcd every
  `poll_period` seconds (kube-apiserver's --etcd-count-metric-poll-period, default a
  minute), never on a scrape.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import Counter, Gauge, Histogram

from kubeling.resources import BY_PLURAL, Resource

from .store import Store

log = logging.getLogger("kubeling.apiserver.metrics")

COMPONENT = "apiserver"
REQUEST_LABELS = ["verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component"]
# kube-apiserver's buckets for apiserver_request_duration_seconds.
DURATION_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15,
                    20, 30, 45, 60)

REQUESTS = Counter("apiserver_request", "Counter of apiserver requests broken out for each verb, dry run "
                   "value, group, version, resource, scope, component, and HTTP response code.",
                   REQUEST_LABELS + ["code"])
DURATION = Histogram("apiserver_request_duration_seconds", "Response latency distribution in seconds for each "
                     "verb, dry run value, group, version, resource, subresource, scope and component.",
                     REQUEST_LABELS, buckets=DURATION_BUCKETS)
LONGRUNNING = Gauge("apiserver_longrunning_requests", "Gauge of all active long-running apiserver requests "
                    "broken out by verb, group, version, resource, scope and component. Not all requests "
                    "are tracked this way.", ["verb", "group", "version", "resource", "subresource", "scope",
                                              "component"])
STORAGE_OBJECTS = Gauge("apiserver_storage_objects", "Number of stored objects at the time of last check "
                        "split by kind. In case of a fetching error, the value will be -1.", ["resource"])

CONNECT_SUBRESOURCES = ("exec", "attach", "portforward", "proxy")
# Resources answered without storage (reviews): nothing to count in etcd.
UNSTORED_GROUPS = ("authentication.k8s.io", "authorization.k8s.io")
_METHOD_VERBS = {"GET": "GET", "HEAD": "GET", "POST": "POST", "PUT": "PUT", "PATCH": "PATCH",
                 "DELETE": "DELETE", "OPTIONS": "OPTIONS"}
APPLY_PATCH = "application/apply-patch+yaml"


def request_verb(method: str, has_name: bool, watch: bool, subresource: str, content_type: str) -> str:
    """The verb label of a resource request, as kube-apiserver's metrics report it."""
    if subresource in CONNECT_SUBRESOURCES:
        return "CONNECT"
    verb = _METHOD_VERBS.get(method, "other")
    if verb == "GET" and not has_name:
        return "WATCH" if watch else "LIST"
    if verb == "DELETE" and not has_name:
        return "DELETECOLLECTION"
    if verb == "PATCH" and content_type.startswith(APPLY_PATCH):
        return "APPLY"
    return verb


def scope(namespace: str | None, name: str | None) -> str:
    if name:
        return "resource"
    return "namespace" if namespace else "cluster"


def storage_label(res: Resource) -> str:
    """The `resource` label of apiserver_storage_objects: plural, then .group outside the core group."""
    return f"{res.plural}.{res.group}" if res.group else res.plural


def _longrunning(verb: str, subresource: str, query: Any) -> bool:
    if verb in ("WATCH", "CONNECT"):
        return True
    return subresource == "log" and query.get("follow", "").lower() in ("1", "true")


def middleware(parse_path: Callable[[str], Any], known_paths: Callable[[str], bool]):  # type: ignore[no-untyped-def]
    """The outermost middleware: time and count every request. `parse_path` maps a path to the
    app's Target (resource, namespace, name, subresource) or None; `known_paths` says whether a
    non-resource path is one the apiserver serves."""
    @web.middleware
    async def metrics(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        start = time.perf_counter()
        target = parse_path(request.path)
        if target is None:
            if not known_paths(request.path):
                return await handler(request)
            labels = [_METHOD_VERBS.get(request.method, "other"), "", "", "", "", request.path, "", COMPONENT]
        else:
            res, sub = target.resource, target.subresource or ""
            query = request.query
            verb = request_verb(request.method, target.name is not None,
                                query.get("watch", "").lower() in ("1", "true"), sub,
                                request.headers.get("Content-Type", ""))
            dry_run = "All" if query.get("dryRun") else ""
            labels = [verb, dry_run, res.group, res.version, res.plural, sub,
                      scope(target.namespace, target.name), COMPONENT]
        gauge = None
        if _longrunning(labels[0], labels[5], request.query):
            gauge = LONGRUNNING.labels(labels[0], *labels[2:])
            gauge.inc()
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as exc:
            code = exc.status
            raise
        except asyncio.CancelledError:
            code = 499  # the client went away; nginx's code, since HTTP has none
            raise
        finally:
            if gauge is not None:
                gauge.dec()
            REQUESTS.labels(*labels, str(code)).inc()
            DURATION.labels(*labels).observe(time.perf_counter() - start)
    return metrics


class StorageObjectCounter:
    """Counts each stored resource's keys in etcd every `poll_period` seconds into
    apiserver_storage_objects (-1 when the count failed, as kube-apiserver)."""

    def __init__(self, store: Store, poll_period: float = 60.0) -> None:
        self.store = store
        self.poll_period = poll_period
        self.resources = sorted({r for r in BY_PLURAL.values() if r.group not in UNSTORED_GROUPS},
                                key=storage_label)
        self._task: asyncio.Task[None] | None = None

    async def count_once(self) -> None:
        for res in self.resources:
            try:
                n = await self.store.count(res.key_prefix())
            except Exception as exc:  # etcd away: say so in the metric, try again next period
                log.debug("counting %s failed: %s", storage_label(res), exc)
                n = -1
            STORAGE_OBJECTS.labels(storage_label(res)).set(n)

    async def _run(self) -> None:
        while True:
            await self.count_once()
            await asyncio.sleep(self.poll_period)

    def start(self) -> None:
        if self.poll_period > 0 and self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
