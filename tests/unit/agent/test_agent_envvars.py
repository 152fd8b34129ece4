import pytest

from agent.envvars import ConfigError, container_env

POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "a"}},
       "spec": {"nodeName": "n1"}, "status": {"podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.9"}]}}


async def cms(ns, name):
    return {"data": {"k": "v", "other": "o"}} if (ns, name) == ("ns", "cm") else None


async def test_env_order_expansion_and_sources():
    c = {"envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "P_"}],
         "env": [{"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                 {"name": "LBL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                 {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                 {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
                 {"name": "X", "value": "$(NAME)/$(K)/$(LATER)"},
                 {"name": "LATER", "value": "l"},
                 {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}}],
         "resources": {"limits": {"cpu": "500m"}}}
    env = dict(await container_env(POD, c, cms))
    assert env["P_k"] == "v" and env["P_other"] == "o"
    assert env["NAME"] == "p" and env["LBL"] == "a" and env["IP"] == "10.0.0.9" and env["K"] == "v"
    assert env["X"] == "p/v/$(LATER)" and env["CPU"] == "500"


async def test_missing_configmap_is_a_config_error_unless_optional():
    c = {"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]}
    with pytest.raises(ConfigError, match='configmap "nope" not found'):
        await container_env(POD, c, cms)
    c["env"][0]["valueFrom"]["configMapKeyRef"]["optional"] = True
    assert await container_env(POD, c, cms) == []
    c = {"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "missing"}}}]}
    with pytest.raises(ConfigError, match="couldn't find key missing"):
        await container_env(POD, c, cms)
