"""Property-based fuzz of every write endpoint the apiserver describes in its OpenAPI v3
documents: every POST, PUT and PATCH gets generated bodies (mostly well-shaped, with
wrong types, huge and odd strings, nulls and deep nesting mixed in at every level)
and a set of hand-picked nasty ones. The answer is never a 5xx, every error is a
Kubernetes Status, and the apiserver logs no traceback.

The apiserver here has an etcd of its own: the fuzz creates cluster-scoped objects
(Nodes, ClusterRoles, Namespaces ...) that must not show up in other tests' lists.
Examples are derandomized so that a CI failure reproduces locally."""
from __future__ import annotations

import http.client
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from controlplane.apiserver import openapi as served_openapi
from kubeling.resources import GROUPS
from kubeling.bounded_decode import MAX_DEPTH
from tests.bad_documents import billion_laughs, deep_json, deep_yaml
from tests.conftest import start_apiserver, stop_process

from tests.integration import openapi_strategies as gen

NAMESPACE = "fuzz"
TARGET = "fuzz-target"
WRITE_METHODS = ("post", "put", "patch")
MAX_EXAMPLES = 4


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # with {namespace} / {name} placeholders
    body_definition: str
    content_types: tuple[str, ...]
    api_version: str
    kind: str

    @property
    def key(self) -> str:
        return f"{self.method.upper()} {self.path}"


def _operations(documents: dict[str, dict[str, Any]]) -> dict[str, Operation]:
    ops: dict[str, Operation] = {}
    for doc in documents.values():
        for path, item in doc["paths"].items():
            for method in WRITE_METHODS:
                op = item.get(method)
                if op is None:
                    continue
                content = op["requestBody"]["content"]
                ref = next(iter(content.values()))["schema"]["$ref"][len(gen.REF_PREFIX):]
                gvk = op["x-kubernetes-group-version-kind"]
                api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
                o = Operation(method, path, ref, tuple(content), api_version, gvk["kind"])
                ops[o.key] = o
    return ops


def _local_documents() -> dict[str, dict[str, Any]]:
    return {f"{g}/{v}": json.loads(served_openapi.document_bytes(g, v)) for g, v in GROUPS.items()}


# The parameter list is known at collection time from the same code the server runs;
# test_served_operations_are_the_fuzzed_ones proves the server describes exactly these.
OPERATION_KEYS = sorted(_operations(_local_documents()))


class Http:
    """A keep-alive HTTP/1.1 connection that reconnects after the server closes it."""

    def __init__(self, url: str, token: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.headers = {"Authorization": f"Bearer {token}"}
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json") -> tuple[int, bytes]:
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, data
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class FuzzServer:
    http: Http
    log: Any
    schemas: dict[str, dict[str, Any]]  # per group-version document: its components.schemas
    ops: dict[str, Operation]
    log_offset: int = 0

    def new_log(self) -> str:
        text = self.log.read_text(errors="replace")
        new, self.log_offset = text[self.log_offset:], len(text)
        return new


@pytest.fixture(scope="module")
def fuzz_server(isolated_etcd, tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz-apiserver")
    proc, api = start_apiserver(isolated_etcd, base)
    client = Http(api.url, api.token)
    try:
        status, raw = client.request("GET", "/openapi/v3")
        assert status == 200, raw
        documents: dict[str, dict[str, Any]] = {}
        for gv, entry in json.loads(raw)["paths"].items():
            status, raw = client.request("GET", entry["serverRelativeURL"])
            assert status == 200, raw
            documents[gv] = json.loads(raw)
        ops = _operations(documents)
        schemas = {op.key: documents[_gv_of(op.path)]["components"]["schemas"] for op in ops.values()}
        server = FuzzServer(client, api.log, schemas, ops)
        _seed(server)
        yield server
    finally:
        client.close()
        stop_process(proc)
    assert "Traceback" not in api.log.read_text(errors="replace")


def _gv_of(path: str) -> str:
    parts = path.strip("/").split("/")
    return f"{parts[0]}/{parts[1]}" if parts[0] == "api" else "/".join(parts[:3])


def _seed(server: FuzzServer) -> None:
    """A namespace and, for every kind that takes a bare object, one object named TARGET,
    so PUT, PATCH and the subresources reach validation rather than stopping at 404."""
    ns = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}).encode()
    status, raw = server.http.request("POST", "/api/v1/namespaces", ns)
    assert status in (201, 409), raw
    for op in server.ops.values():
        if op.method == "post" and not op.path.endswith("}") and "{name}" not in op.path:
            body = {"apiVersion": op.api_version, "kind": op.kind, "metadata": {"name": TARGET}}
            server.http.request("POST", op.path.replace("{namespace}", NAMESPACE), json.dumps(body).encode())


def _url(op: Operation, namespace: str, name: str, query: str) -> str:
    path = op.path.replace("{namespace}", urllib.parse.quote(namespace, safe=""))
    path = path.replace("{name}", urllib.parse.quote(name, safe=""))
    return path + (f"?{query}" if query else "")


def _encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _check(server: FuzzServer, op: Operation, status: int, raw: bytes, sent: bytes) -> None:
    where = f"{op.key} with {sent[:300]!r}"
    log = server.new_log()  # first: a failed check must not leave its lines to the next one
    assert status < 500, f"{status} from {where}: {raw[:500]!r}"
    assert "Traceback" not in log, f"traceback after {where}:\n{log[-3000:]}"
    if status >= 400:
        doc = json.loads(raw)
        assert doc.get("kind") == "Status" and doc.get("code") == status, f"not a Status from {where}: {raw[:300]!r}"


QUERIES = gen.mostly(st.sampled_from(["", "fieldValidation=Strict", "fieldManager=fuzz"]), st.sampled_from([
    "fieldValidation=Strict", "fieldValidation=Warn", "fieldValidation=Ignore", "fieldValidation=Bogus",
    "dryRun=All", "dryRun=Nope", "fieldManager=fuzz", "fieldManager=" + "m" * 200, "force=true",
    "fieldManager=%00", "fieldValidation=Strict&dryRun=All"]), 4)
NAMESPACES = gen.mostly(st.just(NAMESPACE), st.sampled_from(["absent-ns", "UPPER", "", "..", "a" * 300, "日本"]))
TARGET_NAMES = gen.mostly(st.just(TARGET), gen.NAMES, 4)
PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json",
               "application/json-patch+json", "application/apply-patch+yaml")


@pytest.mark.parametrize("key", OPERATION_KEYS)
def test_generated_bodies_never_5xx(fuzz_server: FuzzServer, key: str) -> None:
    op = fuzz_server.ops[key]
    schemas = fuzz_server.schemas[key]
    definition = _object_definition(op, schemas)

    def bodies(name: str) -> st.SearchStrategy[tuple[str, Any]]:
        obj = gen.object_bodies(definition, schemas, op.api_version, op.kind, name)
        if op.method != "patch":
            return st.tuples(st.just("application/json"), obj)
        return st.sampled_from(PATCH_TYPES).flatmap(
            lambda ct: st.tuples(st.just(ct), gen.json_patches(schemas) if ct == "application/json-patch+json"
                                 else obj))

    @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=(Phase.explicit, Phase.generate, Phase.shrink),
              suppress_health_check=list(HealthCheck))
    @given(st.data(), NAMESPACES, TARGET_NAMES, QUERIES)
    def send(data: st.DataObject, namespace: str, name: str, query: str) -> None:
        # PUT names the object in the URL and the body alike: draw the name first.
        ctype, body = data.draw(bodies(name if op.method != "post" else data.draw(gen.NAMES)))
        if ctype == "application/apply-patch+yaml" and "fieldManager" not in query:
            query = "&".join(q for q in (query, "fieldManager=fuzz") if q)
        sent = _encode(body)
        status, raw = fuzz_server.http.request(op.method.upper(), _url(op, namespace, name, query), sent, ctype)
        _check(fuzz_server, op, status, raw, sent)

    send()


def _object_definition(op: Operation, schemas: dict[str, Any]) -> str:
    """The PATCH body is a free-form Patch: fuzz it with the kind's own object shape."""
    if op.body_definition.endswith(".Patch"):
        for name, node in schemas.items():
            for gvk in node.get("x-kubernetes-group-version-kind", []):
                gv = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
                if gv == op.api_version and gvk["kind"] == op.kind:
                    return name
    return op.body_definition


def _deep(levels: int) -> Any:
    node: Any = "leaf"
    for _ in range(levels):
        node = {"a": [node]}
    return node


# Raw bodies every write endpoint must refuse cleanly (a 4xx Status), or accept.
RAW_BODIES: list[tuple[str, bytes]] = [
    ("application/json", b"null"), ("application/json", b"[]"), ("application/json", b"1"),
    ("application/json", b'"a string"'), ("application/json", b"{"), ("application/json", b"{}"),
    ("application/json", b"\xff\xfe\x00garbage"), ("application/json", b'{"a": NaN}'),
    ("application/json", b'{"metadata": {"name": 1e400}}'), ("application/json", b'{"kind": {"$ne": 1}}'),
    ("application/json", b'{"metadata": {"name": "x", "name": "y"}}'),
    ("application/json", b'{"metadata": {"name": "\\ud800"}}'),
    ("application/yaml", b"a: [unclosed"), ("application/yaml", b"!!python/object:os.system {}"),
    ("application/yaml", b"- just\n- a list\n"), ("application/vnd.kubernetes.protobuf", b"k8s\x00\xff\xff"),
    ("application/vnd.kubernetes.protobuf", b"not protobuf at all"), ("text/html", b"<html/>"),
    ("application/yaml", billion_laughs()), ("application/yaml", b"&a [*a]"),
    ("application/yaml", b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fuzz-target, "
                         b"creationTimestamp: 2024-01-02}\ndata: !!set {a, b}\n"),
    ("application/yaml", deep_yaml(10_000)), ("application/json", deep_json(10_000)),
    ("application/json", deep_json(MAX_DEPTH - 3)),
]


def _typed_bodies(op: Operation) -> list[Any]:
    """Wrong types at every level of a common object shape, plus invalid names and size."""
    head = {"apiVersion": op.api_version, "kind": op.kind}
    out: list[Any] = [
        {**head, "metadata": None}, {**head, "metadata": 1}, {**head, "metadata": []},
        {**head, "metadata": {"name": None}}, {**head, "metadata": {"name": ["a"]}},
        {**head, "metadata": {"name": {"x": 1}}}, {**head, "metadata": {"name": ""}},
        {**head, "metadata": {"name": "a" * 300}}, {**head, "metadata": {"name": "Bad_Name/.."}},
        {**head, "metadata": {"name": "日本語"}}, {**head, "metadata": {"name": "\u0000"}},
        {**head, "metadata": {"name": TARGET, "labels": []}},
        {**head, "metadata": {"name": TARGET, "labels": {"k": 1}}},
        {**head, "metadata": {"name": TARGET, "labels": {"k" * 400: "v"}}},
        {**head, "metadata": {"name": TARGET, "annotations": {"a": "x" * 300_000}}},
        {**head, "metadata": {"name": TARGET, "annotations": None, "finalizers": "x"}},
        {**head, "metadata": {"name": TARGET, "ownerReferences": [1]}},
        {**head, "metadata": {"name": TARGET, "creationTimestamp": "yesterday"}},
        {**head, "metadata": {"name": TARGET, "generateName": 5}},
        {**head, "metadata": {"name": TARGET}, "spec": "x"}, {**head, "metadata": {"name": TARGET}, "spec": []},
        {**head, "metadata": {"name": TARGET}, "spec": {"containers": {}}},
        {**head, "metadata": {"name": TARGET}, "spec": {"containers": [5]}},
        {**head, "metadata": {"name": TARGET}, "spec": {"containers": [{"name": 1, "image": None}]}},
        {**head, "metadata": {"name": TARGET}, "spec": {"replicas": "three", "selector": []}},
        {**head, "metadata": {"name": TARGET}, "spec": {"ports": [{"port": "x"}], "selector": 1}},
        {**head, "metadata": {"name": TARGET}, "data": [], "rules": "x", "subsets": {}},
        {**head, "metadata": {"name": TARGET}, "status": 7},
        {**head, "metadata": {"name": TARGET}, "spec": _deep(300)},
        {**head, "metadata": {"name": TARGET, "labels": {"a": "b"}}, "x" * 1000: "unknown"},
        {"apiVersion": 1, "kind": None, "metadata": {"name": TARGET}},
        {"apiVersion": "v9", "kind": "Nope", "metadata": {"name": TARGET}},
    ]
    return out


@pytest.mark.parametrize("key", OPERATION_KEYS)
def test_nasty_bodies_never_5xx(fuzz_server: FuzzServer, key: str) -> None:
    op = fuzz_server.ops[key]
    cases = [(ct, data) for ct, data in RAW_BODIES]
    ctype = "application/merge-patch+json" if op.method == "patch" else "application/json"
    cases += [(ctype, _encode(b)) for b in _typed_bodies(op)]
    if op.method == "patch":
        cases += [("application/json-patch+json", _encode(p)) for p in (
            [{"op": "add", "path": "/metadata/labels", "value": None}], [{"op": "remove", "path": "/"}],
            [{"op": "move", "from": "/metadata", "path": "/metadata/x"}], [{"op": "test"}], [1], {"op": "add"},
            [{"op": "replace", "path": "/metadata/name", "value": {"deep": _deep(200)}}],
            [{"op": "add", "path": "/metadata/labels/a", "value": "\ud800"}])]
        cases += [("application/apply-patch+yaml", b"apiVersion: v1\nkind: [x\n"), ("application/bogus", b"{}")]
        for patch_type in PATCH_TYPES:
            cases += [(patch_type, b'{"metadata": {"annotations": {"a": "\\ud800"}}}'),
                      (patch_type, deep_json(10_000)), (patch_type, deep_json(MAX_DEPTH - 3)),
                      (patch_type, b"[" * 10_000 + b"]" * 10_000)]
        cases += [("application/apply-patch+yaml", billion_laughs(levels=6)), ("application/apply-patch+yaml", b"&a [*a]"),
                  ("application/apply-patch+yaml", deep_yaml(10_000))]
    for ctype, data in cases:
        query = "fieldManager=fuzz" if ctype == "application/apply-patch+yaml" else ""
        status, raw = fuzz_server.http.request(op.method.upper(), _url(op, NAMESPACE, TARGET, query), data, ctype)
        _check(fuzz_server, op, status, raw, data)


def test_served_operations_are_the_fuzzed_ones(fuzz_server: FuzzServer) -> None:
    assert sorted(fuzz_server.ops) == OPERATION_KEYS
    assert len(OPERATION_KEYS) > 50  # every resource's create, replace and patch at least
