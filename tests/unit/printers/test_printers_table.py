"""The Table envelope: column definitions per kind, row objects, metadata."""
import json

import pytest

from helpers_printers import NOW, container_status, pod, running
from kubeling.printers import column_definitions, to_table
from kubeling.resources import RESOURCES, lookup

EXPECTED_COLUMNS = {
    "pods": [("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0), ("IP", 1),
             ("Node", 1), ("Nominated Node", 1), ("Readiness Gates", 1)],
    "services": [("Name", 0), ("Type", 0), ("Cluster-IP", 0), ("External-IP", 0),
                 ("Port(s)", 0), ("Age", 0), ("Selector", 1)],
    "endpoints": [("Name", 0), ("Endpoints", 0), ("Age", 0)],
    "nodes": [("Name", 0), ("Status", 0), ("Roles", 0), ("Age", 0), ("Version", 0),
              ("Internal-IP", 1), ("External-IP", 1), ("OS-Image", 1), ("Kernel-Version", 1),
              ("Container-Runtime", 1)],
    "namespaces": [("Name", 0), ("Status", 0), ("Age", 0)],
    "events": [("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Subobject", 1),
               ("Source", 1), ("Message", 0), ("First Seen", 1), ("Count", 1), ("Name", 1)],
    "configmaps": [("Name", 0), ("Data", 0), ("Age", 0)],
    "leases": [("Name", 0), ("Holder", 0), ("Age", 0)],
    "endpointslices": [("Name", 0), ("AddressType", 0), ("Ports", 0), ("Endpoints", 0),
                       ("Age", 0)],
}


@pytest.mark.parametrize("plural", sorted(EXPECTED_COLUMNS))
def test_columns_as_kubernetes(plural):
    columns = column_definitions(lookup(plural))
    assert [(c["name"], c["priority"]) for c in columns] == EXPECTED_COLUMNS[plural]
    for c in columns:
        assert set(c) == {"name", "type", "format", "description", "priority"}
        assert c["type"] == "string"
        assert c["description"]
    named = [c["name"] for c in columns if c["format"] == "name"]
    assert named == ["Name"]
    if plural != "events":
        assert columns[0]["format"] == "name"


def test_every_served_resource_has_a_printer():
    for resource in RESOURCES:
        assert column_definitions(resource)[0]["name"] in ("Name", "Last Seen")


def test_list_table_with_metadata_objects():
    pods = [pod("a", statuses=[container_status("c0", ready=True, state=running())]),
            pod("b", phase="Pending", pod_ip="", node="")]
    pods[0]["metadata"]["labels"] = {"app": "web"}
    table = to_table(lookup("pods"), pods, list_meta={"resourceVersion": "1234"}, now=NOW)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "1234"}
    assert [r["cells"][:3] for r in table["rows"]] == [["a", "1/1", "Running"],
                                                       ["b", "0/1", "Pending"]]
    obj = table["rows"][0]["object"]
    assert obj == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": pods[0]["metadata"]}
    json.dumps(table)  # must be serialisable as is


def test_include_object_none_and_object():
    pods = [pod("a")]
    none = to_table(lookup("pods"), pods, include_object="None", now=NOW)
    assert "object" not in none["rows"][0]
    full = to_table(lookup("pods"), pods, include_object="Object", now=NOW)
    assert full["rows"][0]["object"] == pods[0]
    with pytest.raises(ValueError, match='Unsupported value: "Everything"'):
        to_table(lookup("pods"), pods, include_object="Everything")


def test_single_object_table_takes_its_resource_version():
    table = to_table(lookup("pods"), [pod("a")], now=NOW)
    assert table["metadata"] == {"resourceVersion": "42"}
    assert to_table(lookup("pods"), [], now=NOW)["metadata"] == {}


def test_list_meta_continue_and_no_headers():
    table = to_table(lookup("configmaps"), [], list_meta={
        "resourceVersion": "9", "continue": "tok", "remainingItemCount": 3}, no_headers=True)
    assert table["metadata"] == {"resourceVersion": "9", "continue": "tok",
                                 "remainingItemCount": 3}
    assert "columnDefinitions" not in table and table["rows"] == []


def test_columns_are_copies():
    t1 = to_table(lookup("pods"), [])
    t1["columnDefinitions"][0]["name"] = "changed"
    assert to_table(lookup("pods"), [])["columnDefinitions"][0]["name"] == "Name"


def test_odd_items_give_rows():
    table = to_table(lookup("services"), [None, "x", {"metadata": "bad"}], now=NOW)
    assert len(table["rows"]) == 3
    assert table["rows"][2]["object"]["metadata"] == {}
