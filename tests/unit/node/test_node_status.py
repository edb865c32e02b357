import pytest

from knet.node.podworker import backoff_delay, should_restart
from knet.node.status import ContainerRecord, compute_pod_status, pod_phase, qos_class


def rec(state, exit_code=None, ran=False, ready=False, last=None):
    r = ContainerRecord("c", "busybox", container_id="abc", state=state, exit_code=exit_code, ran=ran, ready=ready)
    if last:
        r.last_state = last
    return r


@pytest.mark.parametrize("policy,records,want", [
    pytest.param("Always", [rec("waiting")], "Pending", id="creating"),
    pytest.param("Always", [rec("running")], "Running", id="running"),
    pytest.param("Never", [rec("terminated", 0, True)], "Succeeded", id="never-ok"),
    pytest.param("Never", [rec("terminated", 1, True)], "Failed", id="never-fail"),
    pytest.param("OnFailure", [rec("terminated", 0, True)], "Succeeded", id="onfailure-ok"),
    pytest.param("OnFailure", [rec("waiting", 1, True, last={"terminated": {"exitCode": 1}})], "Running",
                 id="onfailure-restarting"),
    pytest.param("Always", [rec("waiting", 1, True, last={"terminated": {"exitCode": 1}})], "Running",
                 id="crashloop"),
    pytest.param("Never", [rec("running"), rec("terminated", 1, True)], "Running", id="one-still-running"),
])
def test_phase(policy, records, want):
    assert pod_phase(policy, records) == want


def test_conditions_and_fields():
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    status = compute_pod_status(pod, [rec("running", ready=False)], host_ip="172.30.0.3", pod_ip="10.244.1.5",
                                start_time="2024-01-01T00:00:00Z", sandbox_ready=True)
    conds = {c["type"]: c for c in status["conditions"]}
    assert set(conds) == {"PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"}
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "ContainersNotReady"
    assert conds["Ready"]["message"] == "containers with unready status: [c]"
    assert status["podIPs"] == [{"ip": "10.244.1.5"}] and status["hostIPs"] == [{"ip": "172.30.0.3"}]
    cs = status["containerStatuses"][0]
    assert cs["containerID"] == "knet://abc" and cs["imageID"].startswith("busybox@sha256:")
    assert status["qosClass"] == "BestEffort"


def test_transition_time_kept_while_status_unchanged():
    pod = {"metadata": {"name": "p"}, "spec": {}, "status": {"conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}}
    status = compute_pod_status(pod, [rec("running", ready=True)], host_ip="h", pod_ip="p", start_time="t",
                                sandbox_ready=True)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2020-01-01T00:00:00Z"


def test_terminated_state_shape():
    r = rec("terminated", 143, True)
    r.reason = "Error"
    assert r.state_dict()["terminated"]["exitCode"] == 143
    assert r.state_dict()["terminated"]["containerID"] == "knet://abc"


def test_backoff_is_immediate_then_doubles_to_five_minutes():
    assert [backoff_delay(n) for n in (1, 2, 3, 4, 7, 20)] == [0, 10, 20, 40, 300, 300]


@pytest.mark.parametrize("policy,code,want", [("Always", 0, True), ("OnFailure", 0, False), ("OnFailure", 2, True),
                                              ("Never", 2, False)])
def test_should_restart(policy, code, want):
    assert should_restart(policy, code) is want


def test_qos():
    assert qos_class({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}) == "Guaranteed"
    assert qos_class({"containers": [{"resources": {"requests": {"cpu": "100m"}}}]}) == "Burstable"


def test_init_containers_gate_the_pod():
    pod = {"metadata": {"name": "p"}, "spec": {"restartPolicy": "Always"}}
    init = ContainerRecord("setup", "busybox", state="running")
    main = ContainerRecord("c", "busybox", reason="PodInitializing")
    status = compute_pod_status(pod, [main], host_ip="h", pod_ip="p", start_time="t", sandbox_ready=True,
                                init_records=[init])
    conds = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Pending"
    assert conds["Initialized"]["status"] == "False"
    assert conds["Initialized"]["message"] == "containers with incomplete status: [setup]"
    assert status["initContainerStatuses"][0]["name"] == "setup"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    init.state, init.exit_code, init.ran = "terminated", 0, True
    main.state = "running"
    status = compute_pod_status(pod, [main], host_ip="h", pod_ip="p", start_time="t", sandbox_ready=True,
                                init_records=[init])
    assert status["phase"] == "Running"
    assert next(c for c in status["conditions"] if c["type"] == "Initialized")["status"] == "True"


def test_failed_init_container_fails_a_never_restart_pod():
    pod = {"metadata": {"name": "p"}, "spec": {"restartPolicy": "Never"}}
    init = ContainerRecord("setup", "busybox", state="terminated", exit_code=1, ran=True)
    status = compute_pod_status(pod, [ContainerRecord("c", "x")], host_ip="h", pod_ip="p", start_time="t",
                                sandbox_ready=True, init_records=[init])
    assert status["phase"] == "Failed"
