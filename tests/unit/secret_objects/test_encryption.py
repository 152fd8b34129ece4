"""Encryption at rest: the EncryptionConfiguration, the providers' wire format, rotation."""
import base64
import json
import os

import pytest

from controlplane.apiserver import encryption


def _config(*providers: dict) -> str:
    return json.dumps({"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
                       "resources": [{"resources": ["secrets"], "providers": list(providers)}]})


def _aescbc(name: str, key: bytes) -> dict:
    return {"aescbc": {"keys": [{"name": name, "secret": base64.b64encode(key).decode()}]}}


def _secretbox(name: str, key: bytes) -> dict:
    return {"secretbox": {"keys": [{"name": name, "secret": base64.b64encode(key).decode()}]}}


SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"p": "aHVudGVyMg=="}}
PLAIN = json.dumps(SECRET).encode()


def test_aescbc_round_trip_and_prefix():
    t = encryption.parse(_config(_aescbc("key1", os.urandom(32))))
    stored = t.to_storage(SECRET, PLAIN)
    assert stored.startswith(b"k8s:enc:aescbc:v1:key1:")
    assert b"aHVudGVyMg" not in stored and b"Secret" not in stored
    body = stored[len(b"k8s:enc:aescbc:v1:key1:"):]
    assert len(body) % 16 == 0 and len(body) >= 32  # IV + whole blocks
    assert t.from_storage(stored) == PLAIN
    # A fresh IV each time: the same object never encrypts to the same bytes.
    assert t.to_storage(SECRET, PLAIN) != stored


def test_secretbox_round_trip():
    t = encryption.parse(_config(_secretbox("box", os.urandom(32))))
    stored = t.to_storage(SECRET, PLAIN)
    assert stored.startswith(b"k8s:enc:secretbox:v1:box:")
    assert t.from_storage(stored) == PLAIN


def test_only_listed_resources_are_encrypted():
    t = encryption.parse(_config(_aescbc("key1", os.urandom(32))))
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    assert t.to_storage(cm, b"{}") == b"{}"


def test_rotation_new_key_first_still_reads_old_values():
    old_key, new_key = os.urandom(32), os.urandom(32)
    before = encryption.parse(_config(_aescbc("old", old_key)))
    stored_old = before.to_storage(SECRET, PLAIN)
    after = encryption.parse(_config({"aescbc": {"keys": [
        {"name": "new", "secret": base64.b64encode(new_key).decode()},
        {"name": "old", "secret": base64.b64encode(old_key).decode()}]}}))
    assert after.from_storage(stored_old) == PLAIN
    assert after.to_storage(SECRET, PLAIN).startswith(b"k8s:enc:aescbc:v1:new:")
    # Without the old key the old value cannot be read.
    only_new = encryption.parse(_config(_aescbc("new", new_key)))
    with pytest.raises(Exception):
        only_new.from_storage(stored_old)


def test_identity_first_writes_plaintext_but_reads_encrypted():
    key = os.urandom(32)
    stored = encryption.parse(_config(_aescbc("k", key))).to_storage(SECRET, PLAIN)
    t = encryption.parse(_config({"identity": {}}, _aescbc("k", key)))
    assert t.to_storage(SECRET, PLAIN) == PLAIN
    assert t.from_storage(stored) == PLAIN


@pytest.mark.parametrize("doc,fragment", [
    (_config(_aescbc("k", os.urandom(7))), "must be 16 or 24 or 32 bytes"),
    (_config({"aescbc": {"keys": []}}), "at least one key"),
    (_config({"rot13": {}}), "Unsupported value"),
    ('{"kind": "Other"}', "EncryptionConfiguration"),
])
def test_bad_configs_are_refused(doc, fragment):
    with pytest.raises(encryption.ConfigError, match=fragment):
        encryption.parse(doc)


def test_write_config_is_private_and_kept(tmp_path):
    path = tmp_path / "enc.yaml"
    encryption.write_config(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    first = path.read_text()
    t = encryption.load(str(path))
    assert t.to_storage(SECRET, PLAIN).startswith(b"k8s:enc:aescbc:v1:key1:")
    encryption.write_config(path)  # never replaced: the stored secrets need that key
    assert path.read_text() == first
