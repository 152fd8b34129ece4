"""`kubeling get`: tables from the server's Table responses, like kubectl."""
from __future__ import annotations

import json
from typing import Any

import click
import yaml

from kubeling import errors
from kubeling.client import Client, resource_path
from kubeling.printers import render_table
from kubeling.resources import Resource

from .common import display_name, make_client, resolve, run_async

TABLE_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")


def _dump(obj: Any, output: str) -> str:
    if output == "json":
        return json.dumps(obj, indent=4)
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False).rstrip("\n")


async def _objects(client: Client, res: Resource, ns: str | None, names: tuple[str, ...],
                   selector: str, field_selector: str, accept: str = "application/json") -> Any:
    if names:
        return [await client.request("GET", resource_path(res, ns, n), accept=accept) for n in names]
    return await client.list(res, ns, label_selector=selector, field_selector=field_selector, accept=accept)


def _strip_list(obj: dict[str, Any], res: Resource) -> list[dict[str, Any]]:
    items = obj.get("items") or []
    for i in items:
        i.setdefault("kind", res.kind)
        i.setdefault("apiVersion", res.api_version)
    return items


@click.command("get")
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("-o", "--output", type=click.Choice(["wide", "yaml", "json", "name"]), default=None)
@click.option("-w", "--watch", is_flag=True, help="After listing, watch for changes.")
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-n", "--namespace", default=None)
@click.option("-l", "--selector", default="", help="Label selector.")
@click.option("--field-selector", default="")
@click.option("--show-labels", is_flag=True)
@click.option("--no-headers", is_flag=True)
@click.option("--kubeconfig", default=None)
@run_async
async def get_cmd(kind: str, names: tuple[str, ...], output: str | None, watch: bool, all_namespaces: bool,
                  namespace: str | None, selector: str, field_selector: str, show_labels: bool,
                  no_headers: bool, kubeconfig: str | None) -> None:
    """Show objects of KIND (pods, svc, nodes, ...)."""
    res = resolve(kind)
    client, default_ns = make_client(kubeconfig)
    ns = None if (all_namespaces or not res.namespaced) else (namespace or default_ns)
    with_ns = all_namespaces and res.namespaced
    async with client:
        if output in ("yaml", "json", "name"):
            got = await _objects(client, res, ns, names, selector, field_selector)
            items = got if isinstance(got, list) else _strip_list(got, res)
            if output == "name":
                for i in items:
                    click.echo(f"{display_name(res)}/{i['metadata']['name']}")
            elif len(items) == 1 and names:
                click.echo(_dump(items[0], output))
            else:
                click.echo(_dump({"apiVersion": "v1", "kind": "List", "items": items,
                                  "metadata": {"resourceVersion": ""}}, output))
            return
        wide = output == "wide"
        got = await _objects(client, res, ns, names, selector, field_selector, TABLE_ACCEPT)
        tables = got if isinstance(got, list) else [got]
        rows = [r for t in tables for r in t.get("rows") or []]
        table = dict(tables[0]) if tables else {}
        table["rows"] = rows
        if not rows and not watch:
            where = f" in {ns} namespace" if ns else ""
            click.echo(f"No resources found{where}.", err=True)
            return
        opts = dict(wide=wide, with_namespace=with_ns, show_labels=show_labels)
        if rows:
            click.echo(render_table(table, no_headers=no_headers, **opts), nl=False)
        if not watch:
            return
        rv = tables[0].get("metadata", {}).get("resourceVersion", "") if not names else ""
        headers_done = bool(rows) or no_headers
        field = field_selector
        if names and len(names) == 1:
            field = f"metadata.name={names[0]}"
        while True:
            try:
                async for _typ, tbl in client.watch(res, ns, resource_version=rv, label_selector=selector,
                                                    field_selector=field, accept=TABLE_ACCEPT):
                    rv = tbl.get("metadata", {}).get("resourceVersion", rv)
                    if not tbl.get("columnDefinitions"):
                        tbl["columnDefinitions"] = table.get("columnDefinitions", [])
                    click.echo(render_table(tbl, no_headers=headers_done, **opts), nl=False)
                    headers_done = True
            except errors.ApiError as exc:
                if exc.code != 410:
                    raise
                rv = ""
