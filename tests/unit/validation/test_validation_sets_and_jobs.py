"""Defaulting, validation and printing of DaemonSet, StatefulSet, Job and CronJob."""
from __future__ import annotations

from datetime import datetime, timezone

from kubeling.defaulting import apply_defaults
from kubeling.printers import to_table
from kubeling.resources import lookup
from kubeling.validation import validate

DS, STS, JOBS, CJ = (lookup(w) for w in ("daemonsets", "statefulsets", "jobs", "cronjobs"))
TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def obj(kind_spec: dict, name: str = "x") -> dict:
    return {"metadata": {"name": name, "namespace": "default"}, "spec": kind_spec}


def fields(res, o, old=None):
    return {e.field for e in validate(res, o, old)}


def test_defaults():
    ds = obj({"selector": {"matchLabels": {"app": "x"}}, "template": TEMPLATE})
    apply_defaults(DS, ds)
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1,
                                                                                       "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10
    tspec = ds["spec"]["template"]["spec"]
    assert tspec["restartPolicy"] == "Always" and "tolerations" not in tspec and "status" not in ds["spec"]["template"]
    sts = obj({"selector": {"matchLabels": {"app": "x"}}, "template": TEMPLATE})
    apply_defaults(STS, sts)
    assert (sts["spec"]["replicas"], sts["spec"]["podManagementPolicy"]) == (1, "OrderedReady")
    assert sts["spec"]["updateStrategy"]["rollingUpdate"] == {"partition": 0}
    job = obj({"template": TEMPLATE})
    apply_defaults(JOBS, job)
    assert {k: job["spec"][k] for k in ("completions", "parallelism", "backoffLimit", "completionMode", "suspend")} \
        == {"completions": 1, "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": False}
    cj = obj({"schedule": "* * * * *", "jobTemplate": {"spec": {"template": TEMPLATE}}})
    apply_defaults(CJ, cj)
    assert (cj["spec"]["concurrencyPolicy"], cj["spec"]["successfulJobsHistoryLimit"],
            cj["spec"]["failedJobsHistoryLimit"], cj["spec"]["suspend"]) == ("Allow", 3, 1, False)
    assert "backoffLimit" not in cj["spec"]["jobTemplate"]["spec"]  # the Job gets it when created


def test_validation_field_paths():
    ds = obj({"selector": {"matchLabels": {"app": "y"}}, "template": TEMPLATE,
              "updateStrategy": {"type": "Sometimes"}})
    apply_defaults(DS, ds)
    assert {"spec.template.metadata.labels", "spec.updateStrategy.type"} <= fields(DS, ds)
    assert "spec.selector" in fields(DS, obj({"template": TEMPLATE}))
    sts = obj({"selector": {"matchLabels": {"app": "x"}}, "template": TEMPLATE, "serviceName": "db"})
    apply_defaults(STS, sts)
    assert fields(STS, sts) == set()
    changed = {**sts, "spec": {**sts["spec"], "serviceName": "other"}}
    assert fields(STS, changed, sts) == {"spec"}
    job = obj({"template": {**TEMPLATE, "spec": {**TEMPLATE["spec"], "restartPolicy": "Never"}},
               "selector": {"matchLabels": {"app": "x"}}, "backoffLimit": -1, "completionMode": "Odd"})
    apply_defaults(JOBS, job)
    assert fields(JOBS, job) == {"spec.backoffLimit", "spec.completionMode"}
    cj = obj({"schedule": "every day", "timeZone": "Nowhere/Land", "startingDeadlineSeconds": -5,
              "jobTemplate": {"spec": {"template": TEMPLATE}}})
    apply_defaults(CJ, cj)
    assert fields(CJ, cj) == {"spec.schedule", "spec.timeZone", "spec.startingDeadlineSeconds",
                              "spec.jobTemplate.spec.template.spec.restartPolicy"}


NOW = datetime(2026, 1, 1, 1, 0, 0, tzinfo=timezone.utc)


def test_job_and_cronjob_rows():
    job = {"metadata": {"name": "j", "creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": {"completions": 3, "parallelism": 2, "template": TEMPLATE, "selector": {"matchLabels": {"a": "b"}}},
           "status": {"succeeded": 1, "startTime": "2026-01-01T00:59:00Z"}}
    cells = to_table(JOBS, [job], now=NOW)["rows"][0]["cells"]
    assert cells == ["j", "Running", "1/3", "60s", "60m", "c", "busybox", "a=b"]
    job["status"]["conditions"] = [{"type": "Failed", "status": "True"}]
    assert to_table(JOBS, [job], now=NOW)["rows"][0]["cells"][1] == "Failed"
    del job["spec"]["completions"]
    assert to_table(JOBS, [job], now=NOW)["rows"][0]["cells"][2] == "1/1 of 2"
    cj = {"metadata": {"name": "c", "creationTimestamp": "2026-01-01T00:00:00Z"},
          "spec": {"schedule": "@daily", "suspend": True, "jobTemplate": {"spec": {"template": TEMPLATE}}},
          "status": {"active": [{"name": "c-1"}], "lastScheduleTime": "2026-01-01T00:58:00Z"}}
    assert to_table(CJ, [cj], now=NOW)["rows"][0]["cells"][:7] == ["c", "@daily", "<none>", True, 1, "2m", "60m"]
