"""The HTTP face of the API server: Kubernetes paths, verbs and media types.

Every request is parsed into (resource, namespace, name, subresource), handed
to the registry, and answered with JSON (or a Table when asked for one). Any
failure becomes a Kubernetes Status; a bug becomes a 500 Status, never a crash.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from kubeling import bounded_decode, errors, fastjson, metrics_server, protobuf
from kubeling.printers import to_table
from kubeling.resources import BY_PLURAL, GROUPS, Resource

from . import authn, authz, discovery, node_restriction, openapi, podlogs, scale, streaming, watch
from . import metrics, serviceaccount_admission, tokens
from . import access_review, bootstrap_policy, rbac, rbac_escalation
from .fieldvalidation import FieldValidator
from .pod_events import PodEvents
from .registry import Registry
from .store import Store

log = logging.getLogger("kubeling.apiserver")

MAX_BODY = 3 * 1024 * 1024
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

STORE_KEY: web.AppKey[Store] = web.AppKey("store", Store)
REGISTRY_KEY: web.AppKey[Registry] = web.AppKey("registry", Registry)
AUTHN_KEY: web.AppKey[authn.Authenticator] = web.AppKey("authenticator", authn.Authenticator)
AUTHZ_KEY: web.AppKey[authz.Authorizer] = web.AppKey("authorizer", authz.Authorizer)


@dataclass
class Target:
    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_path(path: str) -> Target | None:
    """Map a REST path onto a resource; None when the path names nothing we serve."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis" and GROUPS.get(parts[1]) == parts[2]:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and (group, rest[2]) in BY_PLURAL \
            and BY_PLURAL[(group, rest[2])].namespaced:
        namespace, rest = rest[1], rest[2:]
    res = BY_PLURAL.get((group, rest[0]))
    if res is None or len(rest) > 3:
        return None
    name = rest[1] if len(rest) >= 2 else None
    sub = rest[2] if len(rest) == 3 else None
    if sub is not None and sub not in res.subresources and not (res.plural == "namespaces" and sub == "finalize"):
        return None
    if res.namespaced and name is not None and namespace is None:
        return None
    return Target(res, namespace, name, sub)


def _json(body: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> web.Response:
    resp = web.Response(body=fastjson.dumps(body), status=status,
                        content_type="application/json")
    for key, value in headers or ():
        resp.headers.add(key, value)
    return resp


def _error(exc: errors.ApiError) -> web.Response:
    return _json(exc.status(), exc.code)


async def _read_body(request: web.Request) -> Any:
    # A declared length over the limit is refused before reading a byte of it.
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.ApiError(413, "RequestEntityTooLarge", "the request body is too large")
    raw = await request.read()
    if not raw.strip():
        raise errors.bad_request("the request body is empty")
    ctype = (request.content_type or "application/json").lower()
    try:
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
            return bounded_decode.loads_yaml(raw)
        if ctype == protobuf.CONTENT_TYPE:  # client-go's default for built-in kinds
            return protobuf.decode_body(raw)
        if ctype in ("application/json", "text/plain", "application/octet-stream", ""):
            return bounded_decode.loads_json(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise errors.bad_request(f"error decoding the request body: {exc}".splitlines()[0])
    raise errors.unsupported_media_type(ctype)


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _table(res: Resource, items: list[dict[str, Any]], request: web.Request,
           list_meta: dict[str, Any] | None = None) -> dict[str, Any]:
    include = request.query.get("includeObject", "Metadata")
    try:
        return to_table(res, items, list_meta=list_meta, include_object=include)
    except ValueError as exc:  # an includeObject value Kubernetes does not know
        raise errors.bad_request(str(exc))


def _bool_query(request: web.Request, key: str) -> bool:
    return request.query.get(key, "").lower() in ("1", "true", "yes")


def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for v in values:
        if v != "All":
            raise errors.bad_request(f'Invalid dry run value: "{v}": supported values: "All"')
    return bool(values)


class ApiHandlers:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.pod_events = PodEvents(registry)

    async def resource(self, request: web.Request) -> web.StreamResponse:
        target = parse_path(request.path)
        if target is None:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource",
                                  {"causes": [{"reason": "UnexpectedServerResponse",
                                               "message": f"404 page not found: {request.path}"}]})
        method = request.method
        received = time.time()  # a pod's trace starts here (pod_events)
        res, ns, name, sub = target.resource, target.namespace, target.name, target.subresource
        if name is None:
            if method == "GET":
                return await self._list_or_watch(request, target)
            if method == "POST":
                if res.namespaced and ns is None:
                    raise errors.method_not_allowed(f"POST is not allowed on {request.path}")
                if res.group in access_review.GROUPS:  # reviews are answered, not stored
                    user = authn.CURRENT_USER.get() or authn.UNAUTHENTICATED_ADMIN
                    return _json(access_review.review(request.app[AUTHZ_KEY], res, await _read_body(request),
                                                      user), 201)
                fields = FieldValidator(res, request.query.get("fieldValidation"))
                body = await _read_body(request)
                fields.check(body)
                obj = await self.registry.create(res, ns, body, dry_run=_dry_run(request))
                if res.plural == "pods" and not res.group and not _dry_run(request):
                    self.pod_events.stored(obj, received)
                return _json(obj, 201, fields.headers())
            if method == "DELETE":
                opts = await self._delete_options(request)
                listed = await self.registry.delete_collection(
                    res, ns, request.query.get("labelSelector", ""), request.query.get("fieldSelector", ""), opts)
                return _json(listed)
            raise errors.method_not_allowed(f"{method} is not allowed on a collection")
        if sub == "binding":
            if method != "POST":
                raise errors.method_not_allowed("binding only accepts POST")
            return _json(await self.registry.bind(res, ns or "", name, await _read_body(request)), 201)
        if sub == "token" and res.plural == "serviceaccounts":
            if method != "POST":
                raise errors.method_not_allowed("token only accepts POST")
            return _json(await tokens.request(self.registry, ns or "", name, await _read_body(request),
                                              self.registry.service_accounts), 201)
        if sub == "log":
            if method != "GET":
                raise errors.method_not_allowed("log only accepts GET")
            return await podlogs.serve(request, self.registry, ns or "", name)
        if res.plural == "pods" and sub in streaming.CONNECT_SUBRESOURCES:
            if method not in ("GET", "POST"):
                raise errors.method_not_allowed(f"{method} is not allowed on {sub}")
            return await streaming.serve(request, self.registry, ns or "", name, sub)
        if sub == "scale":
            return _json(await scale.serve(request, self.registry, res, ns, name, _dry_run(request)))
        if sub not in (None, "status", "finalize", "approval"):
            raise errors.method_not_allowed(f"{method} is not supported on {sub}")
        if method == "GET":
            obj = await self.registry.get(res, ns, name)
            if _wants_table(request):
                return _json(_table(res, [obj], request))
            return _json(obj)
        if method == "PUT":
            fields = FieldValidator(res, request.query.get("fieldValidation"))
            body = await _read_body(request)
            fields.check(body)
            obj, created = await self.registry.update(
                res, ns, name, body, subresource=sub, dry_run=_dry_run(request))
            return _json(obj, 201 if created else 200, fields.headers())
        if method == "PATCH":
            fields = FieldValidator(res, request.query.get("fieldValidation"))
            raw = await request.read()
            obj, created = await self.registry.patch(
                res, ns, name, request.headers.get("Content-Type", ""), raw, subresource=sub,
                dry_run=_dry_run(request), field_manager=request.query.get("fieldManager"),
                force=_bool_query(request, "force"), check_fields=fields.patched)
            return _json(obj, 201 if created else 200, fields.headers())
        if method == "DELETE":
            if sub is not None:
                raise errors.method_not_allowed(f"DELETE is not supported on {sub}")
            obj, removed = await self.registry.delete(res, ns, name, await self._delete_options(request),
                                                     dry_run=_dry_run(request))
            if res.plural == "pods" and not res.group and not _dry_run(request):
                self.pod_events.deleted(obj, removed, received)
            # Like kube-apiserver: pods and services answer with the deleted object
            # (client libraries decode it as such), others with a Success Status.
            if res.plural in ("pods", "services") or not removed:
                return _json(obj, 200)
            meta = obj.get("metadata") or {}
            return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                          "details": {"name": name, "group": res.group, "kind": res.plural,
                                      "uid": meta.get("uid")}})
        raise errors.method_not_allowed(f"{method} is not allowed")

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        raw = await request.read()
        if raw.strip():
            body = await _read_body(request)
            if not isinstance(body, dict):
                raise errors.bad_request("DeleteOptions must be an object")
            opts = body
        grace = request.query.get("gracePeriodSeconds")
        if grace is not None:
            try:
                opts["gracePeriodSeconds"] = int(grace)
            except ValueError:
                raise errors.bad_request(f"invalid gracePeriodSeconds: {grace!r}")
        return opts

    async def _list_or_watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        res, ns = target.resource, target.namespace
        q = request.query
        label_sel, field_sel = q.get("labelSelector", ""), q.get("fieldSelector", "")
        if _bool_query(request, "watch"):
            match = self.registry.matcher(res, label_sel, field_sel)
            try:
                timeout = float(q.get("timeoutSeconds") or 1800)
            except ValueError:
                raise errors.bad_request("invalid timeoutSeconds")
            rv = q.get("resourceVersion", "")
            if rv not in ("", "0") and not rv.isdigit():
                raise errors.bad_request(f"invalid resourceVersion: {rv!r}")
            stream = self.registry.watch(res, ns, rv, match)
            if _wants_table(request):
                def transform(obj: dict[str, Any]) -> dict[str, Any]:
                    return _table(res, [obj], request, {"resourceVersion": obj["metadata"]["resourceVersion"]})
            else:
                def transform(obj: dict[str, Any]) -> dict[str, Any]:
                    return obj
            return await watch.serve(request, stream, res, timeout, transform)
        listed = await self.registry.list(res, ns, label_sel, field_sel)
        if _wants_table(request):
            return _json(_table(res, listed["items"], request, listed["metadata"]))
        return _json(listed)


def request_attributes(request: web.Request) -> authz.Attributes:
    """The authorization attributes of a request (Kubernetes' RequestInfo)."""
    target = parse_path(request.path)
    if target is None:
        return authz.Attributes(verb=request.method.lower() if request.method not in ("GET", "HEAD") else "get",
                                path=request.path)
    verb = authz.verb_for(request.method, target.name is not None, _bool_query(request, "watch"))
    if target.resource.plural == "pods" and target.subresource in streaming.CONNECT_SUBRESOURCES:
        # Connect verbs: a WebSocket GET needs `create` too, as kube-apiserver since 1.31
        # (AuthorizePodWebsocketUpgradeCreatePermission): exec is never a mere read.
        verb = "create"
    return authz.Attributes(verb, target.resource.group, target.resource.plural, target.subresource or "",
                            target.namespace or "", target.name or "")


def _auth_middleware(authenticator: authn.Authenticator, registry: Registry):
    """Authentication, authorization and NodeRestriction, before any handler runs."""
    @web.middleware
    async def auth(request: web.Request, handler):  # type: ignore[no-untyped-def]
        if request.path in PUBLIC_PATHS:
            return await handler(request)
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        user = await authenticator.authenticate_request(peercert, request.headers.get("Authorization", ""),
                                                        registry)
        if user is None:
            return _error(errors.unauthorized())
        authorizer = request.app[AUTHZ_KEY]
        user = authz.impersonate(authorizer, user, request.headers)  # kubectl --as
        attrs = request_attributes(request)
        decision = authorizer.authorize(user, attrs)
        if not decision.allowed:
            return _error(authz.forbidden(user, attrs, decision))
        await node_restriction.admit(user, attrs, registry, request.read, (request.content_type or "").lower())
        token = authn.CURRENT_USER.set(user)
        try:
            return await handler(request)
        finally:
            authn.CURRENT_USER.reset(token)
    return auth


@web.middleware
async def _errors_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    try:
        return await handler(request)
    except errors.ApiError as exc:
        return _error(exc)
    except web.HTTPRequestEntityTooLarge:
        return _error(errors.ApiError(413, "RequestEntityTooLarge", "request entity too large"))
    except web.HTTPException:
        raise
    except Exception as exc:  # a bug must answer a Status, not kill the server
        log.exception("internal error on %s %s", request.method, request.path)
        return _error(errors.internal(f"{type(exc).__name__}: {exc}"))


def _counted_path(path: str) -> bool:
    """A non-resource path whose requests the metrics count (a bounded set)."""
    if path in PUBLIC_PATHS or path in ("/version/", "/api", "/apis", "/api/v1", metrics_server.PATH):
        return True
    parts = path.split("/")
    return len(parts) in (3, 4) and parts[1] == "apis" and parts[2] in GROUPS \
        and (len(parts) == 3 or GROUPS[parts[2]] == parts[3])


def build_app(store: Store, authenticator: authn.Authenticator | None = None,
              count_poll_period: float = 60.0) -> web.Application:
    """`authenticator` None (or one with neither tokens nor a client CA): no
    authentication, every request is the admin. `count_poll_period`: seconds between
    counts of the stored objects (apiserver_storage_objects); 0 never counts."""
    authenticator = authenticator or authn.Authenticator()
    registry = Registry(store)
    # ServiceAccount tokens: issued by serviceaccounts/<name>/token, authenticated, and the
    # admission that gives pods a ServiceAccount and its token volume (kube-apiserver with
    # --service-account-signing-key-file).
    registry.service_accounts = authenticator.service_accounts
    if authenticator.service_accounts is not None:
        registry.create_admission.append(serviceaccount_admission.admit)
    app = web.Application(middlewares=[metrics.middleware(parse_path, _counted_path), _errors_middleware,
                                       _auth_middleware(authenticator, registry)],
                          client_max_size=MAX_BODY)
    app[STORE_KEY] = store
    app[REGISTRY_KEY] = registry
    app[AUTHN_KEY] = authenticator
    # Authorization: Node, then RBAC from a watch-fed view of the policy; RBAC writes
    # may grant only what their author holds.
    policy = rbac.PolicyCache(registry)
    rbac_authorizer = rbac.RBACAuthorizer(policy)
    app[AUTHZ_KEY] = authz.Authorizer(rbac_authorizer)
    registry.validate_admission.append(rbac_escalation.EscalationCheck(app[AUTHZ_KEY], rbac_authorizer))
    handlers = ApiHandlers(registry)
    object_counter = metrics.StorageObjectCounter(store, count_poll_period)

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def version(_: web.Request) -> web.Response:
        return _json(discovery.version_info())

    async def api(_: web.Request) -> web.Response:
        return _json(discovery.api_versions())

    async def apis(_: web.Request) -> web.Response:
        return _json(discovery.api_group_list())

    async def group_or_version(request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if parts == ["api", "v1"]:
            return _json(discovery.resource_list("", "v1"))
        if len(parts) == 2 and parts[0] == "apis":
            doc = discovery.api_group(parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = discovery.resource_list(parts[1], parts[2])
        else:
            return await handlers.resource(request)
        if doc is None:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        return _json(doc)

    async def openapi_index(_: web.Request) -> web.Response:
        return _json(openapi.index())

    async def openapi_document(request: web.Request) -> web.Response:
        gv = openapi.lookup_path(request.path)
        data = openapi.document_bytes(*gv) if gv else None
        if data is None:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        # The URL carries the document's hash, so a client may cache it for good.
        cache = "public, immutable" if request.query.get("hash") else "no-cache, private"
        return web.Response(body=data, content_type="application/json",
                            headers={"Cache-Control": cache, "Etag": f'"{openapi.document_hash(*gv)}"'})

    for path in ("/healthz", "/livez", "/readyz"):
        app.router.add_get(path, ok)
    app.router.add_get("/version", version)
    app.router.add_get("/version/", version)  # the python client asks with a slash
    app.router.add_get("/api", api)
    app.router.add_get("/apis", apis)
    app.router.add_get("/openapi/v3", openapi_index)
    app.router.add_get("/openapi/v3/{tail:.+}", openapi_document)
    metrics_server.add_route(app)  # behind the auth middleware: RBAC's system:monitoring may read it
    app.router.add_route("*", "/{tail:.*}", group_or_version)

    async def on_startup(_: web.Application) -> None:
        await store.connect()
        await registry.namespaces.start()
        await policy.start()
        ns_res = BY_PLURAL[("", "namespaces")]
        for ns in DEFAULT_NAMESPACES:
            try:
                await registry.create(ns_res, None, {"metadata": {"name": ns}})
            except errors.ApiError as exc:
                if exc.reason != "AlreadyExists":
                    raise
        await bootstrap_policy.ensure(registry)  # kube-apiserver's rbac/bootstrap-roles hook
        object_counter.start()

    async def on_cleanup(_: web.Application) -> None:
        await object_counter.stop()
        await policy.stop()
        await registry.namespaces.stop()
        await store.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
