"""ServiceAccount tokens (sign, verify, bound-object checks) and ServiceAccount admission."""
import asyncio
import base64
import json

import pytest

from controlplane.apiserver import serviceaccount_admission, tokens
from kubeling import errors
from kubeling.resources import lookup


class FakeRegistry:
    def __init__(self, objects):
        self.objects = objects  # (plural, ns, name) -> obj

    async def get(self, res, ns, name):
        obj = self.objects.get((res.plural, ns, name))
        if obj is None:
            raise errors.not_found(res.plural, name)
        return obj


def _obj(name, uid, **extra):
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid}, **extra}


@pytest.fixture
def config(tmp_path):
    key = tmp_path / "sa.key"
    tokens.generate_key(key)
    assert (key.stat().st_mode & 0o777) == 0o600
    return tokens.ServiceAccountTokens.from_files(str(key), [], None)


def _issue(config, registry, **spec):
    return asyncio.run(config.request(registry, "ns", "sa", {"spec": spec}))


def test_token_request_and_authentication(config):
    reg = FakeRegistry({("serviceaccounts", "ns", "sa"): _obj("sa", "sa-uid"),
                        ("pods", "ns", "p"): _obj("p", "pod-uid", spec={"nodeName": "n1"})})
    answer = _issue(config, reg, boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "pod-uid"},
                    expirationSeconds=3607)
    assert answer["kind"] == "TokenRequest" and answer["spec"]["expirationSeconds"] == 3607
    token = answer["status"]["token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "ES256" and header["kid"]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == "system:serviceaccount:ns:sa"
    assert claims["kubernetes.io"]["pod"] == {"name": "p", "uid": "pod-uid"}
    assert claims["kubernetes.io"]["node"] == {"name": "n1"}
    user = asyncio.run(config.authenticate(token, reg))
    assert user.name == "system:serviceaccount:ns:sa" and user.uid == "sa-uid"
    assert set(user.groups) == {"system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"}
    # Bound: once the pod is gone (or recreated with another uid) the token is refused.
    del reg.objects[("pods", "ns", "p")]
    assert asyncio.run(config.authenticate(token, reg)) is None
    reg.objects[("pods", "ns", "p")] = _obj("p", "other-uid")
    assert asyncio.run(config.authenticate(token, reg)) is None


def test_token_refused_after_sa_deleted_or_tampered(config, tmp_path):
    reg = FakeRegistry({("serviceaccounts", "ns", "sa"): _obj("sa", "sa-uid")})
    token = _issue(config, reg)["status"]["token"]
    assert asyncio.run(config.authenticate(token, reg)) is not None
    h, c, s = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(c + "=="))
    forged["sub"] = "system:serviceaccount:ns:admin"
    c2 = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    assert asyncio.run(config.authenticate(f"{h}.{c2}.{s}", reg)) is None
    other_key = tmp_path / "other.key"
    tokens.generate_key(other_key)
    stranger = tokens.ServiceAccountTokens.from_files(str(other_key), [], None)
    assert asyncio.run(stranger.authenticate(token, reg)) is None
    reg.objects.clear()
    assert asyncio.run(config.authenticate(token, reg)) is None


@pytest.mark.parametrize("spec,field", [
    ({"expirationSeconds": 599}, "spec.expirationSeconds"),
    ({"boundObjectRef": {"kind": "Node", "name": "n"}}, "spec.boundObjectRef.kind"),
])
def test_token_request_validation(config, spec, field):
    reg = FakeRegistry({("serviceaccounts", "ns", "sa"): _obj("sa", "u")})
    with pytest.raises(errors.ApiError) as exc:
        _issue(config, reg, **spec)
    assert exc.value.code == 422
    assert [c["field"] for c in exc.value.status()["details"]["causes"]] == [field]


def test_token_request_uid_mismatch_conflicts(config):
    reg = FakeRegistry({("serviceaccounts", "ns", "sa"): _obj("sa", "u"), ("pods", "ns", "p"): _obj("p", "pu")})
    with pytest.raises(errors.ApiError) as exc:
        _issue(config, reg, boundObjectRef={"kind": "Pod", "name": "p", "uid": "nope"})
    assert exc.value.code == 409


PODS = lookup("pods")


def _pod(**spec):
    return {"metadata": {"name": "web", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def test_admission_defaults_sa_and_adds_token_volume():
    reg = FakeRegistry({("serviceaccounts", "ns", "default"): _obj("default", "u")})
    pod = _pod()
    asyncio.run(serviceaccount_admission.admit(reg, PODS, pod))
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "default"
    (vol,) = spec["volumes"]
    assert vol["name"].startswith("kube-api-access-") and len(vol["name"]) == len("kube-api-access-") + 5
    sources = vol["projected"]["sources"]
    assert sources[0]["serviceAccountToken"] == {"expirationSeconds": 3607, "path": "token"}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": vol["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]


def test_admission_respects_automount_false():
    reg = FakeRegistry({("serviceaccounts", "ns", "robot"): _obj("robot", "u", automountServiceAccountToken=False)})
    pod = _pod(serviceAccountName="robot")
    asyncio.run(serviceaccount_admission.admit(reg, PODS, pod))
    assert "volumes" not in pod["spec"] or pod["spec"]["volumes"] == []
    reg.objects[("serviceaccounts", "ns", "robot")] = _obj("robot", "u")
    pod = _pod(serviceAccountName="robot", automountServiceAccountToken=False)
    asyncio.run(serviceaccount_admission.admit(reg, PODS, pod))
    assert not pod["spec"].get("volumes")


def test_admission_missing_sa_is_forbidden():
    pod = _pod(serviceAccountName="ghost")
    with pytest.raises(errors.ApiError) as exc:
        asyncio.run(serviceaccount_admission.admit(FakeRegistry({}), PODS, pod))
    assert exc.value.code == 403
    assert exc.value.message == ('pods "web" is forbidden: error looking up service account ns/ghost: '
                                 'serviceaccount "ghost" not found')
