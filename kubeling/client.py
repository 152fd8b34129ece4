"""An asyncio client for the Kubernetes REST API (ours or anyone's)."""
from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from kubeling import errors
from kubeling.kubeconfig import Connection, load
from kubeling.resources import Resource

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
                 ca_pem: bytes | None = None, insecure: bool = False) -> None:
        self.server = server.rstrip("/")
        self._ssl: ssl.SSLContext | bool = True
        if insecure:
            self._ssl = False
        elif ca_pem:
            self._ssl = ssl.create_default_context(cadata=ca_pem.decode())
        headers = {"User-Agent": user_agent}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, user_agent: str = "kubeling") -> "Client":
        conn: Connection = load(path)
        return cls(conn.server, conn.token, user_agent, conn.ca_pem, conn.insecure)

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
                    accept: str = "application/json") -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, object) pairs until the server ends the stream; ERROR events
        are raised as ApiError (410 Expired means: list again)."""
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
                                        timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as resp:
                if resp.status >= 400:
                    raise _error_from(resp.status, await resp.read())
                async for line in resp.content:
                    if not line.strip():
                        continue
                    ev = json.loads(line)
                    if ev.get("type") == "ERROR":
                        raise errors.ApiError.from_status(ev.get("object") or {}, 500)
                    yield ev["type"], ev["object"]
        except aiohttp.ClientConnectionError as exc:
            raise errors.ApiError(503, "ServiceUnavailable",
                                  f"the server at {self.server} is not reachable: {exc}") from exc


def _error_from(status: int, raw: bytes) -> errors.ApiError:
    try:
        body = json.loads(raw)
        if isinstance(body, dict) and body.get("kind") == "Status":
            return errors.ApiError.from_status(body, status)
    except ValueError:
        pass
    text = raw.decode(errors="replace").strip()[:200]
    return errors.ApiError(status, "Unknown", f"the server responded with status {status}: {text}")
