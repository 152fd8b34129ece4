"""What every CLI command shares: the client, errors in kubectl's words, async glue."""
from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from kubeling import errors
from kubeling.client import Client
from kubeling.kubeconfig import load
from kubeling.resources import Resource, lookup

T = TypeVar("T")


def fail(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(1)


def describe_error(exc: errors.ApiError) -> str:
    """One line, as kubectl prints it."""
    if exc.reason == "Invalid":
        return f"The {exc.message}"
    return f"Error from server ({exc.reason}): {exc.message}"


def run_async(fn: Callable[..., Awaitable[T]]) -> Callable[..., T]:
    """Run an async command body; ApiErrors become one line and exit 1."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return asyncio.run(fn(*args, **kwargs))
        except errors.ApiError as exc:
            fail(describe_error(exc))
        except ValueError as exc:
            fail(f"error: {exc}")
        except KeyboardInterrupt:
            sys.exit(130)
        raise AssertionError("unreachable")
    return wrapper


def make_client(kubeconfig: str | None) -> tuple[Client, str]:
    conn = load(kubeconfig)
    return Client.from_connection(conn, "kubeling-cli"), conn.namespace


def resolve(word: str) -> Resource:
    res = lookup(word)
    if res is None:
        fail(f'error: the server doesn\'t have a resource type "{word}"')
    assert res is not None
    return res


def display_name(res: Resource) -> str:
    """`pod`, `lease.coordination.k8s.io`: how kubectl names a kind in its output."""
    kind = res.kind.lower()
    return f"{kind}.{res.group}" if res.group else kind
