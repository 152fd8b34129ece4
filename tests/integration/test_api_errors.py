"""Bad input gets a Kubernetes Status with reason and field path; never a 5xx;
nothing invalid reaches etcd."""
from __future__ import annotations

import json
import random

import aiohttp
import pytest

from kubeling.resources import RESOURCES


@pytest.fixture
async def http(apiserver):
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {apiserver.token}"}) as s:
        yield s


async def _send(http, apiserver, method, path, body=None, ctype="application/json"):
    data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
    async with http.request(method, apiserver.url + path, data=data,
                            headers={"Content-Type": ctype} if data is not None else {}) as r:
        raw = await r.read()
        return r.status, raw


INVALID_PODS = [
    ({"metadata": {"name": "Bad_Name"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
     "metadata.name"),
    ({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}, "spec.containers[0].image"),
    ({"metadata": {"name": "p"}, "spec": {"containers": []}}, "spec.containers"),
    ({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i",
                                                          "ports": [{"containerPort": 70000}]}]}},
     "spec.containers[0].ports[0].containerPort"),
    ({"metadata": {"name": "p"}, "spec": {"restartPolicy": "Sometimes",
                                         "containers": [{"name": "c", "image": "i"}]}}, "spec.restartPolicy"),
    ({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"},
                                                         {"name": "c", "image": "j"}]}},
     "spec.containers[1].name"),
    ({"metadata": {"name": "p"}, "spec": {"terminationGracePeriodSeconds": -1,
                                         "containers": [{"name": "c", "image": "i"}]}},
     "spec.terminationGracePeriodSeconds"),
]


@pytest.mark.parametrize("body,field", INVALID_PODS)
async def test_invalid_pod_is_422_with_field_path_and_not_stored(http, apiserver, namespace, body, field):
    status, raw = await _send(http, apiserver, "POST", f"/api/v1/namespaces/{namespace}/pods",
                              {"apiVersion": "v1", "kind": "Pod", **body})
    assert status == 422, raw
    st = json.loads(raw)
    assert st["kind"] == "Status" and st["status"] == "Failure" and st["reason"] == "Invalid"
    assert st["details"]["kind"] == "Pod"
    assert field in [c["field"] for c in st["details"]["causes"]]
    assert st["message"].startswith(f'Pod "{body["metadata"]["name"]}" is invalid: ')
    assert apiserver.etcd.get_json(f"/registry/pods/{namespace}/{body['metadata']['name']}") is None


async def test_missing_image_message_reads_like_kubernetes(http, apiserver, namespace):
    status, raw = await _send(http, apiserver, "POST", f"/api/v1/namespaces/{namespace}/pods",
                              {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "noimg"},
                               "spec": {"containers": [{"name": "c"}]}})
    assert status == 422
    assert json.loads(raw)["message"] == 'Pod "noimg" is invalid: spec.containers[0].image: Required value'


INVALID_SERVICES = [
    ({"ports": [{"port": 0}]}, "spec.ports[0].port"),
    ({"type": "Weird", "ports": [{"port": 80}]}, "spec.type"),
    ({"ports": [{"port": 80}, {"port": 81}]}, "spec.ports[0].name"),
    ({"sessionAffinity": "Sticky", "ports": [{"port": 80}]}, "spec.sessionAffinity"),
    ({"ports": [{"port": 80, "nodePort": 30080}]}, "spec.ports[0].nodePort"),
]


@pytest.mark.parametrize("spec,field", INVALID_SERVICES)
async def test_invalid_service_is_422_with_field_path(http, apiserver, namespace, spec, field):
    status, raw = await _send(http, apiserver, "POST", f"/api/v1/namespaces/{namespace}/services",
                              {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": spec})
    assert status == 422, raw
    assert field in [c["field"] for c in json.loads(raw)["details"]["causes"]]
    assert apiserver.etcd.get_json(f"/registry/services/{namespace}/svc") is None


async def test_update_may_not_change_pod_spec_fields(http, apiserver, namespace, client):
    from kubeling.resources import lookup
    pods = lookup("pods")
    await client.create(pods, {"metadata": {"name": "imm"},
                               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, namespace)
    status, raw = await _send(http, apiserver, "PATCH", f"/api/v1/namespaces/{namespace}/pods/imm",
                              {"spec": {"restartPolicy": "Never"}}, "application/merge-patch+json")
    assert status == 422 and json.loads(raw)["reason"] == "Invalid"
    # The image may change.
    status, raw = await _send(http, apiserver, "PATCH", f"/api/v1/namespaces/{namespace}/pods/imm",
                              {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}},
                              "application/strategic-merge-patch+json")
    assert status == 200, raw


async def test_bad_bodies_are_400(http, apiserver, namespace):
    path = f"/api/v1/namespaces/{namespace}/pods"
    for body, ctype in [(b"{not json", "application/json"), (b"[1,2", "application/json"),
                        (b"key: [unclosed", "application/yaml"), (b"", "application/json")]:
        status, raw = await _send(http, apiserver, "POST", path, body, ctype)
        assert status == 400, (body, raw)
        assert json.loads(raw)["reason"] == "BadRequest"
    # A protobuf body without the k8s envelope is a bad body, not an unsupported type.
    status, raw = await _send(http, apiserver, "POST", path, b"x", "application/vnd.kubernetes.protobuf")
    assert status == 400 and json.loads(raw)["reason"] == "BadRequest", raw
    status, raw = await _send(http, apiserver, "PATCH", path + "/x", b"{}", "text/html")
    assert status == 415 and json.loads(raw)["reason"] == "UnsupportedMediaType"


async def test_table_with_unknown_include_object_is_400(http, apiserver, namespace):
    async with http.get(f"{apiserver.url}/api/v1/namespaces/{namespace}/pods",
                        params={"includeObject": "Everything"},
                        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}) as r:
        assert r.status == 400 and (await r.json())["reason"] == "BadRequest"
    async with http.get(f"{apiserver.url}/api/v1/namespaces/{namespace}/pods", params={"includeObject": "None"},
                        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}) as r:
        body = await r.json()
        assert r.status == 200 and body["kind"] == "Table"


async def test_namespace_mismatch_and_unknown_paths(http, apiserver, namespace):
    status, raw = await _send(http, apiserver, "POST", f"/api/v1/namespaces/{namespace}/configmaps",
                              {"metadata": {"name": "x", "namespace": "other"}})
    assert status == 400 and "does not match the namespace" in json.loads(raw)["message"]
    status, raw = await _send(http, apiserver, "GET", "/api/v1/namespaces/default/widgets")
    assert status == 404 and json.loads(raw)["kind"] == "Status"
    status, raw = await _send(http, apiserver, "POST", "/api/v1/namespaces/default/pods",
                              {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}})
    assert status == 400


def _mutations(rng: random.Random):
    junk = [None, 1, -5, 3.5, True, "", "x" * 300, [], [1, "a"], {}, {"a": {"b": []}}, "../etc",
            "UPPER", 2 ** 70]
    base_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fz", "labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}],
                                         "env": [{"name": "A", "value": "1"}],
                                         "resources": {"limits": {"cpu": "1"}}}],
                         "volumes": [{"name": "v", "emptyDir": {}}]}}
    paths = [("metadata",), ("metadata", "name"), ("metadata", "labels"), ("spec",), ("spec", "containers"),
             ("spec", "containers", 0), ("spec", "containers", 0, "ports"),
             ("spec", "containers", 0, "ports", 0, "containerPort"), ("spec", "containers", 0, "env"),
             ("spec", "containers", 0, "resources", "limits", "cpu"), ("spec", "volumes", 0),
             ("spec", "restartPolicy"), ("spec", "nodeSelector"), ("spec", "tolerations"), ("kind",),
             ("apiVersion",), ("status",), ("spec", "containers", 0, "livenessProbe")]
    for _ in range(150):
        doc = json.loads(json.dumps(base_pod))
        path = rng.choice(paths)
        cur = doc
        for p in path[:-1]:
            cur = cur[p]
        cur[path[-1]] = rng.choice(junk)
        yield doc


async def test_fuzzed_bodies_never_get_5xx(http, apiserver, namespace):
    rng = random.Random(7)
    targets = []
    for res in RESOURCES:
        base = f"/apis/{res.group}/{res.version}" if res.group else "/api/v1"
        coll = f"{base}/namespaces/{namespace}/{res.plural}" if res.namespaced else f"{base}/{res.plural}"
        targets.append(coll)
    raw_junk = [b"null", b"[]", b"42", b'"str"', b"{", b"\xff\xfe", b'{"metadata": []}',
                b'{"metadata": {"name": 5}}', b'{"metadata": {"name": "ok"}, "spec": "x"}',
                b'{"kind": 1}', b"---\n- a\n", b'{"metadata": {"name": "a", "labels": [1]}}']
    for path in targets:
        for body in raw_junk:
            for method, ctype in (("POST", "application/json"), ("POST", "application/yaml")):
                status, raw = await _send(http, apiserver, method, path, body, ctype)
                assert status < 500, (path, body, raw)
            for method, ctype in (("PUT", "application/json"), ("PATCH", "application/merge-patch+json"),
                                  ("PATCH", "application/json-patch+json"),
                                  ("PATCH", "application/strategic-merge-patch+json"),
                                  ("PATCH", "application/apply-patch+yaml")):
                status, raw = await _send(http, apiserver, method, path + "/ok", body, ctype)
                assert status < 500, (method, path, body, raw)
    for doc in _mutations(rng):
        status, raw = await _send(http, apiserver, "POST", f"/api/v1/namespaces/{namespace}/pods", doc)
        assert status < 500, (doc, raw)
        if status == 201:
            await _send(http, apiserver, "DELETE", f"/api/v1/namespaces/{namespace}/pods/fz")
    for q in ("labelSelector=a%20in%20(", "fieldSelector=x", "watch=true&resourceVersion=abc",
              "timeoutSeconds=z&watch=1"):
        status, raw = await _send(http, apiserver, "GET", f"/api/v1/namespaces/{namespace}/pods?{q}")
        assert 400 <= status < 500, (q, raw)
