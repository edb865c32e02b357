"""batch/v1 Jobs and CronJobs through the real kubectl and the kubernetes Python client (no
controllers here: what the API itself does): `kubectl create job|cronjob`, `create job --from`,
the generated selector and defaults, printer columns (normal and -o wide), describe, explain,
the status subresource, watch, patch, delete with the pods they own, 422 field errors as
kube-apiserver words them, and RBAC (a view-only token may read but not create Jobs)."""

from __future__ import annotations

import json
import threading

import pytest
from api_kubectl_output import assert_table
from test_api_authorization import run_as, token_kubeconfig

pytestmark = pytest.mark.api


def get_json(apiserver, ns: str, *what: str) -> dict:
    return json.loads(apiserver.kubectl_ok("-n", ns, "get", *what, "-o", "json"))


def put_status(apiserver, ns: str, resource: str, name: str, status: dict) -> None:
    apiserver.kubectl_ok("-n", ns, "patch", resource, name, "--subresource=status", "--type=merge",
                         "-p", json.dumps({"status": status}))


def test_kubectl_create_job_generates_selector_and_defaults(apiserver, namespace):
    ns = namespace
    out = apiserver.kubectl_ok("-n", ns, "create", "job", "pi", "--image=busybox", "--", "sh", "-c", "echo 3.14")
    assert out.strip() == "job.batch/pi created"
    job = get_json(apiserver, ns, "job", "pi")
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    generated = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "pi",
                 "controller-uid": uid, "job-name": "pi"}
    assert job["spec"]["template"]["metadata"]["labels"] == generated
    assert job["metadata"]["labels"] == generated
    spec = job["spec"]
    assert {k: spec[k] for k in ("completions", "parallelism", "backoffLimit", "completionMode", "suspend",
                                 "podReplacementPolicy")} == {
        "completions": 1, "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": False,
        "podReplacementPolicy": "TerminatingOrFailed"}
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    assert pod_spec["containers"][0]["command"] == ["sh", "-c", "echo 3.14"]
    assert job["metadata"]["generation"] == 1


def test_kubectl_create_cronjob_and_job_from_it(apiserver, namespace):
    ns = namespace
    out = apiserver.kubectl_ok("-n", ns, "create", "cronjob", "hello", "--image=busybox",
                               "--schedule=*/1 * * * *", "--", "echo", "hello")
    assert out.strip() == "cronjob.batch/hello created"
    cj = get_json(apiserver, ns, "cronjob", "hello")
    assert {k: cj["spec"][k] for k in ("schedule", "concurrencyPolicy", "suspend", "successfulJobsHistoryLimit",
                                       "failedJobsHistoryLimit")} == {
        "schedule": "*/1 * * * *", "concurrencyPolicy": "Allow", "suspend": False,
        "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1}
    assert "selector" not in cj["spec"]["jobTemplate"]["spec"]
    out = apiserver.kubectl_ok("-n", ns, "create", "job", "manual", "--from=cronjob/hello")
    assert out.strip() == "job.batch/manual created"
    job = get_json(apiserver, ns, "job", "manual")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    [owner] = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "CronJob", "hello", cj["metadata"]["uid"], True)
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["echo", "hello"]
    # the short name and the category
    assert "cronjob.batch/hello" in apiserver.kubectl_ok("-n", ns, "get", "cj", "-o", "name")
    names = apiserver.kubectl_ok("-n", ns, "get", "all", "-o", "name").split()
    assert {"job.batch/manual", "cronjob.batch/hello"} <= set(names)
    # the CronJob's Jobs go with it (the apiserver's garbage collector, background propagation)
    apiserver.kubectl_ok("-n", ns, "delete", "cronjob", "hello")
    apiserver.kubectl_ok("-n", ns, "wait", "--for=delete", "job/manual", "--timeout=20s")


def test_printer_columns(apiserver, namespace):
    ns = namespace
    apiserver.kubectl_ok("-n", ns, "create", "job", "done", "--image=busybox", "--", "true")
    apiserver.kubectl_ok("-n", ns, "create", "job", "busy", "--image=busybox", "--", "true")
    apiserver.kubectl_ok("-n", ns, "apply", "-f", "-", input=json.dumps({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "wq"},
        "spec": {"parallelism": 3, "template": {"spec": {"restartPolicy": "OnFailure", "containers": [
            {"name": "a", "image": "nginx"}, {"name": "b", "image": "busybox"}]}}}}))
    put_status(apiserver, ns, "job", "done", {
        "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:07Z", "succeeded": 1,
        "conditions": [{"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
                       {"type": "Complete", "status": "True", "reason": "CompletionsReached"}]})
    put_status(apiserver, ns, "job", "wq", {"startTime": "2026-01-01T00:00:00Z", "active": 3,
                                            "conditions": [{"type": "FailureTarget", "status": "True"}]})
    apiserver.kubectl_ok("-n", ns, "patch", "job", "busy", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    put_status(apiserver, ns, "job", "busy", {"conditions": [{"type": "Suspended", "status": "True"}]})
    table = apiserver.kubectl_ok("-n", ns, "get", "jobs")
    lines = table.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["done"][:3] == ["Complete", "1/1", "7s"]
    assert rows["busy"][:2] == ["Suspended", "0/1"]  # no start time: an empty DURATION
    assert rows["wq"][:4] == ["FailureTarget", "0/1", "of", "3"]  # "0/1 of 3": no completions, parallelism 3
    uid = get_json(apiserver, ns, "job", "wq")["metadata"]["uid"]
    wide = apiserver.kubectl_ok("-n", ns, "get", "job", "wq", "-o", "wide")
    assert wide.splitlines()[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE", "CONTAINERS",
                                            "IMAGES", "SELECTOR"]
    assert wide.splitlines()[1].split()[-3:] == ["a,b", "nginx,busybox", f"batch.kubernetes.io/controller-uid={uid}"]

    apiserver.kubectl_ok("-n", ns, "create", "cronjob", "hello", "--image=busybox", "--schedule=*/5 * * * *",
                         "--", "date")
    apiserver.kubectl_ok("-n", ns, "apply", "-f", "-", input=json.dumps({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
        "spec": {"schedule": "@daily", "timeZone": "Europe/Berlin", "suspend": True, "jobTemplate": {"spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "x", "image": "alpine"}]}}}}}}))
    put_status(apiserver, ns, "cronjob", "nightly", {"lastScheduleTime": "2026-01-01T00:00:00Z", "active": [
        {"kind": "Job", "namespace": ns, "name": "nightly-1", "uid": "u1", "apiVersion": "batch/v1"}]})
    assert_table(apiserver.kubectl_ok("-n", ns, "get", "cronjobs"), """
NAME      SCHEDULE      TIMEZONE        SUSPEND   ACTIVE   LAST SCHEDULE   AGE
hello     */5 * * * *   <none>          False     0        <none>          <age>
nightly   @daily        Europe/Berlin   True      1        <age>           <age>
""")
    assert_table(apiserver.kubectl_ok("-n", ns, "get", "cronjob", "nightly", "-o", "wide"), """
NAME      SCHEDULE   TIMEZONE        SUSPEND   ACTIVE   LAST SCHEDULE   AGE     CONTAINERS   IMAGES   SELECTOR
nightly   @daily     Europe/Berlin   True      1        <age>           <age>   x            alpine   <none>
""")


def test_describe_and_explain(apiserver, namespace):
    ns = namespace
    apiserver.kubectl_ok("-n", ns, "apply", "-f", "-", input=json.dumps({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "calc"},
        "spec": {"completions": 5, "parallelism": 2, "backoffLimit": 4, "activeDeadlineSeconds": 100,
                 "template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "pi", "image": "perl", "command": ["perl"]}]}}}}))
    put_status(apiserver, ns, "job", "calc", {"startTime": "2026-01-01T00:00:00Z", "active": 2, "succeeded": 1,
                                              "failed": 1, "ready": 1})
    out = apiserver.kubectl_ok("-n", ns, "describe", "job", "calc")
    flat = " ".join(out.split())  # describe aligns values by its longest label: compare words
    for want in ("Name: calc", "Parallelism: 2", "Completions: 5", "Completion Mode: NonIndexed", "Suspend: false",
                 "Backoff Limit: 4", "Start Time: Thu, 01 Jan 2026 00:00:00 +0000", "Active Deadline Seconds: 100s",
                 "Pods Statuses: 2 Active (1 Ready) / 1 Succeeded / 1 Failed", "batch.kubernetes.io/job-name=calc",
                 "Image: perl"):
        assert want in flat, f"{want!r} not in:\n{out}"
    apiserver.kubectl_ok("-n", ns, "create", "cronjob", "tick", "--image=busybox", "--schedule=0 * * * *", "--", "date")
    out = apiserver.kubectl_ok("-n", ns, "describe", "cronjob", "tick")
    flat = " ".join(out.split())
    for want in ("Name: tick", "Schedule: 0 * * * *", "Concurrency Policy: Allow", "Suspend: False",
                 "Successful Job History Limit: 3", "Failed Job History Limit: 1", "Last Schedule Time: <unset>"):
        assert want in flat, f"{want!r} not in:\n{out}"
    explained = apiserver.kubectl_ok("explain", "job.spec.backoffLimit")
    assert "GROUP:      batch" in explained and "FIELD: backoffLimit <integer>" in explained
    assert "FIELD: concurrencyPolicy <string>" in apiserver.kubectl_ok("explain", "cronjob.spec.concurrencyPolicy")


def test_python_client_crud_watch_and_status(apiserver, namespace):
    import kubernetes

    ns = namespace
    body = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "py"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "c", "image": "busybox"}]}}}}
    with apiserver.client() as c:
        batch = kubernetes.client.BatchV1Api(c)
        events: list[tuple[str, str]] = []
        rv = batch.list_namespaced_job(ns).metadata.resource_version

        def watch() -> None:
            w = kubernetes.watch.Watch()
            for ev in w.stream(batch.list_namespaced_job, ns, resource_version=rv, timeout_seconds=10):
                events.append((ev["type"], ev["object"].metadata.name))
                if ev["type"] == "DELETED":
                    w.stop()

        watcher = threading.Thread(target=watch)
        watcher.start()
        created = batch.create_namespaced_job(ns, body)
        assert created.spec.backoff_limit == 6 and created.spec.completions == 1
        assert [j.metadata.name for j in batch.list_namespaced_job(ns).items] == ["py"]
        patched = batch.patch_namespaced_job("py", ns, {"spec": {"parallelism": 0, "activeDeadlineSeconds": 30}})
        assert (patched.spec.parallelism, patched.spec.active_deadline_seconds) == (0, 30)
        assert patched.metadata.generation == 2
        # status through the status subresource only; spec changes there are ignored
        now = created.metadata.creation_timestamp
        st = batch.patch_namespaced_job_status("py", ns, {"spec": {"parallelism": 5},
                                                          "status": {"active": 1, "startTime": now.isoformat()}})
        assert st.status.active == 1 and st.spec.parallelism == 0
        ignored = batch.patch_namespaced_job("py", ns, {"status": {"active": 7}})
        assert ignored.status.active == 1
        # completions, selector and the template are immutable
        with pytest.raises(kubernetes.client.ApiException) as exc:
            batch.patch_namespaced_job("py", ns, {"spec": {"completions": 3}})
        assert exc.value.status == 422
        assert json.loads(exc.value.body)["details"]["causes"] == [
            {"reason": "FieldValueInvalid", "message": "Invalid value: 3: field is immutable", "field": "spec.completions"}]
        cj = kubernetes.client.BatchV1Api(c).create_namespaced_cron_job(ns, {
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "pycj"},
            "spec": {"schedule": "@hourly", "jobTemplate": {"spec": body["spec"]}}})
        assert cj.spec.successful_jobs_history_limit == 3 and cj.spec.concurrency_policy == "Allow"
        batch.delete_namespaced_job("py", ns, propagation_policy="Background")
        watcher.join(15)
    assert events[0] == ("ADDED", "py") and events[-1] == ("DELETED", "py")
    assert ("MODIFIED", "py") in events


def test_deleting_a_job_deletes_its_pods(apiserver, namespace):
    """The apiserver's garbage collector: pods whose controller is the Job go with it (kubectl
    deletes with propagationPolicy=Background)."""
    ns = namespace
    apiserver.kubectl_ok("-n", ns, "create", "job", "gc", "--image=busybox", "--", "true")
    job = get_json(apiserver, ns, "job", "gc")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gc-abcde", "labels": job["spec"]["template"]
                                                           ["metadata"]["labels"],
                                                           "ownerReferences": [{
                                                               "apiVersion": "batch/v1", "kind": "Job", "name": "gc",
                                                               "uid": job["metadata"]["uid"], "controller": True,
                                                               "blockOwnerDeletion": True}]},
           "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
    apiserver.kubectl_ok("-n", ns, "create", "-f", "-", input=json.dumps(pod))
    assert "Controlled By: Job/gc" in " ".join(apiserver.kubectl_ok("-n", ns, "describe", "pod", "gc-abcde").split())
    apiserver.kubectl_ok("-n", ns, "delete", "job", "gc")
    apiserver.kubectl_ok("-n", ns, "wait", "--for=delete", "pod/gc-abcde", "--timeout=20s")


TEMPLATE = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}

INVALID_JOBS = [
    pytest.param({"backoffLimit": -1, "template": TEMPLATE},
                 ["spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"], id="negative-backoff"),
    pytest.param({"parallelism": -2, "completions": -1, "template": TEMPLATE},
                 ["spec.parallelism: Invalid value: -2: must be greater than or equal to 0",
                  "spec.completions: Invalid value: -1: must be greater than or equal to 0"], id="negative-counts"),
    pytest.param({"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
                 ['spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'],
                 id="restart-always"),
    pytest.param({"completionMode": "Indexed", "template": TEMPLATE, "parallelism": 2, "completions": None},
                 ["spec.completions: Required value: when completion mode is Indexed"], id="indexed-without-completions"),
    pytest.param({"completionMode": "Sometimes", "template": TEMPLATE},
                 ['spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"'],
                 id="completion-mode"),
    pytest.param({"template": {"spec": {**TEMPLATE["spec"], "restartPolicy": "OnFailure"}},
                  "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In",
                                                                                       "values": [0]}}]}},
                 ['spec.template.spec.restartPolicy: Invalid value: "OnFailure": only "Never" is supported when '
                  "podFailurePolicy is specified",
                  "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In "
                  "operator"], id="failure-policy"),
    pytest.param({"template": TEMPLATE, "podFailurePolicy": {"rules": [{"action": "Explode", "onExitCodes": {
        "operator": "In", "values": [3, 1], "containerName": "nope"}}]}},
                 ['spec.podFailurePolicy.rules[0].action: Unsupported value: "Explode": supported values: "Count", '
                  '"FailIndex", "FailJob", "Ignore"',
                  'spec.podFailurePolicy.rules[0].onExitCodes.containerName: Invalid value: "nope": must be one of the '
                  "container or initContainer names in the pod template",
                  "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: []int32{3, 1}: must be ordered"],
                 id="failure-policy-rule"),
    pytest.param({"template": TEMPLATE, "manualSelector": True},
                 ["spec.selector: Required value"], id="manual-selector-missing"),
]


@pytest.mark.parametrize(("spec", "messages"), INVALID_JOBS)
def test_invalid_jobs_are_refused_422_with_field_paths(apiserver, namespace, spec, messages):
    obj = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bad"},
           "spec": {k: v for k, v in spec.items() if v is not None}}
    p = apiserver.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(obj))
    assert p.returncode != 0
    assert 'The Job "bad" is invalid' in p.stderr
    for message in messages:
        assert message in p.stderr, p.stderr
    raw = apiserver.kubectl("-n", namespace, "create", "-f", "-", "-v=6", input=json.dumps(obj))
    assert "422 Unprocessable Entity" in raw.stderr


INVALID_CRONJOBS = [
    pytest.param({"schedule": "*/1 * * *"},
                 ['spec.schedule: Invalid value: "*/1 * * *": expected exactly 5 fields, found 4: [*/1 * * *]'],
                 id="four-fields"),
    pytest.param({"schedule": "61 * * * *"},
                 ['spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61'],
                 id="minute-61"),
    pytest.param({"schedule": "TZ=UTC 0 * * * *"},
                 ['spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use '
                  "timeZone field instead"], id="tz-in-schedule"),
    pytest.param({"schedule": "@hourly", "timeZone": "Mars/Olympus"},
                 ['spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus'], id="time-zone"),
    pytest.param({"schedule": "@hourly", "concurrencyPolicy": "Sometimes", "startingDeadlineSeconds": -5},
                 ["spec.startingDeadlineSeconds: Invalid value: -5: must be greater than or equal to 0",
                  'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", '
                  '"Replace"'], id="policy-and-deadline"),
    pytest.param({"schedule": "@hourly", "successfulJobsHistoryLimit": -1},
                 ["spec.successfulJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0"],
                 id="history-limit"),
    pytest.param({"schedule": "@hourly", "jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox"}]}}}}},
                 ['spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", '
                  '"Never"'], id="template-restart-always"),
]


@pytest.mark.parametrize(("spec", "messages"), INVALID_CRONJOBS)
def test_invalid_cronjobs_are_refused_422_with_field_paths(apiserver, namespace, spec, messages):
    spec = {"jobTemplate": {"spec": {"template": TEMPLATE}}, **spec}
    obj = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "bad"}, "spec": spec}
    p = apiserver.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(obj))
    assert p.returncode != 0
    assert 'The CronJob "bad" is invalid' in p.stderr
    for message in messages:
        assert message in p.stderr, p.stderr


def test_cronjob_name_longer_than_52_is_refused(apiserver, namespace):
    name = "c" * 53
    p = apiserver.kubectl("-n", namespace, "create", "cronjob", name, "--image=busybox", "--schedule=@hourly")
    assert p.returncode != 0
    assert f'metadata.name: Invalid value: "{name}": must be no more than 52 characters' in p.stderr


def test_view_token_reads_jobs_but_cannot_create_them(apiserver, namespace, tmp_path):
    ns = namespace
    apiserver.kubectl_ok("-n", ns, "create", "job", "visible", "--image=busybox", "--", "true")
    apiserver.kubectl_ok("-n", ns, "create", "serviceaccount", "viewer")
    apiserver.kubectl_ok("-n", ns, "create", "rolebinding", "viewer-view", "--clusterrole=view",
                         f"--serviceaccount={ns}:viewer")
    token = apiserver.kubectl_ok("-n", ns, "create", "token", "viewer").strip()
    kc = token_kubeconfig(apiserver, token, tmp_path / "viewer.conf")
    assert "visible" in run_as(apiserver, kc, "-n", ns, "get", "jobs").stdout
    assert run_as(apiserver, kc, "-n", ns, "get", "cronjobs").returncode == 0
    denied = run_as(apiserver, kc, "-n", ns, "create", "job", "sneaky", "--image=busybox", "--", "true")
    assert denied.returncode != 0
    assert (f'jobs.batch is forbidden: User "system:serviceaccount:{ns}:viewer" cannot create resource "jobs" in '
            f'API group "batch" in the namespace "{ns}"') in denied.stderr
    denied = run_as(apiserver, kc, "-n", ns, "create", "cronjob", "sneaky", "--image=busybox", "--schedule=@hourly")
    assert denied.returncode != 0 and "cannot create resource \"cronjobs\"" in denied.stderr
    denied = run_as(apiserver, kc, "-n", ns, "delete", "job", "visible")
    assert denied.returncode != 0 and "cannot delete resource \"jobs\"" in denied.stderr
    # edit may
    apiserver.kubectl_ok("-n", ns, "create", "rolebinding", "viewer-edit", "--clusterrole=edit",
                         f"--serviceaccount={ns}:viewer")
    assert run_as(apiserver, kc, "-n", ns, "create", "job", "allowed", "--image=busybox", "--", "true").returncode == 0


def test_kubectl_apply_again_changes_what_may_change(apiserver, namespace):
    """A second `kubectl apply` of an edited manifest: parallelism may change (a new generation),
    the pod template may not."""
    ns = namespace
    manifest = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "again"},
                "spec": {"completions": 4, "parallelism": 1, "template": {"spec": {
                    "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "args": ["true"]}]}}}}
    apiserver.kubectl_ok("-n", ns, "apply", "-f", "-", input=json.dumps(manifest))
    manifest["spec"]["parallelism"] = 2
    assert apiserver.kubectl_ok("-n", ns, "apply", "-f", "-", input=json.dumps(manifest)).strip() == \
        "job.batch/again configured"
    job = get_json(apiserver, ns, "job", "again")
    assert (job["spec"]["parallelism"], job["metadata"]["generation"]) == (2, 2)
    assert job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] == job["metadata"]["uid"]
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = "alpine"
    p = apiserver.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(manifest))
    assert p.returncode != 0 and "spec.template: Invalid value" in p.stderr and "field is immutable" in p.stderr


def test_discovery_lists_batch_v1(apiserver):
    lines = [line.split() for line in apiserver.kubectl_ok("api-resources", "--api-group=batch").splitlines()]
    assert lines == [["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
                     ["cronjobs", "cj", "batch/v1", "true", "CronJob"],
                     ["jobs", "batch/v1", "true", "Job"]]
    wide = apiserver.kubectl_ok("api-resources", "--api-group=batch", "-o", "wide").splitlines()
    for line in wide[1:]:
        assert line.split()[-2:] == ["create,delete,deletecollection,get,list,patch,update,watch", "all"]
