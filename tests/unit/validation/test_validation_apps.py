"""Defaulting and validation of Deployments, ReplicaSets and ReplicationControllers."""
from __future__ import annotations

import copy

from kubeling.defaulting import apply_defaults
from kubeling.resources import lookup
from kubeling.validation import validate

DEPLOY, RS, RC = lookup("deployments"), lookup("replicasets"), lookup("replicationcontrollers")


def _deployment(**spec) -> dict:
    base = {"metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    base["spec"].update(spec)
    return base


def _errors(res, obj, old=None) -> list[str]:
    obj = copy.deepcopy(obj)
    apply_defaults(res, obj)
    return [e.message() for e in validate(res, obj, old)]


def test_deployment_defaults():
    d = _deployment()
    apply_defaults(DEPLOY, d)
    spec = d["spec"]
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10 and spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Always" and pod["dnsPolicy"] == "ClusterFirst"
    assert pod["containers"][0]["imagePullPolicy"] == "Always"
    assert "tolerations" not in pod and "priority" not in pod  # pod admission, not template defaults
    recreate = _deployment(strategy={"type": "Recreate"})
    apply_defaults(DEPLOY, recreate)
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}


def test_deployment_validation_field_paths():
    assert _errors(DEPLOY, _deployment()) == []
    assert _errors(DEPLOY, _deployment(replicas=-1)) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"]
    mismatch = _deployment()
    mismatch["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    assert _errors(DEPLOY, mismatch) == [
        'spec.template.metadata.labels: Invalid value: {"app":"other"}: `selector` does not match template `labels`']
    nosel = _deployment()
    del nosel["spec"]["selector"]
    assert _errors(DEPLOY, nosel) == ["spec.selector: Required value"]
    assert _errors(DEPLOY, _deployment(selector={})) == ["spec.selector: Invalid value: {}: empty selector is "
                                                         "invalid for deployment"]
    zero = _deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}})
    assert _errors(DEPLOY, zero) == ['spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": '
                                     'may not be 0 when `maxSurge` is 0']
    bad_pct = _deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "x", "maxUnavailable": "101%"}})
    msgs = _errors(DEPLOY, bad_pct)
    assert any(m.startswith('spec.strategy.rollingUpdate.maxSurge: Invalid value: "x": a valid percent') for m in msgs)
    assert 'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "101%": must not be greater than 100%' in msgs
    recreate = _deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})
    assert _errors(DEPLOY, recreate) == ["spec.strategy.rollingUpdate: Forbidden: may not be specified when "
                                         "strategy `type` is 'Recreate'"]
    never = _deployment()
    never["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert _errors(DEPLOY, never) == ['spec.template.spec.restartPolicy: Unsupported value: "Never": '
                                      'supported values: "Always"']
    no_image = _deployment()
    del no_image["spec"]["template"]["spec"]["containers"][0]["image"]
    assert _errors(DEPLOY, no_image) == ["spec.template.spec.containers[0].image: Required value"]


def test_selector_is_immutable_on_apps_but_not_on_rc():
    old = _deployment()
    apply_defaults(DEPLOY, old)
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "x": "y"}}
    new["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    assert any(m.startswith("spec.selector: Invalid value") and m.endswith("field is immutable")
               for m in _errors(DEPLOY, new, old))
    rc = {"metadata": {"name": "r", "namespace": "default"},
          "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    apply_defaults(RC, rc)
    assert rc["spec"]["selector"] == {"a": "b"} and rc["metadata"]["labels"] == {"a": "b"} and rc["spec"]["replicas"] == 1
    changed = copy.deepcopy(rc)
    changed["spec"]["selector"] = {"a": "b"}
    assert _errors(RC, changed, rc) == []


def test_replicaset_needs_matching_template():
    rs = _deployment()
    rs["spec"]["template"]["metadata"]["labels"] = {}
    assert _errors(RS, rs) == ['spec.template.metadata.labels: Invalid value: {}: `selector` does not match '
                               'template `labels`']
