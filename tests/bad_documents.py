"""Hostile manifests and request bodies shared by the API and CLI bad-input tests."""
from __future__ import annotations

import json


def billion_laughs(levels: int = 9, fan_out: int = 9) -> bytes:
    """The classic YAML alias bomb: a few hundred bytes that expand to fan_out**levels
    strings, as an object with apiVersion/kind so that it passes the first checks."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: lol}",
             'a0: &a0 ["lol"' + ', "lol"' * (fan_out - 1) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan_out) + "]")
    lines.append(f"data: {{bomb: *a{levels}}}")
    return ("\n".join(lines) + "\n").encode()


def deep_json(levels: int, name: str = "deep") -> bytes:
    """A ConfigMap whose `data` nests `levels` JSON objects."""
    head = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})[:-1]
    return (head + ', "data": ' + '{"a": ' * levels + "1" + "}" * levels + "}").encode()


def deep_yaml(levels: int, name: str = "deep") -> bytes:
    """The same in YAML flow style (block style needs levels**2 bytes of indentation)."""
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: "
            + "{a: " * levels + "1" + "}" * levels + "\n").encode()
