"""The Job controller in the controller manager (a real process) against the real
apiserver; the test marks pods Succeeded/Failed through pods/status as an agent would."""
from __future__ import annotations

import pytest

from controller_waits import eventually
from kubeling import errors
from kubeling.resources import lookup
from workload_pods import delete_namespace, owned_pods, reasons, set_phase

JOBS = lookup("jobs")


@pytest.fixture
async def ns(client, namespace, controller_manager):
    yield namespace
    await delete_namespace(client, namespace)


def job(name: str, **spec) -> dict:
    restart = spec.pop("restartPolicy", "Never")
    return {"metadata": {"name": name},
            "spec": {**spec, "template": {"spec": {"restartPolicy": restart,
                                                    "containers": [{"name": "c", "image": "busybox"}]}}}}


def condition(j: dict, ctype: str) -> dict | None:
    for c in (j.get("status") or {}).get("conditions") or []:
        if c["type"] == ctype and c["status"] == "True":
            return c
    return None


async def test_job_runs_parallel_pods_until_completions_then_completes(client, ns):
    j = await client.create(JOBS, job("work", completions=3, parallelism=2), ns)
    uid = j["metadata"]["uid"]
    # The server generated the selector and the pod labels from the job's uid.
    assert j["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = j["spec"]["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "work" and labels["controller-uid"] == uid
    assert j["spec"]["backoffLimit"] == 6 and j["spec"]["completionMode"] == "NonIndexed"

    async def n_active(n):
        pods = [p for p in await owned_pods(client, ns, uid) if p["status"].get("phase") == "Pending"]
        return pods if len(pods) == n else None
    first = await eventually(lambda: n_active(2))
    for p in first:
        ref = p["metadata"]["ownerReferences"][0]
        assert ref["kind"] == "Job" and ref["controller"] and ref["blockOwnerDeletion"]
        assert p["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "work"
        assert p["metadata"]["generateName"] == "work-"
    await set_phase(client, ns, first[0]["metadata"]["name"], "Succeeded")
    # One more pod replaces it (3 - 1 succeeded = 2 still wanted, one already running).
    second = await eventually(lambda: n_active(2))
    assert {p["metadata"]["name"] for p in second} != {p["metadata"]["name"] for p in first}
    for p in second:
        await set_phase(client, ns, p["metadata"]["name"], "Succeeded")

    async def complete():
        got = await client.get(JOBS, "work", ns)
        return got if condition(got, "Complete") else None
    done = await eventually(complete)
    assert done["status"]["succeeded"] == 3 and not done["status"].get("failed")
    assert done["status"]["startTime"] and done["status"]["completionTime"]
    assert condition(done, "SuccessCriteriaMet")
    assert len(await owned_pods(client, ns, uid)) == 3  # nothing more was started
    got = await eventually(lambda: _has(client, ns, "work", "Completed"))
    assert got.count("SuccessfulCreate") == 3
    # The pods' controller references let the garbage collector remove them with the Job.
    await client.request("DELETE", f"/apis/batch/v1/namespaces/{ns}/jobs/work",
                         {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
    await eventually(lambda: _none_left(client, ns, uid))


async def _has(client, ns, name, reason):
    r = await reasons(client, ns, name)
    return r if reason in r else None


async def test_failed_pods_count_against_backoff_limit(client, ns):
    j = await client.create(JOBS, job("flaky", backoffLimit=1), ns)
    uid = j["metadata"]["uid"]

    async def pods(n):
        got = await owned_pods(client, ns, uid)
        return got if len(got) == n else None
    p1 = (await eventually(lambda: pods(1)))[0]
    await set_phase(client, ns, p1["metadata"]["name"], "Failed")
    # One failure is within the limit: a replacement starts.
    p2 = (await eventually(lambda: pods(2), 30))[1]
    got = await client.get(JOBS, "flaky", ns)
    assert not condition(got, "Failed")
    await set_phase(client, ns, p2["metadata"]["name"], "Failed")

    async def failed():
        got = await client.get(JOBS, "flaky", ns)
        return got if condition(got, "Failed") else None
    done = await eventually(failed)
    cond = condition(done, "Failed")
    assert cond["reason"] == "BackoffLimitExceeded"
    assert cond["message"] == "Job has reached the specified backoff limit"
    assert done["status"]["failed"] == 2 and not done["status"].get("active")
    assert len(await owned_pods(client, ns, uid)) == 2
    await eventually(lambda: _has(client, ns, "flaky", "BackoffLimitExceeded"))


async def test_active_deadline_stops_pods_and_fails_the_job(client, ns):
    j = await client.create(JOBS, job("slow", activeDeadlineSeconds=2, restartPolicy="OnFailure"), ns)
    uid = j["metadata"]["uid"]

    async def running():
        got = await owned_pods(client, ns, uid)
        return got if got else None
    await eventually(running)

    async def failed():
        got = await client.get(JOBS, "slow", ns)
        return got if condition(got, "Failed") else None
    done = await eventually(failed, 15)
    assert condition(done, "Failed")["reason"] == "DeadlineExceeded"
    # Its pod was deleted (unscheduled pods go at once).
    await eventually(lambda: _none_left(client, ns, uid))


async def _none_left(client, ns, uid):
    return not await owned_pods(client, ns, uid)


async def test_invalid_jobs_are_refused_with_field_paths(client, ns):
    with pytest.raises(errors.ApiError) as exc:
        await client.create(JOBS, job("bad", parallelism=-1, restartPolicy="Always"), ns)
    assert exc.value.code == 422
    fields = {c["field"] for c in exc.value.details["causes"]}
    assert {"spec.parallelism", "spec.template.spec.restartPolicy"} <= fields
    assert exc.value.message.startswith('Job.batch "bad" is invalid')


async def test_indexed_job_gives_each_pod_its_index(client, ns):
    j = await client.create(JOBS, job("idx", completions=3, parallelism=3, completionMode="Indexed"), ns)
    uid = j["metadata"]["uid"]

    async def three():
        got = await owned_pods(client, ns, uid)
        return got if len(got) == 3 else None
    pods = await eventually(three)
    index = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p for p in pods}
    assert sorted(index) == ["0", "1", "2"]
    p1 = index["1"]
    assert p1["spec"]["hostname"] == "idx-1" and p1["metadata"]["generateName"] == "idx-1-"
    assert p1["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "1"
    env = p1["spec"]["containers"][0]["env"]
    assert env[0]["name"] == "JOB_COMPLETION_INDEX"
    # Index 1 fails: it is started again with the same index; 0 and 2 succeed.
    await set_phase(client, ns, index["0"]["metadata"]["name"], "Succeeded")
    await set_phase(client, ns, index["2"]["metadata"]["name"], "Succeeded")
    await set_phase(client, ns, p1["metadata"]["name"], "Failed")

    async def again():
        got = [p for p in await owned_pods(client, ns, uid) if p["status"].get("phase") == "Pending"]
        return got if got else None
    retry = (await eventually(again, 30))[0]
    assert retry["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "1"
    got = await client.get(JOBS, "idx", ns)
    assert got["status"]["completedIndexes"] == "0,2"
    await set_phase(client, ns, retry["metadata"]["name"], "Succeeded")

    async def complete():
        got = await client.get(JOBS, "idx", ns)
        return got if condition(got, "Complete") else None
    done = await eventually(complete)
    assert done["status"]["completedIndexes"] == "0-2" and done["status"]["succeeded"] == 3
    assert done["status"]["failed"] == 1


async def test_finished_job_with_ttl_is_deleted_with_its_pods(client, ns):
    j = await client.create(JOBS, job("short", ttlSecondsAfterFinished=1), ns)
    uid = j["metadata"]["uid"]
    pod = (await eventually(lambda: owned_pods(client, ns, uid)))[0]
    await set_phase(client, ns, pod["metadata"]["name"], "Succeeded")

    async def complete():
        got = await client.get(JOBS, "short", ns)
        return got if condition(got, "Complete") else None
    await eventually(complete)

    async def gone():
        try:
            await client.get(JOBS, "short", ns)
            return False
        except errors.ApiError as exc:
            return exc.code == 404
    await eventually(gone, 15)
    await eventually(lambda: _none_left(client, ns, uid))
