"""Secrets: type-specific required keys, stringData, immutability (ValidateSecret)."""
import base64

import pytest

from controlplane.apiserver.secrets import merge_string_data
from kubeling import errors
from kubeling.resources import lookup
from kubeling.validation import validate

SECRETS = lookup("secrets")


def _secret(typ=None, data=None, **extra):
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"},
           "data": {k: base64.b64encode(v.encode()).decode() for k, v in (data or {}).items()}, **extra}
    if typ:
        obj["type"] = typ
    return obj


def _fields(errs):
    return sorted(e.field for e in errs)


@pytest.mark.parametrize("typ,data,fields", [
    ("Opaque", {}, []),
    ("kubernetes.io/tls", {}, ["data[tls.crt]", "data[tls.key]"]),
    ("kubernetes.io/tls", {"tls.crt": "c", "tls.key": "k"}, []),
    ("kubernetes.io/basic-auth", {}, ["data[password]", "data[username]"]),
    ("kubernetes.io/basic-auth", {"username": ""}, []),
    ("kubernetes.io/ssh-auth", {}, ["data[ssh-privatekey]"]),
    ("kubernetes.io/dockercfg", {}, ["data[.dockercfg]"]),
    ("kubernetes.io/dockercfg", {".dockercfg": "not json"}, ["data[.dockercfg]"]),
    ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": '{"auths": {}}'}, []),
    ("kubernetes.io/dockerconfigjson", {}, ["data[.dockerconfigjson]"]),
    ("kubernetes.io/service-account-token", {}, ["metadata.annotations[kubernetes.io/service-account.name]"]),
    ("bootstrap.kubernetes.io/token", {"token-id": "abcdef"}, []),
])
def test_type_rules(typ, data, fields):
    assert _fields(validate(SECRETS, _secret(typ, data))) == fields


def test_bad_key_and_size():
    errs = validate(SECRETS, _secret(data={"bad/key": "x"}))
    assert _fields(errs) == ["data[bad/key]"]
    big = _secret(data={"a": "x" * (1024 * 1024 + 1)})
    assert "data" in _fields(validate(SECRETS, big))


def test_string_data_merges_and_is_not_kept():
    obj = _secret(data={"a": "from-data", "b": "kept"}, stringData={"a": "from-string", "c": "new"})
    merge_string_data(obj)
    assert "stringData" not in obj
    decoded = {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}
    assert decoded == {"a": "from-string", "b": "kept", "c": "new"}
    assert obj["type"] == "Opaque"


def test_data_not_base64_is_a_bad_request():
    obj = _secret()
    obj["data"] = {"a": "%%%"}
    with pytest.raises(errors.ApiError) as exc:
        merge_string_data(obj)
    assert exc.value.code == 400


def test_immutable_and_type_updates():
    old = _secret("Opaque", {"a": "1"}, immutable=True)
    old["metadata"].update(uid="u", creationTimestamp="2024-01-01T00:00:00Z")
    new = _secret("Opaque", {"a": "2"}, immutable=True)
    new["metadata"].update(uid="u", creationTimestamp="2024-01-01T00:00:00Z")
    assert _fields(validate(SECRETS, new, old)) == ["data"]
    new2 = _secret("kubernetes.io/basic-auth", {"a": "1", "username": "u"})
    new2["metadata"].update(uid="u", creationTimestamp="2024-01-01T00:00:00Z")
    old2 = _secret("Opaque", {"a": "1"})
    old2["metadata"].update(uid="u", creationTimestamp="2024-01-01T00:00:00Z")
    assert _fields(validate(SECRETS, new2, old2)) == ["type"]
