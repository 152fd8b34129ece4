"""`kubeling apply -f` and `kubeling delete`: client-side apply and deletion, as kubectl does."""
from __future__ import annotations

import asyncio

import click

from kubeling import errors
from kubeling.client import Client
from kubeling.patch import (PatchError, create_three_way_merge_patch, last_applied_configuration,
                            with_last_applied_annotation)
from kubeling.resources import Resource, for_kind

from .common import describe_error, display_name, fail, make_client, resolve, run_async
from .manifests import Manifest, ManifestError, read

def _resource_of(m: Manifest) -> Resource:
    res = for_kind(m.obj.get("apiVersion", ""), m.obj.get("kind", ""))
    if res is None:
        name = (m.obj.get("metadata") or {}).get("name", "")
        fail(f'error: resource mapping not found for name: "{name}" from "{m.source}": '
             f'no matches for kind "{m.obj.get("kind")}" in version "{m.obj.get("apiVersion")}"')
    assert res is not None
    return res


def _manifests(files: tuple[str, ...]) -> list[Manifest]:
    try:
        return read(files)
    except ManifestError as exc:
        fail(f"error: {exc}")
    raise AssertionError


def _target(m: Manifest, res: Resource, default_ns: str) -> tuple[str | None, str]:
    meta = m.obj.setdefault("metadata", {})
    if not isinstance(meta, dict) or not meta.get("name"):
        fail(f'error: error when retrieving current configuration from "{m.source}": '
             f"resource name may not be empty")
    ns = (meta.get("namespace") or default_ns) if res.namespaced else None
    if res.namespaced:
        meta["namespace"] = ns
    return ns, meta["name"]


async def apply_one(client: Client, m: Manifest, res: Resource, ns: str | None, name: str) -> str:
    modified = with_last_applied_annotation(m.obj)
    for _ in range(5):
        try:
            current = await client.get(res, name, ns)
        except errors.ApiError as exc:
            if exc.code != 404:
                raise
            try:
                await client.create(res, modified, ns, params={"fieldManager": "kubeling-client-side-apply"})
                return "created"
            except errors.ApiError as exc2:
                if exc2.reason == "AlreadyExists":
                    continue
                raise
        try:
            patch = create_three_way_merge_patch(last_applied_configuration(current), modified, current,
                                                 res.kind)
        except PatchError as exc:
            raise errors.bad_request(f'error when applying patch to {res.kind} "{name}": {exc}')
        if not patch:
            return "unchanged"
        try:
            await client.patch(res, name, patch, ns, patch_type="strategic",
                               params={"fieldManager": "kubeling-client-side-apply"})
            return "configured"
        except errors.ApiError as exc:
            if exc.code == 409 and exc.reason == "Conflict":
                continue
            raise
    raise errors.conflict(res.plural, name, errors.STALE, res.group)


@click.command("apply")
@click.option("-f", "--filename", "files", multiple=True, required=True, help="File, directory or - for stdin.")
@click.option("-n", "--namespace", default=None)
@click.option("--kubeconfig", default=None)
@run_async
async def apply_cmd(files: tuple[str, ...], namespace: str | None, kubeconfig: str | None) -> None:
    """Create or update objects from manifests."""
    manifests = _manifests(files)
    client, default_ns = make_client(kubeconfig)
    failed = False
    async with client:
        for m in manifests:
            res = _resource_of(m)
            ns, name = _target(m, res, namespace or default_ns)
            try:
                outcome = await apply_one(client, m, res, ns, name)
                click.echo(f"{display_name(res)}/{name} {outcome}")
            except errors.ApiError as exc:
                click.echo(describe_error(exc), err=True)
                failed = True
    if failed:
        raise SystemExit(1)


async def _wait_gone(client: Client, res: Resource, ns: str | None, name: str, uid: str | None,
                     timeout: float) -> bool:
    async def gone() -> bool:
        while True:
            listed = await client.list(res, ns, field_selector=f"metadata.name={name}")
            items = [i for i in listed["items"] if not uid or i["metadata"].get("uid") == uid]
            if not items:
                return True
            async for typ, obj in client.watch(res, ns, resource_version=listed["metadata"]["resourceVersion"],
                                               field_selector=f"metadata.name={name}", timeout_seconds=30):
                if typ == "DELETED" and (not uid or obj["metadata"].get("uid") == uid):
                    return True
    try:
        return await asyncio.wait_for(gone(), timeout)
    except asyncio.TimeoutError:
        return False


async def delete_one(client: Client, res: Resource, ns: str | None, name: str, grace: int | None,
                     wait: bool, timeout: float, ignore_not_found: bool) -> bool:
    try:
        obj = await client.delete(res, name, ns, grace_period=grace)
    except errors.ApiError as exc:
        if exc.code == 404 and ignore_not_found:
            return True
        click.echo(describe_error(exc), err=True)
        return False
    click.echo(f'{display_name(res)} "{name}" deleted')
    if wait:
        uid = (obj.get("metadata") or {}).get("uid") or (obj.get("details") or {}).get("uid")
        if not await _wait_gone(client, res, ns, name, uid, timeout):
            click.echo(f'error: timed out waiting for {display_name(res)} "{name}" to be deleted', err=True)
            return False
    return True


@click.command("delete")
@click.argument("args", nargs=-1)
@click.option("-f", "--filename", "files", multiple=True)
@click.option("-n", "--namespace", default=None)
@click.option("--grace-period", type=int, default=None, help="Seconds to give the pod to terminate.")
@click.option("--now", is_flag=True, help="Same as --grace-period=1.")
@click.option("--wait/--no-wait", default=True, help="Wait until the objects are gone.")
@click.option("--timeout", type=float, default=120.0)
@click.option("--ignore-not-found", is_flag=True)
@click.option("--kubeconfig", default=None)
@run_async
async def delete_cmd(args: tuple[str, ...], files: tuple[str, ...], namespace: str | None,
                     grace_period: int | None, now: bool, wait: bool, timeout: float,
                     ignore_not_found: bool, kubeconfig: str | None) -> None:
    """Delete objects named in manifests (-f) or by KIND NAME..."""
    if now:
        grace_period = 1
    client, default_ns = make_client(kubeconfig)
    targets: list[tuple[Resource, str | None, str]] = []
    if files:
        if args:
            fail("error: names cannot be provided when a filename is specified")
        for m in _manifests(files):
            res = _resource_of(m)
            ns, name = _target(m, res, namespace or default_ns)
            targets.append((res, ns, name))
    else:
        if len(args) < 2:
            fail("error: you must provide -f FILE or KIND NAME...")
        kind, names = args[0], args[1:]
        if "/" in kind:
            kind, first = kind.split("/", 1)
            names = (first, *names)
        res = resolve(kind)
        targets = [(res, (namespace or default_ns) if res.namespaced else None, n) for n in names]
    ok = True
    async with client:
        for res, ns, name in targets:
            ok = await delete_one(client, res, ns, name, grace_period, wait, timeout, ignore_not_found) and ok
    if not ok:
        raise SystemExit(1)
