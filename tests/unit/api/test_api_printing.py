"""Table cells: HumanDuration, pod status/ready/restarts, service ports, endpoints lists."""

from __future__ import annotations

import pytest

from knet.api.printing import human_duration, selector_text
from knet.api.resources import endpoints, pods, services


@pytest.mark.parametrize(("seconds", "text"), [
    pytest.param(-5, "<invalid>", id="future"), pytest.param(-1, "0s", id="skew"), pytest.param(0, "0s", id="now"),
    pytest.param(119, "119s", id="under-2m"), pytest.param(125, "2m5s", id="minutes-seconds"),
    pytest.param(600, "10m", id="10m"), pytest.param(3 * 3600 + 5 * 60, "3h5m", id="hours-minutes"),
    pytest.param(10 * 3600, "10h", id="hours"), pytest.param(3 * 86400 + 4 * 3600, "3d4h", id="days-hours"),
    pytest.param(30 * 86400, "30d", id="days"), pytest.param(3 * 365 * 86400 + 86400, "3y1d", id="years-days"),
    pytest.param(9 * 365 * 86400, "9y", id="years"),
])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def pod(status: dict, spec: dict | None = None, deleting: bool = False) -> dict:
    meta = {"name": "p", "creationTimestamp": None}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": spec or {"containers": [{"name": "c"}]}, "status": status}


@pytest.mark.parametrize(("status", "ready", "shown"), [
    pytest.param({"phase": "Pending"}, "0/1", "Pending", id="pending"),
    pytest.param({"phase": "Running", "containerStatuses": [{"ready": True, "state": {"running": {}}}]},
                 "1/1", "Running", id="running"),
    pytest.param({"phase": "Running", "containerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]},
                 "0/1", "ImagePullBackOff", id="waiting-reason"),
    pytest.param({"phase": "Failed", "containerStatuses": [{"state": {"terminated": {"exitCode": 2}}}]},
                 "0/1", "ExitCode:2", id="exit-code"),
    pytest.param({"phase": "Succeeded", "containerStatuses": [{"state": {"terminated": {"reason": "Completed"}}}]},
                 "0/1", "Completed", id="completed"),
    pytest.param({"phase": "Failed", "reason": "Evicted"}, "0/1", "Evicted", id="status-reason"),
])
def test_pod_status_column(status, ready, shown):
    cells = pods.row(pod(status))
    assert (cells[1], cells[2]) == (ready, shown)


def test_pod_init_containers_and_terminating():
    spec = {"initContainers": [{"name": "i"}], "containers": [{"name": "c"}]}
    cells = pods.row(pod({"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {"running": {}}}]}, spec))
    assert cells[2] == "Init:0/1"
    cells = pods.row(pod({"phase": "Running"}, deleting=True))
    assert cells[2] == "Terminating"
    cells = pods.row(pod({"phase": "Running", "containerStatuses": [
        {"ready": True, "restartCount": 4, "state": {"running": {}},
         "lastState": {"terminated": {"finishedAt": "2000-01-01T00:00:00Z"}}}]}))
    assert cells[3].startswith("4 (") and cells[3].endswith(" ago)")


def test_service_ports_and_external_ip():
    svc = {"metadata": {"name": "s"}, "spec": {"type": "NodePort", "clusterIPs": ["10.96.0.5"], "externalIPs": ["1.2.3.4"],
                                                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                                                          {"port": 53, "protocol": "UDP"}]}}
    cells = services.row(svc)
    assert cells[1:5] == ["NodePort", "10.96.0.5", "1.2.3.4", "80:30080/TCP,53/UDP"]


def test_endpoints_are_cut_after_three():
    ep = {"subsets": [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(5)], "ports": [{"port": 80}, {"port": 81}]}]}
    assert endpoints.format_endpoints(ep) == "10.0.0.0:80,10.0.0.1:80,10.0.0.2:80 + 7 more..."
    assert endpoints.format_endpoints({"subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]}) == "[fd00::1]:80"


def test_selector_text_sorts_requirements():
    assert selector_text({"matchLabels": {"b": "2", "a": "1"},
                          "matchExpressions": [{"key": "c", "operator": "Exists"}]}) == "a=1,b=2,c"
    assert selector_text({}) == "<none>"
