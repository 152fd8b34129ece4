"""A small CRI-like runtime interface: what the pod workers need from a
container engine, and the records it returns. The Docker implementation lives
in agent/runtime/docker.py."""
from __future__ import annotations

from agent.runtime.types import (ContainerConfig, ContainerEvent, ContainerRecord, ImageNotFound, Mount,
                                 NotFound, PullError, Runtime, RuntimeError_, SandboxConfig)

__all__ = ["ContainerConfig", "ContainerEvent", "ContainerRecord", "ImageNotFound", "Mount", "NotFound",
           "PullError", "Runtime", "RuntimeError_", "SandboxConfig"]
