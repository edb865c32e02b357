"""batch/v1 Job (+ status): SetDefaults_Job, the registry strategy's generated selector, and
ValidateJob/ValidateJobUpdate (k8s.io/kubernetes pkg/apis/batch/validation) with their wording."""

from __future__ import annotations

import re

from knet.api.errors import FieldError, invalid, not_supported, required
from knet.api.printing import age, containers_images, human_duration, now, parse_time, selector_text
from knet.api.registry import Column, ResourceType
from knet.api.resources import pods, workloads
from knet.api.selectors import from_label_selector_object
from knet.api.validation import qualified_name_errors

# Labels the Job strategy puts on the pod template (batch/v1 types.go); pods carry them.
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"

MAX_PARALLELISM_INDEXED = 100_000
MAX_FAILURE_POLICY_RULES = 20
MAX_EXIT_CODE_VALUES = 255
MAX_CONDITION_PATTERNS = 20
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Status", description="Status of the job."),
    Column("Completions", description="The number of pods which reached phase Succeeded."),
    Column("Duration", description="Time required to complete the job."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
    Column("Containers", priority=1, description="Names of each container in the template."),
    Column("Images", priority=1, description="Images referenced by each container in the template."),
    Column("Selector", priority=1, description="A label query over pods that should match the pod count."),
)


# --- defaults ----------------------------------------------------------------------------------
def job_spec_defaults(spec: dict) -> None:
    """SetDefaults_Job's spec part."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    if spec.get("completionMode") is None:
        spec["completionMode"] = "NonIndexed"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    policy = spec.get("podFailurePolicy")
    if isinstance(policy, dict):
        for rule in policy.get("rules") or []:
            for pattern in rule.get("onPodConditions") or []:
                if isinstance(pattern, dict) and not pattern.get("status"):
                    pattern["status"] = "True"
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if policy is not None else "TerminatingOrFailed"


def defaults(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    job_spec_defaults(spec)
    workloads.template_defaults(spec)
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    meta = obj.setdefault("metadata", {})
    if labels and not meta.get("labels"):
        meta["labels"] = dict(labels)
    obj.setdefault("status", {})


def generate_selector(obj: dict) -> None:
    """The Job strategy's PrepareForCreate (unless spec.manualSelector): the job-name and
    controller-uid labels on the template, and a selector on the uid."""
    spec = obj.setdefault("spec", {})
    if spec.get("manualSelector"):
        return
    meta = obj["metadata"]
    template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
    labels = template_meta.get("labels") or {}
    for key in (LEGACY_JOB_NAME, JOB_NAME):
        labels.setdefault(key, meta.get("name", ""))
    for key in (LEGACY_CONTROLLER_UID, CONTROLLER_UID):
        labels.setdefault(key, meta.get("uid", ""))
    template_meta["labels"] = labels
    selector = spec.get("selector") or {}
    match_labels = selector.get("matchLabels") or {}
    match_labels.setdefault(CONTROLLER_UID, meta.get("uid", ""))
    selector["matchLabels"] = match_labels
    spec["selector"] = selector
    # SetDefaults_Job copies the template's labels to a Job without labels; upstream defaults again
    # on every read from storage, so the generated ones show there too.
    if not meta.get("labels"):
        meta["labels"] = dict(labels)


# --- validation --------------------------------------------------------------------------------
def _nonnegative(spec: dict, key: str, path: str) -> list[FieldError]:
    value = spec.get(key)
    if isinstance(value, int) and value < 0:
        return [invalid(f"{path}.{key}", value, "must be greater than or equal to 0")]
    return []


def validate_pod_template(template: dict, path: str) -> list[FieldError]:
    """ValidatePodTemplateSpec through the pod's own validation, its paths under `path`; the
    restart policy is the caller's to check."""
    errs = []
    for e in pods.validate({"spec": (template or {}).get("spec") or {}}, None):
        if e.field == "spec.restartPolicy":
            continue
        errs.append(FieldError(e.type, f"{path}.{e.field}", e.value, e.detail))
    return errs


def validate_job_spec_body(spec: dict, path: str) -> list[FieldError]:
    """validateJobSpec: what a Job's and a CronJob's jobTemplate's specs share."""
    errs: list[FieldError] = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished",
                "backoffLimitPerIndex", "maxFailedIndexes"):
        errs += _nonnegative(spec, key, path)
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        errs.append(required(f"{path}.backoffLimitPerIndex", "when maxFailedIndexes is specified"))
    mode = spec.get("completionMode")
    if mode is not None:
        if mode not in ("NonIndexed", "Indexed"):
            errs.append(not_supported(f"{path}.completionMode", mode, ["NonIndexed", "Indexed"]))
        if mode == "Indexed":
            if spec.get("completions") is None:
                errs.append(required(f"{path}.completions", "when completion mode is Indexed"))
            par = spec.get("parallelism")
            if isinstance(par, int) and par > MAX_PARALLELISM_INDEXED:
                errs.append(invalid(f"{path}.parallelism", par,
                                    f"must be less than or equal to {MAX_PARALLELISM_INDEXED} when completion mode is Indexed"))
            comp, mfi = spec.get("completions"), spec.get("maxFailedIndexes")
            if isinstance(comp, int) and isinstance(mfi, int) and mfi > comp:
                errs.append(invalid(f"{path}.maxFailedIndexes", mfi, "must be less than or equal to completions"))
    if mode in (None, "NonIndexed"):
        for key in ("backoffLimitPerIndex", "maxFailedIndexes"):
            if spec.get(key) is not None:
                errs.append(invalid(f"{path}.{key}", spec[key], "requires indexed completion mode"))
    template = spec.get("template") or {}
    policy = spec.get("podFailurePolicy")
    if policy is not None:
        errs += _validate_pod_failure_policy(spec, policy, f"{path}.podFailurePolicy")
    if spec.get("successPolicy") is not None and mode != "Indexed":
        errs.append(invalid(f"{path}.successPolicy", spec["successPolicy"], "requires indexed completion mode"))
    replacement = spec.get("podReplacementPolicy")
    if replacement is not None:
        allowed = ["Failed"] if policy is not None else ["Failed", "TerminatingOrFailed"]
        if replacement not in allowed:
            errs.append(not_supported(f"{path}.podReplacementPolicy", replacement, allowed))
    errs += validate_pod_template(template, f"{path}.template")
    restart = (template.get("spec") or {}).get("restartPolicy")
    rp_path = f"{path}.template.spec.restartPolicy"
    if restart in ("Always", "", None):
        errs.append(required(rp_path, 'valid values: "OnFailure", "Never"'))
    elif restart not in ("OnFailure", "Never"):
        errs.append(not_supported(rp_path, restart, ["OnFailure", "Never"]))
    elif policy is not None and restart != "Never":
        errs.append(invalid(rp_path, restart, 'only "Never" is supported when podFailurePolicy is specified'))
    return errs


_ACTIONS = ["Count", "FailIndex", "FailJob", "Ignore"]


class _Omit(str):
    """field.OmitValueType: the error names no value."""


def _validate_pod_failure_policy(spec: dict, policy: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    rules = policy.get("rules") or []
    if len(rules) > MAX_FAILURE_POLICY_RULES:
        errs.append(FieldError("TooMany", f"{path}.rules", len(rules),
                               f"{len(rules)}: must have at most {MAX_FAILURE_POLICY_RULES} items"))
    template_spec = (spec.get("template") or {}).get("spec") or {}
    names = {c.get("name") for c in (template_spec.get("containers") or []) + (template_spec.get("initContainers") or [])}
    for i, rule in enumerate(rules):
        rp = f"{path}.rules[{i}]"
        action = rule.get("action")
        if not action:
            errs.append(required(f"{rp}.action", "valid values: [" + " ".join(f'"{a}"' for a in _ACTIONS) + "]"))
        elif action == "FailIndex":
            if spec.get("backoffLimitPerIndex") is None:
                errs.append(invalid(f"{rp}.action", action, "requires the backoffLimitPerIndex to be set"))
        elif action not in _ACTIONS:
            errs.append(not_supported(f"{rp}.action", action, _ACTIONS))
        on_codes = rule.get("onExitCodes")
        on_conditions = rule.get("onPodConditions") or []
        if on_codes is not None:
            errs += _validate_on_exit_codes(on_codes, f"{rp}.onExitCodes", names)
        for j, pattern in enumerate(on_conditions):
            pp = f"{rp}.onPodConditions[{j}]"
            for msg in qualified_name_errors(str(pattern.get("type") or "")):
                errs.append(invalid(f"{pp}.type", pattern.get("type") or "", msg))
            status = pattern.get("status")
            if not status:
                errs.append(required(f"{pp}.status", 'valid values: ["False" "True" "Unknown"]'))
            elif status not in ("False", "True", "Unknown"):
                errs.append(not_supported(f"{pp}.status", status, ["False", "True", "Unknown"]))
        if len(on_conditions) > MAX_CONDITION_PATTERNS:
            errs.append(FieldError("TooMany", f"{rp}.onPodConditions", len(on_conditions),
                                   f"{len(on_conditions)}: must have at most {MAX_CONDITION_PATTERNS} items"))
        if on_codes is not None and on_conditions:
            errs.append(FieldError("Invalid", rp, _Omit(""), "specifying both OnExitCodes and OnPodConditions is not supported"))
        if on_codes is None and not on_conditions:
            errs.append(FieldError("Invalid", rp, _Omit(""), "specifying one of OnExitCodes and OnPodConditions is required"))
    return errs


def _validate_on_exit_codes(req: dict, path: str, container_names: set) -> list[FieldError]:
    errs: list[FieldError] = []
    op = req.get("operator")
    if not op:
        errs.append(required(f"{path}.operator", 'valid values: ["In" "NotIn"]'))
    elif op not in ("In", "NotIn"):
        errs.append(not_supported(f"{path}.operator", op, ["In", "NotIn"]))
    name = req.get("containerName")
    if name is not None and name not in container_names:
        errs.append(invalid(f"{path}.containerName", name,
                            "must be one of the container or initContainer names in the pod template"))
    values = req.get("values") or []
    if not values:
        errs.append(invalid(f"{path}.values", _Raw("[]int32(nil)"), "at least one value is required"))
    elif len(values) > MAX_EXIT_CODE_VALUES:
        errs.append(FieldError("TooMany", f"{path}.values", len(values),
                                   f"{len(values)}: must have at most {MAX_EXIT_CODE_VALUES} items"))
    seen: set[int] = set()
    ordered = True
    for j, v in enumerate(values):
        if op == "In" and v == 0:
            errs.append(invalid(f"{path}.values[{j}]", v, "must not be 0 for the In operator"))
        if v in seen:
            errs.append(FieldError("Duplicate", f"{path}.values[{j}]", v))
        seen.add(v)
        if j > 0 and values[j - 1] > v:
            ordered = False
    if not ordered:
        errs.append(invalid(f"{path}.values", _Raw("[]int32{" + ", ".join(str(v) for v in values) + "}"), "must be ordered"))
    return errs


class _Raw(str):
    """A value printed verbatim (a Go literal) in a field error."""


def _validate_generated_selector(obj: dict) -> list[FieldError]:
    spec, meta = obj.get("spec") or {}, obj.get("metadata") or {}
    if spec.get("manualSelector") or spec.get("selector") is None:
        return []
    errs: list[FieldError] = []
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    uid, name = meta.get("uid", ""), meta.get("name", "")
    for key, want in ((LEGACY_CONTROLLER_UID, uid), (LEGACY_JOB_NAME, name), (CONTROLLER_UID, uid), (JOB_NAME, name)):
        have = labels.get(key)
        lp = f"spec.template.metadata.labels[{key}]"
        if have is None:
            errs.append(required(lp, want))
        elif have != want:
            errs.append(invalid(lp, _Raw(workloads.go_map(labels)), f"must be '{want}'"))
    expected = {LEGACY_CONTROLLER_UID: uid, LEGACY_JOB_NAME: name, CONTROLLER_UID: uid, JOB_NAME: name}
    sel = _selector(spec["selector"])
    if sel is not None and not sel.matches(expected):
        errs.append(invalid("spec.selector", spec["selector"], "`selector` not auto-generated"))
    return errs


def _selector(selector: dict):
    """The parsed selector; None for one that does not parse (an unknown operator: the shared
    selector grammar raises a ValueError for it)."""
    try:
        return from_label_selector_object(selector)
    except ValueError:
        return None


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    spec, meta = obj.get("spec") or {}, obj.get("metadata") or {}
    if old is not None and obj.get("spec") is old.get("spec"):
        return validate_status(obj, old)  # a status write: the stored spec was validated when written
    errs: list[FieldError] = []
    if old is None:
        errs += _validate_generated_selector(obj)
    errs += validate_job_spec_body(spec, "spec")
    selector = spec.get("selector")
    if selector is None:
        errs.append(required("spec.selector"))
    else:
        sel = _selector(selector)
        for i, expr in enumerate(selector.get("matchExpressions") or []):  # ValidateLabelSelector
            if expr.get("operator") not in ("In", "NotIn", "Exists", "DoesNotExist"):
                sel = None
                errs.append(not_supported(f"spec.selector.matchExpressions[{i}].operator", expr.get("operator"),
                                          ["DoesNotExist", "Exists", "In", "NotIn"]))
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if sel is not None and not sel.matches(labels):
            errs.append(FieldError("Invalid", "spec.template.metadata.labels", None,
                                   "`selector` does not match template `labels`"))
    completions = spec.get("completions")
    if spec.get("completionMode") == "Indexed" and isinstance(completions, int) and completions > 0:
        hostname = f"{meta.get('name', '')}-{completions - 1}"
        if len(hostname) > 63 or not DNS1123_LABEL.match(hostname):
            errs.append(invalid("metadata.name", meta.get("name", ""),
                                f"will not able to create pod with invalid DNS label: {hostname}"))
    if old is not None:
        old_spec = old.get("spec") or {}
        for key in ("completions", "selector", "completionMode", "podFailurePolicy", "backoffLimitPerIndex",
                    "managedBy", "successPolicy"):
            if spec.get(key) != old_spec.get(key):
                errs.append(invalid(f"spec.{key}", spec.get(key), "field is immutable"))
        if _mutable_template_view(spec, old_spec) != _mutable_template_view(old_spec, old_spec):
            errs.append(invalid("spec.template", _Raw("core.PodTemplateSpec{...}"), "field is immutable"))
    return workloads.fix_template_label_error(errs, obj)


def _mutable_template_view(spec: dict, old_spec: dict) -> dict:
    """The template with what a suspended Job that never started may change (node affinity, node
    selector, tolerations, labels, annotations, scheduling gates: AllowMutableSchedulingDirectives)
    taken from the old one, when that is allowed."""
    template = dict(spec.get("template") or {})
    suspended_never_started = bool(old_spec.get("suspend"))
    if not suspended_never_started:
        return template
    old_template = old_spec.get("template") or {}
    pod_spec = dict(template.get("spec") or {})
    old_pod_spec = old_template.get("spec") or {}
    for key in ("nodeSelector", "tolerations", "schedulingGates", "affinity"):
        if key in old_pod_spec:
            pod_spec[key] = old_pod_spec[key]
        else:
            pod_spec.pop(key, None)
    meta = dict(template.get("metadata") or {})
    for key in ("labels", "annotations"):
        if key in (old_template.get("metadata") or {}):
            meta[key] = old_template["metadata"][key]
        else:
            meta.pop(key, None)
    template["spec"], template["metadata"] = pod_spec, meta
    return template


def _true(conditions: list, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in conditions or [])


def validate_status(obj: dict, old: dict) -> list[FieldError]:
    """ValidateJobStatusUpdate: counters, and the terminal conditions' rules."""
    status, old_status = obj.get("status") or {}, old.get("status") or {}
    errs: list[FieldError] = []
    for key in ("active", "succeeded", "failed", "ready", "terminating"):
        errs += _nonnegative(status, key, "status")
    conditions, old_conditions = status.get("conditions") or [], old_status.get("conditions") or []
    complete, failed = _true(conditions, "Complete"), _true(conditions, "Failed")
    if complete and failed:
        errs.append(FieldError("Invalid", "status.conditions", _Omit(""), "cannot set Complete=True and Failed=true conditions"))
    if complete and _true(conditions, "FailureTarget"):
        errs.append(FieldError("Invalid", "status.conditions", _Omit(""),
                               "cannot set Complete=True and FailureTarget=true conditions"))
    if status.get("completionTime") and not complete:
        errs.append(invalid("status.completionTime", status["completionTime"],
                            "cannot set completionTime when there is no Complete=True condition"))
    if complete and not status.get("completionTime"):
        errs.append(required("status.completionTime", "completionTime is required for Complete jobs"))
    if (complete or failed) and (status.get("active") or 0) > 0:
        errs.append(invalid("status.active", status.get("active"), "active>0 is invalid for finished job"))
    for ctype in ("Failed", "Complete", "FailureTarget"):
        if _true(old_conditions, ctype) and not _true(conditions, ctype):
            errs.append(FieldError("Invalid", "status.conditions", _Omit(""),
                                   f"cannot disable the terminal {ctype}=True condition"))
    if (status.get("failed") or 0) < (old_status.get("failed") or 0):
        errs.append(invalid("status.failed", status.get("failed") or 0, "cannot decrease the failed counter"))
    if (status.get("succeeded") or 0) < (old_status.get("succeeded") or 0):
        errs.append(invalid("status.succeeded", status.get("succeeded") or 0, "cannot decrease the succeeded counter"))
    ready = status.get("ready")
    if isinstance(ready, int) and ready > (status.get("active") or 0):
        errs.append(invalid("status.ready", ready, "cannot set more ready pods than active"))
    return errs


# --- table -------------------------------------------------------------------------------------
def job_status_word(job: dict) -> str:
    """printJob's STATUS cell."""
    conditions = (job.get("status") or {}).get("conditions") or []
    if _true(conditions, "Complete"):
        return "Complete"
    if _true(conditions, "Failed"):
        return "Failed"
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    if _true(conditions, "Suspended"):
        return "Suspended"
    if _true(conditions, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def completions_cell(spec: dict, status: dict) -> str:
    succeeded = status.get("succeeded") or 0
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = spec.get("parallelism") or 0
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def duration_cell(status: dict) -> str:
    start = parse_time(status.get("startTime"))
    if start is None:
        return ""
    end = parse_time(status.get("completionTime")) or now()
    return human_duration((end - start).total_seconds())


def row(job: dict) -> list:
    spec, status, meta = job.get("spec") or {}, job.get("status") or {}, job.get("metadata") or {}
    containers, images = containers_images((spec.get("template") or {}).get("spec"))
    return [meta.get("name", ""), job_status_word(job), completions_cell(spec, status), duration_cell(status),
            age(meta.get("creationTimestamp")), containers, images, selector_text(spec.get("selector"))]


RESOURCE = ResourceType(
    group="batch", version="v1", resource="jobs", kind="Job", categories=("all",), subresources=("status",),
    model="V1Job", defaults=defaults, admit=generate_selector, validate=validate, columns=COLUMNS, row=row,
    has_generation=True,
)
