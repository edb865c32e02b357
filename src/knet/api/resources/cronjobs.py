"""batch/v1 CronJob (+ status): SetDefaults_CronJob and ValidateCronJobCreate/Update
(k8s.io/kubernetes pkg/apis/batch/validation), schedules parsed as robfig/cron's ParseStandard."""

from __future__ import annotations

import re

from knet import cron
from knet.api.errors import FieldError, invalid, not_supported, required
from knet.api.printing import age, containers_images, selector_text
from knet.api.registry import Column, ResourceType
from knet.api.resources import jobs, workloads

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Schedule", description="The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
    Column("Timezone", description="The time zone name for the given schedule, see "
                                   "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
    Column("Suspend", type="boolean", description="This flag tells the controller to suspend subsequent executions, "
                                                  "it does not apply to already started executions.  Defaults to false."),
    Column("Active", type="integer", description="A list of pointers to currently running jobs."),
    Column("Last Schedule", description="Information when was the last time the job was successfully scheduled."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
    Column("Containers", priority=1, description="Names of each container in the template."),
    Column("Images", priority=1, description="Images referenced by each container in the template."),
    Column("Selector", priority=1, description="A label query over pods that should match the pod count."),
)
# A Job's name is the CronJob's plus "-<minutes since the epoch>" (11 characters) and a label value
# (63 at most): upstream refuses longer CronJob names on create.
MAX_NAME = 52
_TZ_PART = re.compile(r"^[A-Za-z.\-_0-9+]{1,14}$")


def defaults(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not spec.get("concurrencyPolicy"):
        spec["concurrencyPolicy"] = "Allow"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1
    job_template = spec.setdefault("jobTemplate", {})
    job_template.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    workloads.template_defaults(job_template.setdefault("spec", {}))
    obj.setdefault("status", {})


def schedule_errors(schedule: str, allow_tz: bool, time_zone: str | None) -> list[str]:
    out = []
    try:
        cron.parse_standard(schedule)
    except cron.CronError as exc:
        out.append(str(exc))
    if allow_tz and "TZ" in schedule and time_zone is not None:
        out.append("cannot use both timeZone field and TZ or CRON_TZ in schedule")
    elif not allow_tz and "TZ" in schedule:
        out.append("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    return out


def time_zone_errors(tz: str) -> list[str]:
    if tz == "":
        return ["timeZone must be nil or non-empty string"]
    for part in tz.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_PART.match(part):
            return [f"unknown time zone {tz}"]
    if tz.lower() == "local":
        return ["timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"]
    try:
        cron.load_location(tz)
    except cron.CronError as exc:
        return [str(exc)]
    return []


def validate_job_template(template: dict, path: str) -> list[FieldError]:
    """ValidateJobTemplateSpec: a Job spec whose selector the Job strategy will generate."""
    spec = template.get("spec") or {}
    errs = jobs.validate_job_spec_body(spec, f"{path}.spec")
    if spec.get("selector") is not None:
        errs.append(invalid(f"{path}.spec.selector", spec["selector"], "`selector` will be auto-generated"))
    if spec.get("manualSelector"):
        errs.append(not_supported(f"{path}.spec.manualSelector", True, ["nil", "false"]))
    return errs


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    if old is not None and obj.get("spec") is old.get("spec"):
        return []  # a status write
    spec, meta = obj.get("spec") or {}, obj.get("metadata") or {}
    old_spec = (old or {}).get("spec") or {}
    errs: list[FieldError] = []
    schedule = spec.get("schedule") or ""
    if not schedule:
        errs.append(required("spec.schedule"))
    else:
        allow_tz = old is not None and "TZ" in (old_spec.get("schedule") or "")
        for msg in schedule_errors(schedule, allow_tz, spec.get("timeZone")):
            errs.append(invalid("spec.schedule", schedule, msg))
    sds = spec.get("startingDeadlineSeconds")
    if isinstance(sds, int) and sds < 0:
        errs.append(invalid("spec.startingDeadlineSeconds", sds, "must be greater than or equal to 0"))
    tz = spec.get("timeZone")
    if tz is not None and (old is None or old_spec.get("timeZone") != tz):
        for msg in time_zone_errors(tz):
            errs.append(invalid("spec.timeZone", tz, msg))
    policy = spec.get("concurrencyPolicy")
    if not policy:
        errs.append(required("spec.concurrencyPolicy"))
    elif policy not in ("Allow", "Forbid", "Replace"):
        errs.append(not_supported("spec.concurrencyPolicy", policy, ["Allow", "Forbid", "Replace"]))
    errs += validate_job_template(spec.get("jobTemplate") or {}, "spec.jobTemplate")
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        value = spec.get(key)
        if isinstance(value, int) and value < 0:
            errs.append(invalid(f"spec.{key}", value, "must be greater than or equal to 0"))
    name = meta.get("name") or ""
    if old is None and len(name) > MAX_NAME:
        errs.append(invalid("metadata.name", name, f"must be no more than {MAX_NAME} characters"))
    return errs


def row(cj: dict) -> list:
    spec, status, meta = cj.get("spec") or {}, cj.get("status") or {}, cj.get("metadata") or {}
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    containers, images = containers_images((job_spec.get("template") or {}).get("spec"))
    last = status.get("lastScheduleTime")
    return [meta.get("name", ""), spec.get("schedule", ""), spec.get("timeZone") or "<none>",
            "True" if spec.get("suspend") else "False", len(status.get("active") or []), age(last) if last else "<none>",
            age(meta.get("creationTimestamp")), containers, images, selector_text(job_spec.get("selector"))]


RESOURCE = ResourceType(
    group="batch", version="v1", resource="cronjobs", kind="CronJob", short_names=("cj",), categories=("all",),
    subresources=("status",), model="V1CronJob", defaults=defaults, validate=validate, columns=COLUMNS, row=row,
    has_generation=True,
)
