"""An asyncio client for the Kubernetes REST API (ours or anyone's)."""
from __future__ import annotations

import asyncio
import json
import os
import ssl
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from kubeling import errors
from kubeling.kubeconfig import Connection, load
from kubeling.resources import Resource

# Kubernetes ends a watch after at most 2 x --min-request-timeout (1800 s); a stream silent
# for longer (plus this margin for a slow server) is dead.
MAX_SERVER_WATCH_SECONDS = 3600
WATCH_SILENCE_MARGIN = 30.0

PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


def resource_path(res: Resource, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    base = f"/apis/{res.group}/{res.version}" if res.group else "/api/v1"
    if res.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{res.plural}"
    if name:
        base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
    return base


class Client:
    """One HTTP session to an API server; errors come back as ApiError."""

    def __init__(self, server: str, token: str | None = None, user_agent: str = "kubeling",
                 ca_pem: bytes | None = None, insecure: bool = False, *,
                 cert_pem: bytes | None = None, key_pem: bytes | None = None) -> None:
        """Credentials: a bearer token, or a client certificate and its key (PEM), or both."""
        self.server = server.rstrip("/")
        self._ssl: ssl.SSLContext | bool = True
        if insecure or ca_pem or cert_pem:
            self._ssl = tls_context(ca_pem, insecure, cert_pem, key_pem)
        headers = {"User-Agent": user_agent}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, user_agent: str = "kubeling") -> "Client":
        return cls.from_connection(load(path), user_agent)

    @classmethod
    def from_connection(cls, conn: Connection, user_agent: str = "kubeling") -> "Client":
        return cls(conn.server, conn.token, user_agent, conn.ca_pem, conn.insecure,
                   cert_pem=conn.cert_pem, key_pem=conn.key_pem)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=256, ssl=self._ssl),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def request(self, method: str, path: str, body: Any = None, *,
                      params: dict[str, str] | None = None, content_type: str = "application/json",
                      accept: str = "application/json", timeout: float = 60) -> Any:
        data = None
        headers = {"Accept": accept}
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            headers["Content-Type"] = content_type
        try:
            async with self.session.request(method, self.server + path, data=data, params=params,
                                            headers=headers,
                                            timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise _error_from(resp.status, raw)
                ctype = resp.headers.get("Content-Type", "")
                if "json" in ctype:
                    return json.loads(raw)
                return raw.decode(errors="replace")
        except aiohttp.ClientConnectionError as exc:
            raise errors.ApiError(503, "ServiceUnavailable",
                                  f"the server at {self.server} is not reachable: {exc}") from exc
        except asyncio.TimeoutError as exc:
            raise errors.timeout(f"request to {self.server}{path} timed out") from exc

    # ---- typed verbs -------------------------------------------------------

    async def get(self, res: Resource, name: str, namespace: str | None = None,
                  subresource: str | None = None) -> dict[str, Any]:
        return await self.request("GET", resource_path(res, namespace, name, subresource))

    async def list(self, res: Resource, namespace: str | None = None, *, label_selector: str = "",
                   field_selector: str = "", accept: str = "application/json") -> dict[str, Any]:
        params = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        return await self.request("GET", resource_path(res, namespace), params=params, accept=accept)

    async def create(self, res: Resource, obj: dict[str, Any], namespace: str | None = None,
                     params: dict[str, str] | None = None) -> dict[str, Any]:
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        return await self.request("POST", resource_path(res, ns), obj, params=params)

    async def update(self, res: Resource, obj: dict[str, Any], subresource: str | None = None
                     ) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        return await self.request("PUT", resource_path(res, meta.get("namespace"), meta["name"], subresource), obj)

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str | None = None,
                    params: dict[str, str] | None = None) -> dict[str, Any]:
        return await self.request("PATCH", resource_path(res, namespace, name, subresource), patch,
                                  params=params, content_type=PATCH_CONTENT_TYPES[patch_type])

    async def delete(self, res: Resource, name: str, namespace: str | None = None, *,
                     grace_period: int | None = None, uid: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period is not None:
            body["gracePeriodSeconds"] = grace_period
        if uid:
            body["preconditions"] = {"uid": uid}
        return await self.request("DELETE", resource_path(res, namespace, name), body)

    async def create_binding(self, namespace: str, name: str, node: str, uid: str | None = None
                             ) -> dict[str, Any]:
        from kubeling.resources import BY_PLURAL
        meta: dict[str, Any] = {"name": name, "namespace": namespace}
        if uid:
            meta["uid"] = uid
        body = {"kind": "Binding", "apiVersion": "v1", "metadata": meta,
                "target": {"kind": "Node", "apiVersion": "v1", "name": node}}
        return await self.request("POST", resource_path(BY_PLURAL[("", "pods")], namespace, name, "binding"),
                                  body)

    async def watch(self, res: Resource, namespace: str | None = None, *, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "", timeout_seconds: int | None = None,
                    accept: str = "application/json", bookmarks: bool = False,
                    read_timeout: float | None = None) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, object) pairs until the server ends the stream; ERROR events
        are raised as ApiError (410 Expired means: list again). BOOKMARK events are
        passed on only with bookmarks=True.

        A stream silent (no event, no bookmark) for read_timeout seconds is dead, not
        quiet: the server would have ended it by then. It raises ApiError 504 and the
        caller watches again. The default is the timeout asked of the server (or
        Kubernetes' longest, 2 x 1800 s) plus a margin."""
        if read_timeout is None:
            read_timeout = (timeout_seconds or MAX_SERVER_WATCH_SECONDS) + WATCH_SILENCE_MARGIN
        params = {"watch": "true", "allowWatchBookmarks": "true"}
        if resource_version:
            params["resourceVersion"] = resource_version
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if timeout_seconds:
            params["timeoutSeconds"] = str(timeout_seconds)
        try:
            async with self.session.get(self.server + resource_path(res, namespace), params=params,
                                        headers={"Accept": accept},
                                        timeout=aiohttp.ClientTimeout(total=None, sock_read=read_timeout)) as resp:
                if resp.status >= 400:
                    raise _error_from(resp.status, await resp.read())
                async for line in resp.content:
                    if not line.strip():
                        continue
                    ev = json.loads(line)
                    if ev.get("type") == "ERROR":
                        raise errors.ApiError.from_status(ev.get("object") or {}, 500)
                    if ev.get("type") == "BOOKMARK" and not bookmarks:
                        continue
                    yield ev["type"], ev["object"]
        except aiohttp.ServerTimeoutError as exc:
            raise errors.ApiError(504, "Timeout", f"the watch stream from {self.server} was silent for "
                                                  f"{read_timeout:g}s: {exc}") from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise errors.ApiError(503, "ServiceUnavailable",
                                  f"the server at {self.server} is not reachable: {exc}") from exc


def tls_context(ca_pem: bytes | None = None, insecure: bool = False, cert_pem: bytes | None = None,
                key_pem: bytes | None = None) -> ssl.SSLContext:
    """The client side of TLS: whom to trust (a CA, the system's, or nobody when
    insecure) and, optionally, the client certificate to present."""
    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cadata=ca_pem.decode() if ca_pem else None)
    if cert_pem:
        if not key_pem:
            raise ValueError("a client certificate needs its private key")
        # ssl loads a certificate chain only from files: a private directory, gone right after.
        with tempfile.TemporaryDirectory(prefix="kubeling-tls-") as tmp:
            cert_file, key_file = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
            for path, data in ((cert_file, cert_pem), (key_file, key_pem)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            ctx.load_cert_chain(cert_file, key_file)
    return ctx


def _error_from(status: int, raw: bytes) -> errors.ApiError:
    try:
        body = json.loads(raw)
        if isinstance(body, dict) and body.get("kind") == "Status":
            return errors.ApiError.from_status(body, status)
    except ValueError:
        pass
    text = raw.decode(errors="replace").strip()[:200]
    return errors.ApiError(status, "Unknown", f"the server responded with status {status}: {text}")
