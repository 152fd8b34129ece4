"""What a node's runtime holds, read through the same Runtime interface the agent uses:
`python -m agent.runtime.node_view ps|pods|images --runtime-endpoint E` prints one JSON
document; `kubeling node` (kubeling/cli/node.py) turns it into crictl-like tables.

Containers, sandboxes and images all come through the Runtime interface, so the
listing is the same for Docker and CRI."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from agent.runtime.types import ContainerRecord, Runtime, RuntimeError_

DOCKER_ENDPOINT = "unix:///var/run/docker.sock"


def is_docker(endpoint: str) -> bool:
    return endpoint.rstrip("/").endswith("docker.sock") or endpoint.startswith(("tcp://", "http://"))


def make(endpoint: str) -> Runtime:
    """The runtime behind `endpoint`, chosen and configured as the agent's own (its flags'
    defaults, agent/runtime/select.py); no pod network: listing never sets one up."""
    from agent.__main__ import parse_args
    from agent.runtime.select import make_runtime
    flag = "--docker-host" if is_docker(endpoint) else "--container-runtime-endpoint"
    cfg, _ = parse_args([flag, endpoint])
    return make_runtime(cfg)


def _container(r: ContainerRecord) -> dict[str, Any]:
    return {"id": r.id, "image": r.image, "created_at": r.created_at, "state": r.state, "name": r.name,
            "attempt": r.attempt, "pod_id": r.sandbox_id, "pod": r.pod_name, "namespace": r.pod_namespace}


def _sandbox(r: ContainerRecord) -> dict[str, Any]:
    return {"id": r.id, "created_at": r.created_at, "state": r.state, "name": r.pod_name,
            "namespace": r.pod_namespace, "attempt": r.attempt, "uid": r.pod_uid}


async def containers(endpoint: str) -> list[dict[str, Any]]:
    rt = make(endpoint)
    try:
        return [_container(r) for r in await rt.list() if not r.is_sandbox]
    finally:
        await rt.close()


async def sandboxes(endpoint: str) -> list[dict[str, Any]]:
    rt = make(endpoint)
    try:
        return [_sandbox(r) for r in await rt.list_sandboxes()]
    finally:
        await rt.close()


async def list_images(endpoint: str) -> list[dict[str, Any]]:
    rt = make(endpoint)
    try:
        return [{"id": i.id, "repo_tags": list(i.repo_tags), "size": i.size} for i in await rt.list_images()]
    finally:
        await rt.close()


WHAT = {"ps": containers, "pods": sandboxes, "images": list_images}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m agent.runtime.node_view")
    p.add_argument("what", choices=sorted(WHAT))
    p.add_argument("--runtime-endpoint", default=DOCKER_ENDPOINT)
    a = p.parse_args(argv)
    try:
        rows = asyncio.run(WHAT[a.what](a.runtime_endpoint))
    except RuntimeError_ as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    json.dump({"endpoint": a.runtime_endpoint, "items": rows}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
