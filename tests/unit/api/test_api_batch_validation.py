"""Job and CronJob defaults and validation, by tables after upstream's
pkg/apis/batch/validation/validation_test.go (TestValidateJob, TestValidateJobUpdate,
TestValidateJobUpdateStatus, TestValidateCronJob) and pkg/apis/batch/v1/defaults_test.go."""

from __future__ import annotations

import copy

import pytest

from knet.api.resources import cronjobs, jobs

UID = "1a2b3c"
TEMPLATE = {"metadata": {"labels": {"a": "b"}},
            "spec": {"restartPolicy": "OnFailure", "dnsPolicy": "ClusterFirst",
                     "containers": [{"name": "abc", "image": "image", "imagePullPolicy": "IfNotPresent"}]}}


def new_job(name: str = "myjob", **spec) -> dict:
    """A Job as create sees it: defaults, then the generated selector (PrepareForCreate)."""
    obj = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default", "uid": UID},
           "spec": {"template": copy.deepcopy(TEMPLATE), **copy.deepcopy(spec)}}
    jobs.defaults(obj)
    jobs.generate_selector(obj)
    return obj


def messages(errs) -> list[str]:
    return [str(e) for e in errs]


# --- SetDefaults_Job (defaults_test.go TestSetDefaultJob) ------------------------------------------
@pytest.mark.parametrize(("spec", "want"), [
    pytest.param({}, {"completions": 1, "parallelism": 1, "backoffLimit": 6}, id="both-unset"),
    pytest.param({"completions": 5}, {"completions": 5, "parallelism": 1, "backoffLimit": 6}, id="completions-set"),
    pytest.param({"parallelism": 3}, {"completions": None, "parallelism": 3, "backoffLimit": 6}, id="work-queue"),
    pytest.param({"completionMode": "Indexed", "completions": 4, "backoffLimitPerIndex": 1},
                 {"completions": 4, "parallelism": 1, "backoffLimit": 2147483647}, id="per-index-limit"),
])
def test_job_defaults(spec, want):
    job = new_job(**spec)["spec"]
    assert {k: job.get(k) for k in want} == want
    assert job["suspend"] is False
    assert job["podReplacementPolicy"] == "TerminatingOrFailed"


def test_job_defaults_with_failure_policy():
    job = new_job(podFailurePolicy={"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]})
    assert job["spec"]["podReplacementPolicy"] == "Failed"
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"] == "True"


def test_generated_selector_and_labels():
    job = new_job()
    labels = {"a": "b", "controller-uid": UID, "job-name": "myjob",
              "batch.kubernetes.io/controller-uid": UID, "batch.kubernetes.io/job-name": "myjob"}
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": UID}}
    assert jobs.validate(job, None) == []


def test_manual_selector_is_kept():
    job = new_job(manualSelector=True, selector={"matchLabels": {"a": "b"}})
    assert job["spec"]["selector"] == {"matchLabels": {"a": "b"}}
    assert "controller-uid" not in job["spec"]["template"]["metadata"]["labels"]
    assert jobs.validate(job, None) == []


def with_template(**pod_spec) -> dict:
    t = copy.deepcopy(TEMPLATE)
    t["spec"].update(pod_spec)
    return t


# --- ValidateJob error cases ------------------------------------------------------------------
JOB_ERRORS = [
    pytest.param({"parallelism": -1}, "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                 id="negative-parallelism"),
    pytest.param({"completions": -1}, "spec.completions: Invalid value: -1: must be greater than or equal to 0",
                 id="negative-completions"),
    pytest.param({"activeDeadlineSeconds": -1},
                 "spec.activeDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0",
                 id="negative-deadline"),
    pytest.param({"backoffLimit": -1}, "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
                 id="negative-backoff"),
    pytest.param({"ttlSecondsAfterFinished": -1},
                 "spec.ttlSecondsAfterFinished: Invalid value: -1: must be greater than or equal to 0",
                 id="negative-ttl"),
    pytest.param({"template": with_template(restartPolicy="Always")},
                 'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"',
                 id="restart-always"),
    pytest.param({"template": with_template(restartPolicy="Sometimes")},
                 'spec.template.spec.restartPolicy: Unsupported value: "Sometimes": supported values: "OnFailure", '
                 '"Never"', id="restart-unknown"),
    pytest.param({"completionMode": "Indexed", "parallelism": 2},
                 "spec.completions: Required value: when completion mode is Indexed", id="indexed-no-completions"),
    pytest.param({"completionMode": "Indexed", "completions": 2, "parallelism": 100001},
                 "spec.parallelism: Invalid value: 100001: must be less than or equal to 100000 when completion mode "
                 "is Indexed", id="indexed-parallelism"),
    pytest.param({"completionMode": "Indexed", "completions": 2, "backoffLimitPerIndex": 1, "maxFailedIndexes": 3},
                 "spec.maxFailedIndexes: Invalid value: 3: must be less than or equal to completions",
                 id="max-failed-indexes"),
    pytest.param({"backoffLimitPerIndex": 1}, "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed "
                 "completion mode", id="per-index-non-indexed"),
    pytest.param({"maxFailedIndexes": 1}, "spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is "
                 "specified", id="max-failed-without-per-index"),
    pytest.param({"successPolicy": {"rules": [{"succeededCount": 1}]}},
                 'spec.successPolicy: Invalid value: {"rules":[{"succeededCount":1}]}: requires indexed completion mode',
                 id="success-policy-non-indexed"),
    pytest.param({"podFailurePolicy": {"rules": [{"action": "Ignore",
                                                  "onExitCodes": {"operator": "In", "values": [1]}}]}},
                 'spec.template.spec.restartPolicy: Invalid value: "OnFailure": only "Never" is supported when '
                 "podFailurePolicy is specified", id="failure-policy-needs-never"),
    pytest.param({"template": with_template(restartPolicy="Never"), "podFailurePolicy": {"rules": [
        {"onExitCodes": {"operator": "In", "values": [1]}}]}},
                 'spec.podFailurePolicy.rules[0].action: Required value: valid values: ["Count" "FailIndex" '
                 '"FailJob" "Ignore"]', id="rule-without-action"),
    pytest.param({"template": with_template(restartPolicy="Never"), "podFailurePolicy": {"rules": [
        {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [1]}}]}},
                 'spec.podFailurePolicy.rules[0].action: Invalid value: "FailIndex": requires the '
                 "backoffLimitPerIndex to be set", id="fail-index-without-per-index"),
    pytest.param({"template": with_template(restartPolicy="Never"), "podFailurePolicy": {"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "Between", "values": [1]}}]}},
                 'spec.podFailurePolicy.rules[0].onExitCodes.operator: Unsupported value: "Between": supported '
                 'values: "In", "NotIn"', id="unknown-operator"),
    pytest.param({"template": with_template(restartPolicy="Never"), "podFailurePolicy": {"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1, 2, 2]}}]}},
                 "spec.podFailurePolicy.rules[0].onExitCodes.values[2]: Duplicate value: 2", id="duplicate-code"),
    pytest.param({"template": with_template(restartPolicy="Never"), "podFailurePolicy": {"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": []}}]}},
                 "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: []int32(nil): at least one "
                 "value is required", id="no-codes"),
    pytest.param({"template": with_template(restartPolicy="Never"), "podFailurePolicy": {"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]},
         "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}},
                 "spec.podFailurePolicy.rules[0]: Invalid value: specifying both OnExitCodes and OnPodConditions is "
                 "not supported", id="both-requirements"),
    pytest.param({"template": with_template(restartPolicy="Never"), "podFailurePolicy": {"rules": [
        {"action": "FailJob"}]}},
                 "spec.podFailurePolicy.rules[0]: Invalid value: specifying one of OnExitCodes and OnPodConditions "
                 "is required", id="no-requirement"),
    pytest.param({"template": with_template(restartPolicy="Never"), "podFailurePolicy": {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "Maybe"}]}]}},
                 'spec.podFailurePolicy.rules[0].onPodConditions[0].status: Unsupported value: "Maybe": supported '
                 'values: "False", "True", "Unknown"', id="condition-status"),
    pytest.param({"template": with_template(restartPolicy="Never"), "podFailurePolicy": {"rules": [
        {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1]}}] * 21}},
                 "spec.podFailurePolicy.rules: Too many: 21: must have at most 20 items", id="too-many-rules"),
    pytest.param({"podReplacementPolicy": "Never"},
                 'spec.podReplacementPolicy: Unsupported value: "Never": supported values: "Failed", '
                 '"TerminatingOrFailed"', id="replacement-policy"),
    pytest.param({"template": with_template(containers=[])}, "spec.template.spec.containers: Required value",
                 id="no-containers"),
]


@pytest.mark.parametrize(("spec", "message"), JOB_ERRORS)
def test_validate_job_errors(spec, message):
    assert message in messages(jobs.validate(new_job(**spec), None))


def test_selector_must_match_template():
    job = new_job(manualSelector=True, selector={"matchLabels": {"y": "z"}})
    assert messages(jobs.validate(job, None)) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"a":"b"}: `selector` does not match '
        "template `labels`"]


def test_generated_selector_labels_must_not_be_overridden():
    job = new_job()
    job["spec"]["template"]["metadata"]["labels"]["job-name"] = "other"
    assert any(m.startswith("spec.template.metadata.labels[job-name]: Invalid value:") and m.endswith(
        "must be 'myjob'") for m in messages(jobs.validate(job, None)))


def test_indexed_job_name_too_long_for_pod_hostnames():
    job = new_job(name="a" * 62, completionMode="Indexed", completions=10)
    assert f'metadata.name: Invalid value: "{"a" * 62}": will not able to create pod with invalid DNS label: ' \
           f'{"a" * 62}-9' in messages(jobs.validate(job, None))


# --- ValidateJobUpdate ----------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "message"), [
    pytest.param({"completions": 3}, "spec.completions: Invalid value: 3: field is immutable", id="completions"),
    pytest.param({"selector": {"matchLabels": {"a": "b"}}},
                 'spec.selector: Invalid value: {"matchLabels":{"a":"b"}}: field is immutable', id="selector"),
    pytest.param({"completionMode": "Indexed"}, 'spec.completionMode: Invalid value: "Indexed": field is immutable',
                 id="completion-mode"),
])
def test_validate_job_update_immutable(change, message):
    old = new_job()
    new = copy.deepcopy(old)
    new["spec"].update(change)
    assert message in messages(jobs.validate(new, old))


def test_template_immutable_unless_suspended():
    old = new_job()
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    assert "spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable" in messages(jobs.validate(new, old))
    # a suspended Job may change its scheduling directives (AllowMutableSchedulingDirectives)
    old["spec"]["suspend"] = True
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    assert jobs.validate(new, old) == []
    # mutable: parallelism, suspend, activeDeadlineSeconds
    new = copy.deepcopy(old)
    new["spec"].update(parallelism=5, suspend=False, activeDeadlineSeconds=10)
    assert jobs.validate(new, old) == []


# --- ValidateJobUpdateStatus ------------------------------------------------------------------------
def status_update(old_status: dict, new_status: dict) -> list[str]:
    old = new_job()
    old["status"] = old_status
    new = {**old, "status": new_status}
    return messages(jobs.validate(new, old))


@pytest.mark.parametrize(("old", "new", "message"), [
    pytest.param({}, {"active": -1}, "status.active: Invalid value: -1: must be greater than or equal to 0",
                 id="negative-active"),
    pytest.param({"failed": 2}, {"failed": 1}, "status.failed: Invalid value: 1: cannot decrease the failed counter",
                 id="failed-decreases"),
    pytest.param({"succeeded": 2}, {"succeeded": 1},
                 "status.succeeded: Invalid value: 1: cannot decrease the succeeded counter", id="succeeded-decreases"),
    pytest.param({}, {"conditions": [{"type": "Complete", "status": "True"}]},
                 "status.completionTime: Required value: completionTime is required for Complete jobs",
                 id="complete-without-completion-time"),
    pytest.param({}, {"completionTime": "2026-01-01T00:00:00Z"},
                 'status.completionTime: Invalid value: "2026-01-01T00:00:00Z": cannot set completionTime when there '
                 "is no Complete=True condition", id="completion-time-without-complete"),
    pytest.param({"conditions": [{"type": "Failed", "status": "True"}]}, {},
                 "status.conditions: Invalid value: cannot disable the terminal Failed=True condition",
                 id="failed-removed"),
    pytest.param({}, {"active": 1, "conditions": [{"type": "Failed", "status": "True"}]},
                 "status.active: Invalid value: 1: active>0 is invalid for finished job", id="finished-with-active"),
    pytest.param({}, {"active": 1, "ready": 2},
                 "status.ready: Invalid value: 2: cannot set more ready pods than active", id="ready-over-active"),
])
def test_validate_job_status_update(old, new, message):
    assert message in status_update(old, new)


# --- the table cells -------------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "status", "meta", "want"), [
    pytest.param({"completions": 3}, {"succeeded": 1}, {}, ("Running", "1/3"), id="running"),
    pytest.param({"parallelism": 4}, {}, {}, ("Running", "0/1 of 4"), id="work-queue"),
    pytest.param({"parallelism": 1}, {}, {}, ("Running", "0/1"), id="one"),
    pytest.param({"completions": 1}, {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}, {},
                 ("Complete", "1/1"), id="complete"),
    pytest.param({"completions": 1}, {"conditions": [{"type": "Failed", "status": "True"}]},
                 {"deletionTimestamp": "x"}, ("Failed", "0/1"), id="failed-wins-over-terminating"),
    pytest.param({"completions": 1}, {}, {"deletionTimestamp": "x"}, ("Terminating", "0/1"), id="terminating"),
    pytest.param({"completions": 1}, {"conditions": [{"type": "Suspended", "status": "True"}]}, {},
                 ("Suspended", "0/1"), id="suspended"),
    pytest.param({"completions": 1}, {"conditions": [{"type": "Suspended", "status": "False"}]}, {},
                 ("Running", "0/1"), id="resumed"),
])
def test_job_status_and_completions_cells(spec, status, meta, want):
    job = {"metadata": {"name": "j", **meta}, "spec": spec, "status": status}
    assert (jobs.job_status_word(job), jobs.completions_cell(spec, status)) == want


def test_duration_cell():
    assert jobs.duration_cell({}) == ""
    assert jobs.duration_cell({"startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:02:05Z"}) == "2m5s"


# --- CronJob ------------------------------------------------------------------------------------
def new_cronjob(name: str = "mycronjob", **spec) -> dict:
    obj = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": "default", "uid": UID},
           "spec": {"schedule": "* * * * ?", "jobTemplate": {"spec": {"template": copy.deepcopy(TEMPLATE)}},
                    **copy.deepcopy(spec)}}
    cronjobs.defaults(obj)
    return obj


def test_cronjob_defaults():
    spec = new_cronjob()["spec"]
    assert {k: spec[k] for k in ("concurrencyPolicy", "suspend", "successfulJobsHistoryLimit",
                                 "failedJobsHistoryLimit")} == {
        "concurrencyPolicy": "Allow", "suspend": False, "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1}
    assert "completions" not in spec["jobTemplate"]["spec"]  # SetDefaults_Job is for Jobs, not templates
    assert cronjobs.validate(new_cronjob(), None) == []


@pytest.mark.parametrize(("spec", "message"), [
    pytest.param({"schedule": ""}, "spec.schedule: Required value", id="no-schedule"),
    pytest.param({"schedule": "error"}, 'spec.schedule: Invalid value: "error": expected exactly 5 fields, found 1: '
                 "[error]", id="garbage"),
    pytest.param({"schedule": "TZ=Europe/Berlin 0 * * * *"},
                 'spec.schedule: Invalid value: "TZ=Europe/Berlin 0 * * * *": cannot use TZ or CRON_TZ in schedule, '
                 "use timeZone field instead", id="tz-prefix"),
    pytest.param({"timeZone": ""}, 'spec.timeZone: Invalid value: "": timeZone must be nil or non-empty string',
                 id="empty-zone"),
    pytest.param({"timeZone": "Local"}, 'spec.timeZone: Invalid value: "Local": timeZone must be an explicit time '
                 "zone as defined in https://www.iana.org/time-zones", id="local"),
    pytest.param({"timeZone": "../etc/passwd"}, 'spec.timeZone: Invalid value: "../etc/passwd": unknown time zone '
                 "../etc/passwd", id="path-traversal"),
    pytest.param({"timeZone": "Continent/Zone"}, 'spec.timeZone: Invalid value: "Continent/Zone": unknown time zone '
                 "Continent/Zone", id="unknown-zone"),
    pytest.param({"startingDeadlineSeconds": -1},
                 "spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0",
                 id="negative-deadline"),
    pytest.param({"concurrencyPolicy": "Sometimes"}, 'spec.concurrencyPolicy: Unsupported value: "Sometimes": '
                 'supported values: "Allow", "Forbid", "Replace"', id="policy"),
    pytest.param({"failedJobsHistoryLimit": -1},
                 "spec.failedJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
                 id="history"),
    pytest.param({"jobTemplate": {"spec": {"template": TEMPLATE, "selector": {"matchLabels": {"a": "b"}}}}},
                 'spec.jobTemplate.spec.selector: Invalid value: {"matchLabels":{"a":"b"}}: `selector` will be '
                 "auto-generated", id="template-selector"),
    pytest.param({"jobTemplate": {"spec": {"template": TEMPLATE, "manualSelector": True}}},
                 'spec.jobTemplate.spec.manualSelector: Unsupported value: true: supported values: "nil", "false"',
                 id="template-manual-selector"),
    pytest.param({"jobTemplate": {"spec": {"template": TEMPLATE, "parallelism": -1}}},
                 "spec.jobTemplate.spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                 id="template-parallelism"),
])
def test_validate_cronjob_errors(spec, message):
    assert message in messages(cronjobs.validate(new_cronjob(**spec), None))


def test_cronjob_accepts_zones_and_descriptors():
    for spec in ({"timeZone": "America/New_York"}, {"timeZone": "Etc/GMT+5"}, {"schedule": "@every 5m"},
                 {"schedule": "0 0 * * mon-fri"}, {"schedule": "@midnight", "timeZone": "UTC"}):
        assert cronjobs.validate(new_cronjob(**spec), None) == [], spec


def test_cronjob_update_may_keep_a_tz_schedule_and_a_long_name():
    old = new_cronjob(name="x" * 60, schedule="TZ=UTC 0 * * * *")
    assert "metadata.name: Invalid value" in " ".join(messages(cronjobs.validate(new_cronjob(name="x" * 60), None)))
    new = copy.deepcopy(old)
    new["spec"]["suspend"] = True
    assert cronjobs.validate(new, old) == []
    new["spec"]["timeZone"] = "UTC"
    assert 'spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use both timeZone field and TZ or CRON_TZ in ' \
           "schedule" in messages(cronjobs.validate(new, old))


def test_manual_selector_with_unknown_operator():
    job = new_job(manualSelector=True, selector={"matchExpressions": [{"key": "a", "operator": "Near"}]})
    assert 'spec.selector.matchExpressions[0].operator: Unsupported value: "Near": supported values: ' \
           '"DoesNotExist", "Exists", "In", "NotIn"' in messages(jobs.validate(job, None))
