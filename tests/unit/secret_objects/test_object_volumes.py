"""The agent's AtomicWriter and the payloads of configMap/secret/downwardAPI/projected
volumes, and Secrets in env/envFrom."""
import asyncio
import base64
import os

import pytest

from agent import atomic_writer
from agent.atomic_writer import FileProjection
from agent.envvars import ConfigError, container_env
from agent.projected import ObjectVolumes, VolumeSetupError, volume_dir


def test_atomic_writer_swaps_and_prunes(tmp_path):
    target = tmp_path / "vol"
    assert atomic_writer.write(target, {"a": FileProjection(b"1", 0o644), "d/b": FileProjection(b"2", 0o400)})
    first = os.readlink(target / "..data")
    assert (target / "a").read_bytes() == b"1" and (target / "d" / "b").read_bytes() == b"2"
    assert os.readlink(target / "a") == "..data/a"
    assert ((target / "d" / "b").stat().st_mode & 0o777) == 0o400
    assert not atomic_writer.write(target, {"a": FileProjection(b"1", 0o644), "d/b": FileProjection(b"2", 0o400)})
    assert atomic_writer.write(target, {"a": FileProjection(b"changed", 0o644)})
    assert os.readlink(target / "..data") != first
    assert (target / "a").read_bytes() == b"changed"
    assert not (target / "d").exists() and not (target / first).exists()
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith("..")) == ["a"]


@pytest.mark.parametrize("bad", ["../x", "/abs", "a/../../b", "..hidden"])
def test_atomic_writer_refuses_escaping_paths(tmp_path, bad):
    with pytest.raises(atomic_writer.PayloadError):
        atomic_writer.write(tmp_path / "v", {bad: FileProjection(b"", 0o644)})


def _b64(s):
    return base64.b64encode(s.encode()).decode()


OBJECTS = {
    ("ns", "cm"): {"data": {"k1": "v1", "k2": "v2"}},
    ("ns", "sec"): {"data": {"user": _b64("admin"), "pass": _b64("s3cret")}},
}


async def _cm(ns, name):
    return OBJECTS.get((ns, name)) if name == "cm" else None


async def _secret(ns, name):
    return OBJECTS.get((ns, name)) if name == "sec" else None


def _pod(volumes):
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "uid-1"},
            "spec": {"containers": [{"name": "c"}], "volumes": volumes, "serviceAccountName": "default"}}


def test_volumes_written_with_items_modes_and_tokens(tmp_path):
    issued = []

    async def request_token(ns, sa, body):
        issued.append((ns, sa, body))
        return {"spec": {"expirationSeconds": body["spec"]["expirationSeconds"]}, "status": {"token": "tok"}}

    ov = ObjectVolumes(str(tmp_path), _cm, _secret, request_token, "node1")
    pod = _pod([
        {"name": "c", "configMap": {"name": "cm", "items": [{"key": "k1", "path": "sub/one", "mode": 0o600}]}},
        {"name": "s", "secret": {"secretName": "sec", "defaultMode": 0o400}},
        {"name": "p", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {"configMap": {"name": "cm", "items": [{"key": "k2", "path": "k2"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
        {"name": "empty", "emptyDir": {}},
    ])
    asyncio.run(ov.sync(pod))
    c = volume_dir(str(tmp_path), "uid-1", "configMap", "c")
    assert (c / "sub" / "one").read_text() == "v1" and not (c / "k2").exists()
    assert ((c / "sub" / "one").stat().st_mode & 0o777) == 0o600
    s = volume_dir(str(tmp_path), "uid-1", "secret", "s")
    assert (s / "pass").read_text() == "s3cret" and ((s / "pass").stat().st_mode & 0o777) == 0o400
    p = volume_dir(str(tmp_path), "uid-1", "projected", "p")
    assert (p / "token").read_text() == "tok" and (p / "namespace").read_text() == "ns"
    assert (p / "k2").read_text() == "v2"
    assert issued[0][2]["spec"]["boundObjectRef"] == {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "uid-1"}
    # A change reaches the files in place; the token is reused while fresh.
    OBJECTS[("ns", "cm")] = {"data": {"k1": "v1-new", "k2": "v2"}}
    try:
        asyncio.run(ov.sync(pod))
    finally:
        OBJECTS[("ns", "cm")] = {"data": {"k1": "v1", "k2": "v2"}}
    assert (c / "sub" / "one").read_text() == "v1-new"
    assert len(issued) == 1


def test_missing_objects_fail_unless_optional(tmp_path):
    ov = ObjectVolumes(str(tmp_path), _cm, _secret, None)
    with pytest.raises(VolumeSetupError, match='secret "nope" not found'):
        asyncio.run(ov.sync(_pod([{"name": "s", "secret": {"secretName": "nope"}}])))
    asyncio.run(ov.sync(_pod([{"name": "s", "secret": {"secretName": "nope", "optional": True}}])))
    assert (volume_dir(str(tmp_path), "uid-1", "secret", "s") / "..data").is_symlink()
    with pytest.raises(VolumeSetupError, match="couldn't find key x in Secret ns/sec"):
        asyncio.run(ov.sync(_pod([{"name": "t", "secret": {"secretName": "sec", "items": [{"key": "x", "path": "x"}]}}])))


def test_env_from_secrets():
    container = {"name": "c", "envFrom": [{"secretRef": {"name": "sec"}, "prefix": "S_"}],
                 "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pass"}}},
                         {"name": "O", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}}}]}
    env = dict(asyncio.run(container_env(_pod([]), container, _cm, get_secret=_secret)))
    assert env == {"S_user": "admin", "S_pass": "s3cret", "P": "s3cret"}
    bad = {"name": "c", "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "nokey"}}}]}
    with pytest.raises(ConfigError, match="couldn't find key nokey in Secret ns/sec"):
        asyncio.run(container_env(_pod([]), bad, _cm, get_secret=_secret))


def test_token_renewed_after_80_percent_of_its_life(monkeypatch):
    from agent import projected
    now = [1000.0]
    monkeypatch.setattr(projected.time, "time", lambda: now[0])
    calls = []

    async def request_token(ns, sa, body):
        calls.append(body)
        if len(calls) == 3:
            raise RuntimeError("apiserver away")
        return {"spec": {"expirationSeconds": 1000}, "status": {"token": f"t{len(calls)}"}}

    mgr = projected.TokenManager(request_token)
    pod = _pod([])
    assert asyncio.run(mgr.get(pod, "", 1000)) == "t1"
    now[0] += 799
    assert asyncio.run(mgr.get(pod, "", 1000)) == "t1"
    now[0] += 2
    assert asyncio.run(mgr.get(pod, "", 1000)) == "t2"
    # A failed renewal keeps the current token while it is still valid.
    now[0] += 801
    assert asyncio.run(mgr.get(pod, "", 1000)) == "t2"
    assert len(calls) == 3
    mgr.forget("uid-1")
    assert asyncio.run(mgr.get(pod, "", 1000)) == "t4"
