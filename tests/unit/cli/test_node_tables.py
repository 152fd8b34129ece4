"""`kubeling node ps|pods|images`: the crictl-like tables, from the rows agent/runtime/node_view.py prints."""
from __future__ import annotations

from kubeling.cli import node

NOW = 1_700_000_000.0
SB = "f" * 64
C1 = "a1" * 32


def _lines(text: str) -> list[list[str]]:
    # Columns are three spaces apart; cells may hold single spaces ("2 minutes ago").
    return [[c.strip() for c in line.split("   ") if c.strip()] for line in text.splitlines()]


def test_ps_shows_running_containers_newest_first_and_all_with_a():
    items = [
        {"id": C1, "image": "busybox:latest", "created_at": NOW - 125, "state": "running", "name": "app",
         "attempt": 0, "pod_id": SB, "pod": "web", "namespace": "default"},
        {"id": "b2" * 32, "image": "sha256:" + "c" * 64, "created_at": NOW - 5, "state": "exited", "name": "init",
         "attempt": 2, "pod_id": SB, "pod": "web", "namespace": "default"},
    ]
    rows = _lines(node.format_ps(items, NOW))
    assert rows == [["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"],
                    [C1[:13], "busybox:latest", "2 minutes ago", "Running", "app", "0", SB[:13], "web"]]
    rows = _lines(node.format_ps(items, NOW, all_=True))
    assert [r[0] for r in rows[1:]] == ["b2" * 6 + "b", C1[:13]]
    assert rows[1][1:5] == ["c" * 13, "5 seconds ago", "Exited", "init"] and rows[1][5] == "2"


def test_pods_table_says_ready_while_the_sandbox_runs():
    items = [{"id": SB, "created_at": NOW - 3 * 3600, "state": "running", "name": "web", "namespace": "default",
              "attempt": 0, "uid": "u1"},
             {"id": "e" * 64, "created_at": NOW - 0.2, "state": "exited", "name": "job", "namespace": "batch",
              "attempt": 1, "uid": "u2"}]
    assert _lines(node.format_pods(items, NOW)) == [
        ["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT"],
        ["e" * 13, "Less than a second ago", "NotReady", "job", "batch", "1"],
        [SB[:13], "3 hours ago", "Ready", "web", "default", "0"]]
    assert node.format_pods([], NOW).strip() == "POD ID   CREATED   STATE   NAME   NAMESPACE   ATTEMPT"


def test_images_one_row_per_tag_with_the_registry_kept_and_sizes_as_crictl():
    items = [{"id": "sha256:" + "9" * 64, "repo_tags": ["docker.io/kubeling/pause:3.9", "registry.k8s.io/pause:3.9"],
              "size": 686792},
             {"id": "sha256:" + "a" * 64, "repo_tags": ["localhost:5000/busybox:latest"], "size": 1985581},
             {"id": "sha256:" + "b" * 64, "repo_tags": [], "size": 2_500_000_000}]
    assert _lines(node.format_images(items)) == [
        ["IMAGE", "TAG", "IMAGE ID", "SIZE"],
        ["<none>", "<none>", "b" * 13, "2.5GB"],
        ["docker.io/kubeling/pause", "3.9", "9" * 13, "686.8kB"],
        ["localhost:5000/busybox", "latest", "a" * 13, "1.986MB"],
        ["registry.k8s.io/pause", "3.9", "9" * 13, "686.8kB"]]


def test_durations_and_sizes_read_like_docker_and_crictl():
    assert [node.human_ago(NOW - s, NOW) for s in (1, 59, 61, 600, 3700, 30 * 3600, 5 * 86400)] == [
        "1 second ago", "59 seconds ago", "About a minute ago", "10 minutes ago", "About an hour ago",
        "30 hours ago", "5 days ago"]
    assert node.human_ago(0, NOW) == "Unknown"
    assert [node.human_size(n) for n in (0, 999, 1000, 123456789)] == ["0B", "999B", "1kB", "123.5MB"]


def test_the_default_endpoint_is_our_containerds_only_when_its_socket_exists(tmp_path):
    sock = tmp_path / "containerd.sock"
    assert node.default_endpoint(str(sock)) == "unix:///var/run/docker.sock"
    sock.touch()
    assert node.default_endpoint(str(sock)) == f"unix://{sock}"
