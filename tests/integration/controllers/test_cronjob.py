"""The CronJob controller in the real controller manager. Waiting for a real minute
boundary is slow, so the test puts the CronJob behind schedule instead: a
lastScheduleTime three minutes ago (through the status subresource) makes the most
recent minute a missed time, which the controller runs at once, as it would after
a restart. The Job controller then runs the Job; the test finishes its pod."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from controller_waits import eventually
from kubeling import errors
from kubeling.resources import lookup
from kubeling.timefmt import format_time
from workload_pods import delete_namespace, owned_pods, reasons, set_phase

CRONJOBS, JOBS = lookup("cronjobs"), lookup("jobs")


@pytest.fixture
async def ns(client, namespace, controller_manager):
    yield namespace
    await delete_namespace(client, namespace)


def cronjob(name: str, **spec) -> dict:
    return {"metadata": {"name": name},
            "spec": {"schedule": "*/1 * * * *", **spec,
                     "jobTemplate": {"metadata": {"labels": {"from": name}},
                                     "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                                         {"name": "c", "image": "busybox"}]}}}}}}


async def behind_schedule(client, ns, name, minutes=3):
    cj = await client.get(CRONJOBS, name, ns)
    past = datetime.now(timezone.utc) - timedelta(minutes=minutes)
    cj["status"] = {"lastScheduleTime": format_time(past)}
    return await client.update(CRONJOBS, cj, "status")


async def test_missed_time_runs_a_job_which_completes_and_is_seen(client, ns):
    cj = await client.create(CRONJOBS, cronjob("tick", successfulJobsHistoryLimit=1), ns)
    assert cj["spec"]["concurrencyPolicy"] == "Allow" and cj["spec"]["failedJobsHistoryLimit"] == 1
    await behind_schedule(client, ns, "tick")

    async def one_job():
        jobs = (await client.list(JOBS, ns))["items"]
        return jobs[0] if len(jobs) == 1 else None
    job = await eventually(one_job)
    scheduled = job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
    minute = int(datetime.fromisoformat(scheduled.replace("Z", "+00:00")).timestamp()) // 60
    assert job["metadata"]["name"] == f"tick-{minute}"
    assert job["metadata"]["labels"]["from"] == "tick"
    ref = job["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("CronJob", "tick", True)

    async def active():
        got = await client.get(CRONJOBS, "tick", ns)
        st = got.get("status") or {}
        return got if [a["name"] for a in st.get("active") or []] == [job["metadata"]["name"]] else None
    got = await eventually(active)
    assert got["status"]["lastScheduleTime"] == scheduled

    pod = (await eventually(lambda: owned_pods(client, ns, job["metadata"]["uid"])))[0]
    await set_phase(client, ns, pod["metadata"]["name"], "Succeeded")

    async def seen():
        got = await client.get(CRONJOBS, "tick", ns)
        st = got.get("status") or {}
        return got if not st.get("active") and st.get("lastSuccessfulTime") else None
    await eventually(seen, 20)
    r = await reasons(client, ns, "tick")
    assert "SuccessfulCreate" in r and "SawCompletedJob" in r

    table = await client.request("GET", f"/apis/batch/v1/namespaces/{ns}/cronjobs",
                                 accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
        "Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age"]
    assert table["rows"][0]["cells"][:5] == ["tick", "*/1 * * * *", "<none>", False, 0]
    jt = await client.request("GET", f"/apis/batch/v1/namespaces/{ns}/jobs",
                              accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    assert jt["rows"][0]["cells"][1:3] == ["Complete", "1/1"]


async def test_suspended_cronjob_starts_nothing(client, ns):
    await client.create(CRONJOBS, cronjob("idle", suspend=True), ns)
    await client.create(CRONJOBS, cronjob("busy"), ns)
    await behind_schedule(client, ns, "idle")
    await behind_schedule(client, ns, "busy")

    # The running sibling, behind schedule the same way, gets its Job: by then the
    # controller has had the same chance to start one for the suspended CronJob.
    async def busy_ran():
        jobs = (await client.list(JOBS, ns))["items"]
        return jobs if any(j["metadata"]["name"].startswith("busy-") for j in jobs) else None
    jobs = await eventually(busy_ran)

    async def busy_active():
        return ((await client.get(CRONJOBS, "busy", ns)).get("status") or {}).get("active")
    await eventually(busy_active)
    assert not [j for j in jobs if j["metadata"]["name"].startswith("idle-")]
    assert not (await client.get(CRONJOBS, "idle", ns)).get("status", {}).get("active")


async def test_invalid_cronjob_is_refused_with_field_paths(client, ns):
    bad = cronjob("x" * 53, schedule="61 * * * *", concurrencyPolicy="Sometimes", timeZone="Mars/Base")
    with pytest.raises(errors.ApiError) as exc:
        await client.create(CRONJOBS, bad, ns)
    fields = {c["field"] for c in exc.value.details["causes"]}
    assert {"metadata.name", "spec.schedule", "spec.concurrencyPolicy", "spec.timeZone"} <= fields
