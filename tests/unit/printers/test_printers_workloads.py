"""Tables of Deployments, ReplicaSets and ReplicationControllers, with kubectl's columns."""
from __future__ import annotations

from datetime import datetime, timezone

from kubeling.printers import to_table
from kubeling.resources import lookup

NOW = datetime(2026, 1, 1, 0, 10, tzinfo=timezone.utc)
TEMPLATE = {"spec": {"containers": [{"name": "a", "image": "img:1"}, {"name": "b", "image": "img:2"}]}}


def _names(table):
    return [(c["name"], c["priority"]) for c in table["columnDefinitions"]]


def test_deployment_columns_and_row():
    d = {"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
         "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    table = to_table(lookup("deployments"), [d], now=NOW)
    assert _names(table) == [("Name", 0), ("Ready", 0), ("Up-to-date", 0), ("Available", 0), ("Age", 0),
                             ("Containers", 1), ("Images", 1), ("Selector", 1)]
    assert table["rows"][0]["cells"] == ["web", "2/3", 3, 2, "10m", "a,b", "img:1,img:2", "app=web"]


def test_replicaset_and_rc_rows():
    rs = {"metadata": {"name": "web-x", "creationTimestamp": "2026-01-01T00:00:00Z"},
          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
          "status": {"replicas": 2}}
    table = to_table(lookup("replicasets"), [rs], now=NOW)
    assert [n for n, p in _names(table) if p == 0] == ["Name", "Desired", "Current", "Ready", "Age"]
    assert table["rows"][0]["cells"] == ["web-x", 2, 2, 0, "10m", "a,b", "img:1,img:2", "app=web"]
    rc = {"metadata": {"name": "old"}, "spec": {"replicas": 1, "selector": {"b": "2", "a": "1"}}, "status": {}}
    cells = to_table(lookup("replicationcontrollers"), [rc], now=NOW)["rows"][0]["cells"]
    assert cells[:4] == ["old", 1, 0, 0] and cells[-1] == "a=1,b=2"
    # Whatever is stored, a row is printed.
    assert to_table(lookup("deployments"), [{"spec": "junk"}], now=NOW)["rows"][0]["cells"][1] == "0/0"
