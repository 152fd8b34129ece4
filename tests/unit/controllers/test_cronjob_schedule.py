"""CronJob schedule logic on pure functions and on the controller's sync with an
injected clock and a recording client (no apiserver): when a Job is due, missed
schedules, startingDeadlineSeconds, concurrencyPolicy and suspend."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from controlplane.controllers.cronjob import (CronJobController, earliest_time, job_name, most_recent_schedule)
from kubeling.shared_informers import SharedInformers
from kubeling import cron
from kubeling.timefmt import format_time

UTC = timezone.utc
T0 = datetime(2026, 3, 10, 12, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize("spec,after,want", [
    ("*/15 * * * *", "2026-03-10T12:01:00Z", "2026-03-10T12:15:00Z"),
    ("0 9 * * mon-fri", "2026-03-13T10:00:00Z", "2026-03-16T09:00:00Z"),  # Friday -> Monday
    ("@hourly", "2026-03-10T12:00:00Z", "2026-03-10T13:00:00Z"),
    ("0 0 1 jan *", "2026-03-10T12:00:00Z", "2027-01-01T00:00:00Z"),
    ("0 0 13 * 5", "2026-03-01T00:00:00Z", "2026-03-06T00:00:00Z"),  # dom OR dow when neither is *
    ("0 0 13 * *", "2026-03-01T00:00:00Z", "2026-03-13T00:00:00Z"),
    ("5-10/5 1 * * ?", "2026-03-10T01:05:00Z", "2026-03-10T01:10:00Z"),
])
def test_next_activation(spec, after, want):
    got = cron.parse(spec).next(datetime.fromisoformat(after.replace("Z", "+00:00")))
    assert format_time(got) == want


def test_time_zone_is_the_wall_clock_of_that_zone():
    sched = cron.parse("0 9 * * *")
    got = sched.next(datetime(2026, 7, 1, 0, 0, tzinfo=UTC), cron.zone("Europe/Berlin"))
    assert format_time(got) == "2026-07-01T07:00:00Z"  # CEST is UTC+2


@pytest.mark.parametrize("bad", ["", "* * * *", "61 * * * *", "* * * * 8", "*/0 * * * *", "@sometimes",
                                 "TZ=UTC * * * * *", "5-1 * * * *", "x * * * *"])
def test_bad_schedules(bad):
    with pytest.raises(cron.CronError):
        cron.parse(bad)


def test_most_recent_schedule_counts_missed_times():
    sched = cron.parse("*/1 * * * *")
    got, missed = most_recent_schedule(sched, UTC, T0 - timedelta(minutes=5), T0)
    assert got == datetime(2026, 3, 10, 12, 0, tzinfo=UTC) and missed == 5
    assert most_recent_schedule(sched, UTC, T0, T0) == (None, 0)
    got, missed = most_recent_schedule(sched, UTC, T0 - timedelta(days=1), T0)
    assert got == datetime(2026, 3, 10, 12, 0, tzinfo=UTC) and missed > 100


def test_earliest_time_respects_last_schedule_and_starting_deadline():
    cj = {"metadata": {"creationTimestamp": "2026-03-01T00:00:00Z"}, "spec": {},
          "status": {"lastScheduleTime": "2026-03-10T11:00:00Z"}}
    assert earliest_time(cj, T0) == datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    cj["spec"]["startingDeadlineSeconds"] = 60
    assert earliest_time(cj, T0) == T0 - timedelta(seconds=60)


def test_job_names_are_minutes_since_the_epoch():
    assert job_name("tick", datetime(2026, 3, 10, 12, 0, tzinfo=UTC)) == f"tick-{1773144000 // 60}"


class RecordingClient:
    def __init__(self):
        self.calls = []

    async def create(self, res, obj, ns=None, params=None):
        self.calls.append(("create", res.plural, obj["metadata"]["name"]))
        obj = dict(obj)
        obj["metadata"] = {**obj["metadata"], "namespace": ns, "uid": f"uid-{obj['metadata']['name']}"}
        return obj

    async def request(self, method, path, body=None, **kw):
        self.calls.append((method.lower(), path.rsplit("/", 1)[-1]))
        return {}


def cronjob(**spec):
    return {"kind": "CronJob", "apiVersion": "batch/v1",
            "metadata": {"name": "tick", "namespace": "ns", "uid": "cj-uid",
                         "creationTimestamp": "2026-03-10T11:50:00Z"},
            "spec": {"schedule": "*/1 * * * *", "concurrencyPolicy": "Allow", "suspend": False,
                     "jobTemplate": {"spec": {"template": {"spec": {}}}}, **spec},
            "status": {"lastScheduleTime": "2026-03-10T11:59:00Z"}}


def running_job(name):
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                         "ownerReferences": [{"kind": "CronJob", "name": "tick", "uid": "cj-uid",
                                              "controller": True}]}, "status": {}}


async def sync(cj, jobs=(), now=T0):
    client = RecordingClient()
    ctl = CronJobController(client, SharedInformers(client), clock=lambda: now)
    reasons = []
    ctl.events.event = lambda obj, typ, reason, msg: reasons.append(reason)
    status = dict(cj.get("status") or {})
    if jobs:
        status["active"] = [{"kind": "Job", "name": j["metadata"]["name"], "uid": j["metadata"]["uid"]}
                            for j in jobs]
    cj["status"] = dict(status)
    delay = await ctl.sync_cronjob(cj, status, list(jobs))
    return client.calls, status, reasons, delay


async def test_due_time_creates_the_job_and_requeues_for_the_next_minute():
    calls, status, reasons, delay = await sync(cronjob())
    name = job_name("tick", datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    assert calls == [("create", "jobs", name)]
    assert status["lastScheduleTime"] == "2026-03-10T12:00:00Z"
    assert [a["name"] for a in status["active"]] == [name]
    assert reasons == ["SuccessfulCreate"]
    assert 29 < delay < 31  # T0 is 30 s into the minute


async def test_forbid_skips_while_a_job_runs_and_replace_deletes_it_first():
    old = running_job("tick-1")
    calls, status, reasons, _ = await sync(cronjob(concurrencyPolicy="Forbid"), [old])
    assert calls == [] and reasons == ["JobAlreadyActive"]
    calls, status, reasons, _ = await sync(cronjob(concurrencyPolicy="Replace"), [old])
    assert calls[0] == ("delete", "tick-1") and calls[1][0] == "create"
    assert reasons == ["SuccessfulDelete", "SuccessfulCreate"]
    calls, _, _, _ = await sync(cronjob(concurrencyPolicy="Allow"), [old])
    assert [c[0] for c in calls] == ["create"]


async def test_suspended_cronjob_never_starts_jobs():
    calls, _, _, delay = await sync(cronjob(suspend=True))
    assert calls == [] and delay is None


async def test_starting_deadline_passed_skips_the_missed_time():
    # Due at 12:00:00, now 12:00:30, deadline 10 s: as in Kubernetes, only times after
    # now - startingDeadlineSeconds are candidates, so this one is skipped silently.
    cj = cronjob(startingDeadlineSeconds=10)
    cj["status"] = {"lastScheduleTime": "2026-03-10T11:50:00Z"}
    calls, _, reasons, delay = await sync(cj)
    assert calls == [] and reasons == [] and 29 < delay < 31
    calls, _, _, _ = await sync(cronjob(startingDeadlineSeconds=60))
    assert [c[0] for c in calls] == ["create"]


async def test_a_time_already_run_is_not_run_again():
    done = running_job(job_name("tick", datetime(2026, 3, 10, 12, 0, tzinfo=UTC)))
    calls, _, _, _ = await sync(cronjob(), [done])
    assert calls == []


async def test_finished_job_leaves_active_with_saw_completed_job():
    j = running_job("tick-1")
    j["status"] = {"conditions": [{"type": "Complete", "status": "True"}], "completionTime": "2026-03-10T11:59:30Z"}
    cj = cronjob()
    cj["status"]["lastScheduleTime"] = "2026-03-10T12:00:00Z"
    calls, status, reasons, _ = await sync(cj, [j])
    assert "active" not in status and reasons == ["SawCompletedJob"]
    assert status["lastSuccessfulTime"] == "2026-03-10T11:59:30Z"
