"""Cron schedules (robfig/cron ParseStandard + Next), upstream's CronJob schedule arithmetic tables
(pkg/controller/cronjob/utils_test.go TestMostRecentScheduleTime, TestNextScheduleTimeDuration),
then the CronJob and TTL-after-finished controllers over FakeApi on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from knet import cron
from knet.controllers.cronjob import (
    SCHEDULED_TIMESTAMP,
    CronJobController,
    job_from_template,
    jobs_to_clean,
    most_recent_schedule_time,
    next_schedule_delay,
)
from knet.controllers.ttlafterfinished import TTLAfterFinishedController

TOP = datetime(2016, 5, 19, 10, 0, 0, tzinfo=UTC)  # upstream's topOfTheHour()


def after(**kw) -> datetime:
    return TOP + timedelta(**kw)


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- parsing: robfig/cron v3 parser_test.go cases, with its messages ------------------------------
@pytest.mark.parametrize(("spec", "error"), [
    pytest.param("", "empty spec string", id="empty"),
    pytest.param("* * * *", "expected exactly 5 fields, found 4: [* * * *]", id="four-fields"),
    pytest.param("* * * * * *", "expected exactly 5 fields, found 6: [* * * * * *]", id="six-fields"),
    pytest.param("60 * * * *", "end of range (60) above maximum (59): 60", id="minute-60"),
    pytest.param("* 24 * * *", "end of range (24) above maximum (23): 24", id="hour-24"),
    pytest.param("* * 0 * *", "beginning of range (0) below minimum (1): 0", id="dom-0"),
    pytest.param("* * * 13 *", "end of range (13) above maximum (12): 13", id="month-13"),
    pytest.param("* * * * 7", "end of range (7) above maximum (6): 7", id="dow-7"),
    pytest.param("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1", id="backwards"),
    pytest.param("1-2-3 * * * *", "too many hyphens: 1-2-3", id="hyphens"),
    pytest.param("*/2/3 * * * *", "too many slashes: */2/3", id="slashes"),
    pytest.param("a * * * *", 'failed to parse int from a: strconv.Atoi: parsing "a": invalid syntax', id="not-a-number"),
    pytest.param("@fortnightly", "unrecognized descriptor: @fortnightly", id="descriptor"),
    pytest.param("TZ=Nowhere/Land * * * * *", "provided bad location Nowhere/Land: unknown time zone Nowhere/Land",
                 id="bad-zone"),
])
def test_parse_errors(spec, error):
    with pytest.raises(cron.CronError) as exc:
        cron.parse_standard(spec)
    assert str(exc.value) == error


@pytest.mark.parametrize(("spec", "now", "want"), [
    pytest.param("*/1 * * * *", "2026-12-05T03:58:17Z", "2026-12-05T03:59:00Z", id="every-minute"),
    pytest.param("*/15 * * * *", "2026-12-05T03:58:17Z", "2026-12-05T04:00:00Z", id="every-15"),
    pytest.param("@hourly", "2026-12-05T03:00:00Z", "2026-12-05T04:00:00Z", id="hourly-on-the-hour"),
    pytest.param("@daily", "2026-12-05T03:00:00Z", "2026-12-06T00:00:00Z", id="daily"),
    pytest.param("@weekly", "2026-12-05T03:00:00Z", "2026-12-06T00:00:00Z", id="weekly-sunday"),
    pytest.param("@monthly", "2026-12-05T03:00:00Z", "2027-01-01T00:00:00Z", id="monthly-wraps-year"),
    pytest.param("@yearly", "2026-12-05T03:00:00Z", "2027-01-01T00:00:00Z", id="yearly"),
    pytest.param("0 0 29 2 *", "2026-12-05T03:00:00Z", "2028-02-29T00:00:00Z", id="leap-day"),
    pytest.param("30 6-16/4 * * 1-5", "2026-12-05T03:00:00Z", "2026-12-07T06:30:00Z", id="weekdays-skip-weekend"),
    # day-of-month and day-of-week both restricted: either matches (cron's OR)
    pytest.param("0 0 1 * mon", "2026-12-05T03:00:00Z", "2026-12-07T00:00:00Z", id="dom-or-dow"),
    pytest.param("0 0 */10 * mon", "2026-12-05T03:00:00Z", "2026-12-07T00:00:00Z", id="stepped-dom-is-not-star"),
    pytest.param("5 4 * * sun", "2026-12-05T03:00:00Z", "2026-12-06T04:05:00Z", id="named-day"),
    pytest.param("0 9 * jan-mar *", "2026-12-05T03:00:00Z", "2027-01-01T09:00:00Z", id="named-months"),
    pytest.param("TZ=Europe/Berlin 0 9 * * *", "2026-12-05T03:00:00Z", "2026-12-05T08:00:00Z", id="tz-winter"),
    pytest.param("CRON_TZ=Europe/Berlin 0 9 * * *", "2026-07-05T03:00:00Z", "2026-07-05T07:00:00Z", id="tz-summer"),
    # 02:30 does not exist in Berlin on 2026-03-29 (clocks jump 02:00 -> 03:00): the next day's
    pytest.param("TZ=Europe/Berlin 30 2 * * *", "2026-03-28T12:00:00Z", "2026-03-30T00:30:00Z", id="dst-gap"),
    pytest.param("@every 90s", "2026-12-05T03:58:17Z", "2026-12-05T03:59:47Z", id="every-duration"),
    pytest.param("0 0 31 2 *", "2026-12-05T03:00:00Z", None, id="thirty-first-of-february-never"),
])
def test_next(spec, now, want):
    got = cron.parse_standard(spec).next(datetime.fromisoformat(now.replace("Z", "+00:00")))
    assert (stamp(got.astimezone(UTC)) if got else None) == want


# --- upstream utils_test.go TestMostRecentScheduleTime ----------------------------------------------
def cronjob(schedule: str, created: datetime = TOP, last: datetime | None = None, sds: int | None = None,
            **spec) -> dict:
    body: dict = {"apiVersion": "batch/v1", "kind": "CronJob",
                  "metadata": {"name": "hello", "namespace": "default", "uid": "cj-uid",
                               "creationTimestamp": stamp(created)},
                  "spec": {"schedule": schedule, "concurrencyPolicy": "Allow", "suspend": False,
                           "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                           "jobTemplate": {"metadata": {"labels": {"app": "hello"}}, "spec": {"template": {
                               "spec": {"restartPolicy": "OnFailure",
                                        "containers": [{"name": "hello", "image": "busybox"}]}}}}, **spec},
                  "status": {}}
    if last is not None:
        body["status"]["lastScheduleTime"] = stamp(last)
    if sds is not None:
        body["spec"]["startingDeadlineSeconds"] = sds
    return body


NONE, FEW, MANY = "none", "few", "many"


@pytest.mark.parametrize(("cj", "include_sds", "now", "earliest", "recent", "missed"), [
    pytest.param(cronjob("0 * * * *"), False, after(seconds=30), TOP, None, NONE, id="now before next schedule"),
    pytest.param(cronjob("0 * * * *"), False, after(minutes=61), TOP, after(minutes=60), NONE,
                 id="now just after next schedule"),
    pytest.param(cronjob("0 * * * *", created=after(seconds=10)), False, after(minutes=301), after(seconds=10),
                 after(minutes=300), FEW, id="missed 5 schedules"),
    pytest.param(cronjob("30 6-16/4 * * 1-5", last=after(minutes=30)), False, after(hours=24, minutes=31),
                 after(minutes=30), after(hours=24, minutes=30), FEW, id="complex schedule"),
    pytest.param(cronjob("30 10,11,12 * * 1-5", last=after(minutes=30)), False, after(hours=30, minutes=30),
                 after(minutes=30), None, FEW, id="another complex schedule"),
    pytest.param(cronjob("30 6-16/4 * * 1-5", last=after(minutes=30)), False, after(hours=96, minutes=31),
                 after(minutes=30), after(hours=96, minutes=30), FEW,
                 id="complex schedule with longer diff between executions"),
    pytest.param(cronjob("30 6-16/4 * * 1-5"), False, after(hours=24, minutes=31), TOP, after(hours=24, minutes=30),
                 FEW, id="complex schedule with shorter diff between executions"),
    pytest.param(cronjob("@every 1h", created=after(minutes=-59), last=after(minutes=1), sds=10), False,
                 after(days=7), after(minutes=1), after(days=6, hours=23, minutes=1), MANY, id="@every schedule"),
    pytest.param(cronjob("0 * * * *", last=TOP), False, after(seconds=30), TOP, None, NONE,
                 id="earliestTime being CreationTimestamp and LastScheduleTime"),
    pytest.param(cronjob("*/5 * * * *", last=after(minutes=30)), False, after(minutes=31), after(minutes=30), None,
                 NONE, id="earliestTime being LastScheduleTime"),
    pytest.param(cronjob("*/5 * * * *", last=after(minutes=30), sds=60), False, after(minutes=31), after(minutes=30),
                 None, NONE, id="earliestTime being LastScheduleTime (within StartingDeadlineSeconds)"),
    pytest.param(cronjob("*/5 * * * *", last=after(minutes=30), sds=60), True, after(minutes=32), after(minutes=31),
                 None, NONE, id="earliestTime being LastScheduleTime (outside StartingDeadlineSeconds)"),
])
def test_most_recent_schedule_time(cj, include_sds, now, earliest, recent, missed):
    schedule = cron.parse_standard(cj["spec"]["schedule"])
    got_earliest, got_recent, got_missed = most_recent_schedule_time(cj, now, schedule, include_sds)
    assert got_earliest == earliest
    assert got_recent == recent
    assert (MANY if got_missed > 100 else FEW if got_missed > 0 else NONE) == missed


def test_most_recent_schedule_time_rogue_cronjob():
    cj = cronjob("59 23 31 2 *", created=after(seconds=10))
    with pytest.raises(cron.CronError):
        most_recent_schedule_time(cj, after(hours=1), cron.parse_standard("59 23 31 2 *"), False)


@pytest.mark.parametrize(("cj", "now", "want"), [
    pytest.param(cronjob("30 6-16/4 * * 1-5", last=after(minutes=30)), after(hours=24, minutes=31),
                 timedelta(hours=3, minutes=59), id="complex schedule skipping weekend"),
    pytest.param(cronjob("30 10,11,12 * * 1-5", last=after(minutes=30)), after(hours=30, minutes=30),
                 timedelta(hours=66), id="another complex schedule skipping weekend"),
    pytest.param(cronjob("0 12 * * 4", last=after(hours=2)), after(days=19, hours=1, minutes=30),
                 timedelta(hours=48, minutes=30), id="once a week cronjob, missed two runs"),
    pytest.param(cronjob("0 12 * * 5"), after(hours=6), timedelta(hours=20), id="no previous run of a cronjob"),
])
def test_next_schedule_delay(cj, now, want):
    got = next_schedule_delay(cj, now, cron.parse_standard(cj["spec"]["schedule"]))
    assert got == want + timedelta(milliseconds=100)


def test_job_from_template_name_annotation_owner():
    cj = cronjob("*/1 * * * *", timeZone="Europe/Berlin")
    job = job_from_template(cj, datetime(2026, 12, 5, 4, 0, tzinfo=UTC))
    assert job["metadata"]["name"] == f"hello-{int(datetime(2026, 12, 5, 4, 0, tzinfo=UTC).timestamp()) // 60}"
    assert job["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == "2026-12-05T05:00:00+01:00"
    assert job["metadata"]["labels"] == {"app": "hello"}
    assert job["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "hello",
                                                   "uid": "cj-uid", "controller": True, "blockOwnerDeletion": True}]
    utc = job_from_template(cronjob("*/1 * * * *"), datetime(2026, 12, 5, 4, 0, tzinfo=UTC))
    assert utc["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == "2026-12-05T04:00:00Z"


def finished_job(name: str, ctype: str, start: datetime) -> dict:
    return {"metadata": {"name": name, "uid": name, "creationTimestamp": stamp(start)},
            "status": {"startTime": stamp(start), "conditions": [{"type": ctype, "status": "True"}]}}


def test_jobs_to_clean_keeps_the_newest_per_limit():
    jobs = [finished_job(f"ok-{i}", "Complete", after(minutes=i)) for i in range(5)]
    jobs += [finished_job(f"bad-{i}", "Failed", after(minutes=i)) for i in range(3)]
    jobs.append({"metadata": {"name": "running", "uid": "r"}, "status": {}})
    doomed = {j["metadata"]["name"] for j in jobs_to_clean(cronjob("* * * * *"), jobs)}
    assert doomed == {"ok-0", "ok-1", "bad-0", "bad-1"}


# --- the controllers over FakeApi -----------------------------------------------------------------
class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def jobs_of(api) -> list[dict]:
    return api.objects("batch/v1", "jobs")


def the_cronjob(api) -> dict:
    [cj] = api.objects("batch/v1", "cronjobs")
    return cj


async def complete(api, job: dict, when: datetime) -> None:
    job["status"] = {"startTime": stamp(when), "completionTime": stamp(when), "succeeded": 1,
                     "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": stamp(when)}]}
    await api.update("batch/v1", "jobs", job, namespace="default", subresource="status")


T0 = datetime(2026, 12, 5, 3, 58, 30, tzinfo=UTC)
SLOT1 = datetime(2026, 12, 5, 3, 59, tzinfo=UTC)
SLOT2 = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)


async def start_cronjob(harness, clock, **spec) -> CronJobController:
    body = cronjob("*/1 * * * *", created=T0, **spec)
    del body["metadata"]["uid"], body["metadata"]["creationTimestamp"]
    seeded = harness.api.seed("batch/v1", "cronjobs", body)
    seeded["metadata"]["creationTimestamp"] = stamp(T0)
    harness.api.store[("batch/v1", "cronjobs")][("default", "hello")] = seeded
    ctrl = CronJobController(harness.api, harness.informers, clock=clock)
    await harness.start(ctrl)
    return ctrl


async def tick(harness, ctrl, clock, when: datetime) -> None:
    clock.now = when
    ctrl.queue.add("default/hello")
    await harness.until(lambda: ctrl.queue._queue.empty() and not ctrl.queue._processing)


async def test_every_minute_creates_one_job_per_slot(harness):
    clock = FakeClock(T0)
    ctrl = await start_cronjob(harness, clock)
    await tick(harness, ctrl, clock, T0 + timedelta(seconds=10))
    assert not jobs_of(harness.api)  # 03:58:40: the first slot (03:59) has not come
    await tick(harness, ctrl, clock, SLOT1 + timedelta(seconds=1))
    [job] = await harness.until(lambda: jobs_of(harness.api))
    assert job["metadata"]["name"] == f"hello-{int(SLOT1.timestamp()) // 60}"
    assert job["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == "2026-12-05T03:59:00Z"
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"
    cj = await harness.until(lambda: (cj := the_cronjob(harness.api)) and cj["status"].get("active") and cj)
    assert cj["status"]["lastScheduleTime"] == "2026-12-05T03:59:00Z"
    assert [a["name"] for a in cj["status"]["active"]] == [job["metadata"]["name"]]
    # the same slot again (a restart, a resync): no second Job
    await tick(harness, ctrl, clock, SLOT1 + timedelta(seconds=30))
    assert len(jobs_of(harness.api)) == 1
    await complete(harness.api, job, SLOT1 + timedelta(seconds=20))
    cj = await harness.until(lambda: (cj := the_cronjob(harness.api)) and not cj["status"].get("active") and cj)
    assert cj["status"]["lastSuccessfulTime"] == "2026-12-05T03:59:20Z"
    await tick(harness, ctrl, clock, SLOT2 + timedelta(seconds=1))
    assert len(jobs_of(harness.api)) == 2


async def test_forbid_skips_while_a_job_runs(harness):
    clock = FakeClock(T0)
    ctrl = await start_cronjob(harness, clock, concurrencyPolicy="Forbid")
    await tick(harness, ctrl, clock, SLOT1 + timedelta(seconds=1))
    await harness.until(lambda: the_cronjob(harness.api)["status"].get("active"))
    await tick(harness, ctrl, clock, SLOT2 + timedelta(seconds=1))
    assert len(jobs_of(harness.api)) == 1


async def test_replace_deletes_the_running_job(harness):
    clock = FakeClock(T0)
    ctrl = await start_cronjob(harness, clock, concurrencyPolicy="Replace")
    await tick(harness, ctrl, clock, SLOT1 + timedelta(seconds=1))
    [first] = await harness.until(lambda: jobs_of(harness.api))
    await harness.until(lambda: the_cronjob(harness.api)["status"].get("active"))
    await tick(harness, ctrl, clock, SLOT2 + timedelta(seconds=1))
    [second] = await harness.until(lambda: (js := jobs_of(harness.api)) and
                                   js[0]["metadata"]["name"] != first["metadata"]["name"] and js)
    assert second["metadata"]["name"] == f"hello-{int(SLOT2.timestamp()) // 60}"


async def test_allow_runs_jobs_side_by_side_and_suspend_stops(harness):
    clock = FakeClock(T0)
    ctrl = await start_cronjob(harness, clock)
    await tick(harness, ctrl, clock, SLOT1 + timedelta(seconds=1))
    await harness.until(lambda: the_cronjob(harness.api)["status"].get("active"))
    await tick(harness, ctrl, clock, SLOT2 + timedelta(seconds=1))
    await harness.until(lambda: len(the_cronjob(harness.api)["status"].get("active") or []) == 2)
    await harness.api.patch("batch/v1", "cronjobs", "hello", {"spec": {"suspend": True}}, namespace="default")
    await harness.until(lambda: the_cronjob(harness.api)["spec"]["suspend"])
    await tick(harness, ctrl, clock, SLOT2 + timedelta(minutes=3))
    assert len(jobs_of(harness.api)) == 2


async def test_starting_deadline_missed(harness):
    clock = FakeClock(T0)
    ctrl = await start_cronjob(harness, clock, startingDeadlineSeconds=10)
    await tick(harness, ctrl, clock, SLOT1 + timedelta(seconds=30))  # 30 s late for a 10 s deadline
    assert not jobs_of(harness.api)


async def test_history_limit_deletes_old_finished_jobs(harness):
    clock = FakeClock(T0)
    ctrl = await start_cronjob(harness, clock, successfulJobsHistoryLimit=1)
    for i in range(3):
        await tick(harness, ctrl, clock, SLOT1 + timedelta(minutes=i, seconds=1))
        job = await harness.until(lambda i=i: [j for j in jobs_of(harness.api) if not j.get("status")])
        await complete(harness.api, job[0], SLOT1 + timedelta(minutes=i, seconds=20))
    await harness.until(lambda: len(jobs_of(harness.api)) == 1)
    [kept] = jobs_of(harness.api)
    assert kept["metadata"]["name"] == f"hello-{int((SLOT1 + timedelta(minutes=2)).timestamp()) // 60}"


async def test_ttl_after_finished_deletes_the_job(harness):
    clock = FakeClock(T0)
    harness.api.seed("batch/v1", "jobs", {"metadata": {"name": "done", "namespace": "default"},
                                          "spec": {"ttlSecondsAfterFinished": 60}})
    harness.api.seed("batch/v1", "jobs", {"metadata": {"name": "keep", "namespace": "default"}, "spec": {}})
    ctrl = TTLAfterFinishedController(harness.api, harness.informers, clock=clock)
    await harness.start(ctrl)
    for name in ("done", "keep"):
        job = next(j for j in jobs_of(harness.api) if j["metadata"]["name"] == name)
        await complete(harness.api, job, T0)
    await tick_ttl(harness, ctrl, clock, T0 + timedelta(seconds=59))
    assert len(jobs_of(harness.api)) == 2
    await tick_ttl(harness, ctrl, clock, T0 + timedelta(seconds=61))
    await harness.until(lambda: [j["metadata"]["name"] for j in jobs_of(harness.api)] == ["keep"])


async def tick_ttl(harness, ctrl, clock, when: datetime) -> None:
    clock.now = when
    for key in ("default/done", "default/keep"):
        ctrl.queue.add(key)
    await harness.until(lambda: ctrl.queue._queue.empty() and not ctrl.queue._processing)
