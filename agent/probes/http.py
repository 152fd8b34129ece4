"""httpGet: GET from the node; 200-399 is success. Redirects are followed on
the same host only (a redirect elsewhere ends the probe with a warning),
one connection per probe, no keep-alive, as kubelet's HTTP prober."""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from agent.probes import FAILURE, SUCCESS, WARNING, Outcome
from agent.probes.ports import join_host_port

USER_AGENT = "kube-probe/1.33"
MAX_REDIRECTS = 10
BODY_LIMIT = 10 * 1024


def probe_url(scheme: str, host: str, port: int, path: str) -> URL:
    if not path.startswith("/"):
        path = "/" + path
    return URL(f"{scheme.lower()}://{join_host_port(host, port)}{path}", encoded=True)


def probe_headers(http_headers: list[dict[str, Any]] | None) -> CIMultiDict:
    headers: CIMultiDict = CIMultiDict()
    for h in http_headers or []:
        if h.get("name"):
            headers.add(h["name"], h.get("value", ""))
    headers.setdefault("User-Agent", USER_AGENT)
    headers.setdefault("Accept", "*/*")
    return headers


async def probe_http(url: URL, headers: CIMultiDict, timeout: float) -> Outcome:
    first_host = url.host
    try:
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, ssl=False),
                timeout=aiohttp.ClientTimeout(total=timeout), auto_decompress=False) as session:
            target = url
            for _ in range(MAX_REDIRECTS + 1):
                async with session.get(target, headers=headers, allow_redirects=False) as resp:
                    body = await resp.content.read(BODY_LIMIT)
                    location = resp.headers.get("Location")
                    if 300 <= resp.status < 400 and location:
                        nxt = target.join(URL(location))
                        if nxt.host == first_host:
                            target = nxt
                            continue
                        return Outcome(WARNING, "Probe terminated redirects, Response body: "
                                       + body.decode("utf-8", "replace"))
                    if 200 <= resp.status < 400:
                        return Outcome(SUCCESS, body.decode("utf-8", "replace"))
                    return Outcome(FAILURE, f"HTTP probe failed with statuscode: {resp.status}")
            return Outcome(FAILURE, f'Get "{target}": stopped after {MAX_REDIRECTS} redirects')
    except asyncio.TimeoutError:
        return Outcome(FAILURE, f'Get "{url}": context deadline exceeded '
                                "(Client.Timeout exceeded while awaiting headers)")
    except aiohttp.ClientConnectorError as exc:
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        why = "connection refused" if refused else (exc.os_error.strerror or str(exc.os_error))
        return Outcome(FAILURE, f'Get "{url}": dial tcp {join_host_port(url.host or "", url.port or 0)}: '
                                f"connect: {why}")
    except (aiohttp.ClientError, OSError) as exc:
        return Outcome(FAILURE, f'Get "{url}": {exc}')
