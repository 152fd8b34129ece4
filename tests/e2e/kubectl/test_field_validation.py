"""Server-side field validation: kubectl 1.33 finds `fieldValidation` in the OpenAPI v3
document and leaves the check to the server; unknown fields never reach storage."""
from __future__ import annotations

import json

import pytest
import yaml
from conftest import Kubectl  # this folder's conftest (imported by name at collection, as in tests/e2e/cni)

pytestmark = pytest.mark.e2e

BAD = """apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  foo: 1
  containers: [{name: c, image: busybox, bar: 2}]
"""


def test_strict_by_default(kubectl133, kns, write):
    path = write("bad.yaml", BAD.replace("NAME", "strict"))
    for verb in ("create", "apply"):
        err = kubectl133(verb, "-n", kns, "-f", path, check=False)
        assert err.returncode == 1
        assert err.stderr.strip().endswith(
            'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
            'unknown field "spec.containers[0].bar", unknown field "spec.foo"'), err.stderr
        assert "Error from server (BadRequest)" in err.stderr
    assert "NotFound" in kubectl133("get", "pod", "strict", "-n", kns, check=False).stderr


def test_strict_on_patch(kubectl133, kns, write, pod_yaml):
    kubectl133("create", "-n", kns, "-f", write("p.yaml", pod_yaml("pp")))
    # kubectl patch does not ask for validation; the default (Warn) drops the field and says so.
    out = kubectl133("patch", "pod", "pp", "-n", kns, "-p", '{"spec":{"foo":1}}')
    assert 'Warning: unknown field "spec.foo"' in out.stderr
    # apply on an existing object sends a strategic merge patch with fieldValidation=Strict.
    doc = yaml.safe_load(pod_yaml("pp"))
    doc["spec"]["foo"] = 1
    err = kubectl133("apply", "-n", kns, "-f", write("p.yaml", yaml.safe_dump(doc)), check=False)
    assert err.returncode == 1
    assert 'Error from server (BadRequest)' in err.stderr
    assert 'strict decoding error: unknown field "spec.foo"' in err.stderr


def test_warn_and_ignore_drop_unknown_fields(kubectl133, kns, write):
    out = kubectl133("create", "-n", kns, "--validate=warn", "-f", write("w.yaml", BAD.replace("NAME", "warn")))
    assert out.stdout.strip() == "pod/warn created"
    assert 'Warning: unknown field "spec.containers[0].bar"' in out.stderr
    assert 'Warning: unknown field "spec.foo"' in out.stderr
    out = kubectl133("create", "-n", kns, "--validate=false", "-f", write("i.yaml", BAD.replace("NAME", "ign")))
    assert out.stdout.strip() == "pod/ign created" and "Warning" not in out.stderr
    for name in ("warn", "ign"):
        pod = json.loads(kubectl133("get", "pod", name, "-n", kns, "-o", "json").stdout)
        assert "foo" not in pod["spec"] and "bar" not in pod["spec"]["containers"][0]


def test_kubectl_127_without_validation(tls_apiserver, tmp_path, kns, write):
    """kubectl 1.27 validates client-side from OpenAPI v2 (protobuf), which is not served:
    it needs --validate=false, and the server still drops unknown fields."""
    home = tmp_path / "h127"
    home.mkdir()
    k = Kubectl("1.27", tls_apiserver, home)
    path = write("bad.yaml", BAD.replace("NAME", "old"))
    err = k("apply", "-n", kns, "-f", path, check=False)
    assert err.returncode == 1 and "the server could not find the requested resource" in err.stderr
    assert k("apply", "-n", kns, "--validate=false", "-f", path).stdout.strip() == "pod/old created"
    pod = json.loads(k("get", "pod", "old", "-n", kns, "-o", "json").stdout)
    assert "foo" not in pod["spec"]
