"""Pure decisions of the StatefulSet, DaemonSet and Job controllers."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from controlplane.controllers.daemonset import max_unavailable, should_run
from controlplane.controllers.job import JobController, wanted_active
from controlplane.controllers.statefulset import new_pod, plan, update_revision

READY = [{"type": "Ready", "status": "True"}]


def sts(replicas=3, **spec):
    return {"kind": "StatefulSet", "apiVersion": "apps/v1", "metadata": {"name": "db", "uid": "u"},
            "spec": {"replicas": replicas, "serviceName": "db", **spec,
                     "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c"}]}}}}


def pod(o, ready=True, phase="Running", revision=None, set_=None, deleting=False):
    s = set_ or sts()
    p = new_pod(s, o, revision or update_revision(s))
    p["status"] = {"phase": phase, "conditions": READY if ready else []}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return p


def names(pods):
    return [p["metadata"]["name"] for p in pods]


def test_ordered_ready_creates_one_at_a_time_and_waits_for_readiness():
    assert plan(sts(), []) == ([0], [])
    assert plan(sts(), [pod(0, ready=False)]) == ([], [])
    assert plan(sts(), [pod(0)]) == ([1], [])
    assert plan(sts(podManagementPolicy="Parallel"), []) == ([0, 1, 2], [])


def test_scale_down_removes_the_highest_ordinal_one_at_a_time():
    s = sts(replicas=1)
    create, delete = plan(s, [pod(0, set_=s), pod(1, set_=s), pod(2, set_=s)])
    assert create == [] and names(delete) == ["db-2"]
    assert plan(s, [pod(0, set_=s), pod(1, set_=s), pod(2, set_=s, deleting=True)]) == ([], [])
    # Not while a lower ordinal is unhealthy.
    assert plan(s, [pod(0, set_=s, ready=False), pod(1, set_=s)]) == ([], [])


def test_rolling_update_goes_from_the_highest_ordinal_down_to_the_partition():
    s = sts()
    old = [pod(i, set_=s, revision="db-old") for i in range(3)]
    assert names(plan(s, old)[1]) == ["db-2"]
    mixed = [old[0], old[1], pod(2, set_=s)]
    assert names(plan(s, mixed)[1]) == ["db-1"]
    s2 = sts(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    assert plan(s2, [old[0], old[1], pod(2, set_=s2)]) == ([], [])
    s3 = sts(updateStrategy={"type": "OnDelete"})
    assert plan(s3, old) == ([], [])


def test_failed_pod_is_deleted_to_be_recreated():
    assert names(plan(sts(), [pod(0, phase="Failed", ready=False)])[1]) == ["db-0"]


def test_pods_have_stable_identity_for_the_headless_service():
    p = new_pod(sts(), 4, "db-x")
    assert p["metadata"]["name"] == "db-4" and p["spec"]["hostname"] == "db-4" and p["spec"]["subdomain"] == "db"
    assert p["metadata"]["ownerReferences"][0] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
                                                   "uid": "u", "controller": True, "blockOwnerDeletion": True}


def node(name, labels=None, taints=None, ready="True"):
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def test_daemon_eligibility_follows_selector_affinity_and_taints():
    spec = {"nodeSelector": {"role": "log"}}
    assert should_run(spec, node("a", {"role": "log"})) == (True, True)
    assert should_run(spec, node("b")) == (False, False)
    tainted = node("c", {"role": "log"}, [{"key": "dedicated", "effect": "NoSchedule"}])
    assert should_run(spec, tainted) == (False, True)  # not started there, but an existing pod stays
    evicting = node("d", {"role": "log"}, [{"key": "dedicated", "effect": "NoExecute"}])
    assert should_run(spec, evicting) == (False, False)
    tolerant = {**spec, "tolerations": [{"key": "dedicated", "operator": "Exists"}]}
    assert should_run(tolerant, evicting) == (True, True)
    # Daemon pods tolerate unschedulable nodes, as Kubernetes adds that toleration.
    cordoned = node("e", {"role": "log"}, [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}])
    assert should_run(spec, cordoned) == (True, True)
    affinity = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]}]}}}}
    assert should_run(affinity, node("f", {"zone": "x"}))[0] and not should_run(affinity, node("g"))[0]


def test_max_unavailable_rounds_percentages_up_and_is_at_least_one():
    ds = lambda v: {"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": v}}}}  # noqa: E731
    assert max_unavailable(ds(1), 10) == 1
    assert max_unavailable(ds("25%"), 10) == 3
    assert max_unavailable(ds("1%"), 10) == 1
    assert max_unavailable(ds(2), 0) == 0


def test_job_wants_parallelism_bounded_by_remaining_completions():
    assert wanted_active({"parallelism": 2, "completions": 3}, 0) == 2
    assert wanted_active({"parallelism": 2, "completions": 3}, 2) == 1
    assert wanted_active({"parallelism": 2, "completions": 3}, 3) == 0
    assert wanted_active({"parallelism": 3}, 0) == 3  # work queue
    assert wanted_active({"parallelism": 3}, 1) == 0


def test_job_backoff_doubles_from_the_last_failure():
    ctl = JobController.__new__(JobController)
    ctl.backoff = 10.0
    now = datetime(2026, 1, 1, 0, 0, 30, tzinfo=timezone.utc)
    failed = [{"status": {"phase": "Failed", "conditions": [{"type": "Ready", "status": "False",
                                                             "lastTransitionTime": "2026-01-01T00:00:25Z"}]}}]
    assert ctl._backoff_left(failed, 1, now) == 5.0
    assert ctl._backoff_left(failed, 2, now) == 15.0
    assert ctl._backoff_left(failed, 1, now + timedelta(minutes=1)) == 0.0
    assert ctl._backoff_left([], 0, now) == 0.0


def test_completed_indexes_are_compressed_into_ranges():
    from controlplane.controllers.job import format_ranges, parse_ranges
    for indexes, text in ((set(), ""), ({0}, "0"), ({0, 1, 2}, "0-2"), ({1, 3, 4, 5, 7}, "1,3-5,7")):
        assert format_ranges(indexes) == text and parse_ranges(text) == indexes
