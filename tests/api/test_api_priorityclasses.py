"""scheduling.k8s.io/v1 PriorityClass and the Priority admission plugin with the real kubectl
and the kubernetes client: the system classes exist, a pod's class becomes its priority, and
what kube-apiserver refuses is refused (cases of upstream's plugin/pkg/admission/priority
admission_test.go and ValidatePriorityClass)."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.api


def pod(name: str, **spec) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                           "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}})


def test_the_system_classes_and_a_pods_priority(apiserver, namespace):
    table = apiserver.kubectl_ok("get", "priorityclasses").splitlines()
    assert table[0].split() == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    rows = {r.split()[0]: r.split() for r in table[1:]}
    assert rows["system-node-critical"][1:3] == ["2000001000", "false"]
    assert rows["system-cluster-critical"][1:3] == ["2000000000", "false"]
    apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=pod("plain"))
    spec = json.loads(apiserver.kubectl_ok("-n", namespace, "get", "pod", "plain", "-o", "json"))["spec"]
    assert (spec["priority"], spec["preemptionPolicy"]) == (0, "PreemptLowerPriority")  # no default class
    apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=pod("critical",
                                                                         priorityClassName="system-cluster-critical"))
    spec = json.loads(apiserver.kubectl_ok("-n", namespace, "get", "pod", "critical", "-o", "json"))["spec"]
    assert spec["priority"] == 2000000000


def test_a_global_default_class_and_what_is_refused(apiserver, namespace):
    name = f"high-{namespace}"
    apiserver.kubectl_ok("create", "priorityclass", name, "--value=1000", "--global-default=true",
                         "--preemption-policy=Never", "--description=test")
    try:
        apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=pod("defaulted"))
        spec = json.loads(apiserver.kubectl_ok("-n", namespace, "get", "pod", "defaulted", "-o", "json"))["spec"]
        assert (spec["priorityClassName"], spec["priority"], spec["preemptionPolicy"]) == (name, 1000, "Never")
        # a second global default
        second = apiserver.kubectl("create", "priorityclass", f"other-{namespace}", "--value=5", "--global-default=true")
        assert second.returncode == 1 and f"PriorityClass {name} is already marked as default. Only one default can " \
            "exist" in second.stderr
        # a class that does not exist; a priority that disagrees with the class
        missing = apiserver.kubectl("-n", namespace, "apply", "-f", "-", input=pod("unknown", priorityClassName="nope"))
        assert 'pods "unknown" is forbidden: no PriorityClass with name nope was found' in missing.stderr
        stated = apiserver.kubectl("-n", namespace, "apply", "-f", "-", input=pod("stated", priority=7))
        assert "the integer value of priority (7) must not be provided in pod spec" in stated.stderr
        # the value of a class cannot change
        changed = apiserver.kubectl("patch", "priorityclass", name, "--type=merge", "-p", '{"value": 2000}')
        assert changed.returncode == 1 and "value: Forbidden: may not be changed in an update." in changed.stderr
    finally:
        apiserver.kubectl("delete", "priorityclass", name, "--ignore-not-found")


@pytest.mark.parametrize(("name", "value", "message"), [
    ("too-high", 1_000_000_001, "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"),
    ("system-mine", 10, "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for "
                        "system use only"),
])
def test_user_classes_stay_below_the_system_ones(apiserver, name, value, message):
    out = apiserver.kubectl("create", "priorityclass", name, f"--value={value}")
    assert out.returncode == 1 and message in out.stderr, out.stderr


def test_the_system_classes_cannot_be_deleted(apiserver):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    with pytest.raises(ApiException) as err:
        client.SchedulingV1Api(apiserver.client()).delete_priority_class("system-node-critical")
    assert err.value.status == 403
    assert "this is a system priority class and cannot be deleted" in json.loads(err.value.body)["message"]
