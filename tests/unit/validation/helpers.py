"""Valid objects to mutate, and a way to run defaulting then validation."""
from __future__ import annotations

import copy
from typing import Any, Callable

from kubeling.defaulting import _apply_defaults
from kubeling.errors import FieldError
from kubeling.resources import lookup
from kubeling.validation import INTERNAL_REASON, _validate

POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {
        "containers": [{
            "name": "app", "image": "busybox:1.36", "command": ["httpd", "-f"],
            "ports": [{"name": "http", "containerPort": 80}],
            "env": [{"name": "MODE", "value": "x"}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                          "limits": {"cpu": "1", "memory": "128Mi"}},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
            "livenessProbe": {"tcpSocket": {"port": 80}},
        }],
        "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
        "volumes": [{"name": "data", "emptyDir": {}}],
    },
}

SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"selector": {"app": "web"},
             "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                       {"name": "alt", "port": 8080, "targetPort": 8080}]},
}


def pod() -> dict:
    return copy.deepcopy(POD)


def service() -> dict:
    return copy.deepcopy(SERVICE)


def check(plural: str, obj: Any, old: Any = None, defaults: bool = True) -> list[FieldError]:
    """Default (as the apiserver does before validating) then validate, without the
    safety net, so a bug shows as an exception here."""
    resource = lookup(plural)
    assert resource is not None
    if defaults:
        _apply_defaults(resource, obj)
    errors = _validate(resource, obj, old)
    assert all(e.reason != INTERNAL_REASON for e in errors)
    return errors


def fields(errors: list[FieldError]) -> list[tuple[str, str]]:
    return [(e.field, e.reason) for e in errors]


def mutated(base: Callable[[], dict], mutate: Callable[[dict], Any]) -> dict:
    obj = base()
    mutate(obj)
    return obj
