"""Text rendering, compared with kubectl's output for the same Tables."""
from datetime import timedelta

from helpers_printers import NOW, container_status, meta, pod, running
from kubeling.printers import TableWriter, format_cell, render_table, to_table
from kubeling.resources import lookup


def pods_table():
    a = pod("web-1", statuses=[container_status("c0", ready=True, state=running())])
    a["metadata"]["labels"] = {"app": "web", "tier": "front"}
    b = pod("db", phase="Pending", pod_ip="", node="", namespace="data",
            age=timedelta(hours=5, minutes=7))
    return to_table(lookup("pods"), [a, b], list_meta={"resourceVersion": "7"}, now=NOW)


def test_default_rendering():
    assert render_table(pods_table()) == (
        "NAME    READY   STATUS    RESTARTS   AGE\n"
        "web-1   1/1     Running   0          5m\n"
        "db      0/1     Pending   0          5h7m\n")


def test_wide_all_namespaces_and_labels():
    assert render_table(pods_table(), wide=True, with_namespace=True, show_labels=True) == (
        "NAMESPACE   NAME    READY   STATUS    RESTARTS   AGE    IP           NODE     "
        "NOMINATED NODE   READINESS GATES   LABELS\n"
        "default     web-1   1/1     Running   0          5m     10.244.0.5   node-1   "
        "<none>           <none>            app=web,tier=front\n"
        "data        db      0/1     Pending   0          5h7m   <none>       <none>   "
        "<none>           <none>            <none>\n")


def test_no_headers_and_kind_prefix():
    assert render_table(pods_table(), no_headers=True, with_kind="pod") == (
        "pod/web-1   1/1   Running   0     5m\n"
        "pod/db      0/1   Pending   0     5h7m\n")


def test_min_width_of_narrow_columns():
    cm = to_table(lookup("configmaps"), [{"metadata": meta("a")}], now=NOW)
    # "A" + padding is below kubectl's minimum cell width of 6.
    assert render_table(cm) == "NAME   DATA   AGE\na      0      5m\n"


def test_empty_table_renders_nothing():
    assert render_table(to_table(lookup("pods"), [])) == ""


def test_watch_writer_prints_header_once_and_keeps_widths():
    writer = TableWriter()
    assert writer.write(to_table(lookup("pods"), [])) == ""
    first = writer.write(to_table(lookup("pods"), [pod("a")], now=NOW))
    assert first == "NAME   READY   STATUS    RESTARTS   AGE\na      0/1     Running   0          5m\n"
    # Watch events may come without column definitions; the old ones apply.
    event = to_table(lookup("pods"), [pod("a-much-longer-name")], now=NOW, no_headers=True)
    assert writer.write(event) == "a-much-longer-name   0/1     Running   0          5m\n"
    assert writer.write(to_table(lookup("pods"), [pod("b")], now=NOW)) == \
        "b                    0/1     Running   0          5m\n"


def test_writer_prints_header_again_for_new_columns():
    writer = TableWriter()
    writer.write(to_table(lookup("pods"), [pod("a")], now=NOW))
    out = writer.write(to_table(lookup("configmaps"), [{"metadata": meta("c")}], now=NOW))
    assert out.splitlines()[0].split() == ["NAME", "DATA", "AGE"]


def test_format_cell_like_go():
    assert [format_cell(v) for v in (None, True, False, 3, 2.0, 1.5, "x", [1, "a"], {"b": 1})] \
        == ["<nil>", "true", "false", "3", "2", "1.5", "x", "[1 a]", "map[b:1]"]


def test_table_from_server_with_missing_cells_and_objects():
    table = {"columnDefinitions": [{"name": "Name", "priority": 0},
                                   {"name": "Extra", "priority": 0}],
             "rows": [{"cells": ["only-name"]}, {"cells": None, "object": None}, "junk"]}
    assert render_table(table, with_namespace=True, show_labels=True) == (
        "NAMESPACE   NAME        EXTRA   LABELS\n"
        "            only-name           \n"
        "                                \n")
