"""`kubectl describe` of every kind (with its Events section, which kubectl fetches with a
field selector on involvedObject), and `kubectl explain` from the OpenAPI v3 documents."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.api

OBJECTS = [
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
     "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
     "spec": {"clusterIP": "10.96.201.1", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}, "data": {"k": "v"}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web"}, "data": {"k": "dg=="}},
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web"}},
    {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
     "subsets": [{"addresses": [{"ip": "10.244.1.5"}], "ports": [{"port": 8080}]}]},
    {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "web-x"},
     "addressType": "IPv4", "ports": [{"port": 8080}], "endpoints": [{"addresses": ["10.244.1.5"]}]},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
     "spec": {"selector": {"matchLabels": {"app": "web"}},
              "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}},
    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
     "spec": {"selector": {"matchLabels": {"app": "web"}},
              "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}},
    {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "web"},
     "spec": {"selector": {"matchLabels": {"app": "web"}},
              "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "web"},
     "spec": {"podSelector": {"matchLabels": {"app": "web"}}}},
    {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "web"}, "spec": {"holderIdentity": "me"}},
]


def test_describe_every_kind_shows_its_events(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input="".join("---\n" + yaml.safe_dump(o) for o in OBJECTS))
    uid = json.loads(apiserver.kubectl_ok("-n", namespace, "get", "pod", "web", "-o", "json"))["metadata"]["uid"]
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.17f0"},
             "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": namespace, "uid": uid},
             "reason": "Scheduled", "message": "Successfully assigned web to node01", "type": "Normal",
             "source": {"component": "default-scheduler"}, "count": 1,
             "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"}
    other = dict(event, metadata={"name": "other.1"}, involvedObject=dict(event["involvedObject"], name="other"),
                 reason="Other")
    apiserver.kubectl_ok("-n", namespace, "create", "-f", "-", input=json.dumps(event))
    apiserver.kubectl_ok("-n", namespace, "create", "-f", "-", input=json.dumps(other))
    out = apiserver.kubectl_ok("-n", namespace, "describe", "pod", "web")
    assert out.splitlines()[0].split() == ["Name:", "web"]
    events = out[out.index("Events:"):].splitlines()
    assert events[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert events[3].split()[:2] == ["Normal", "Scheduled"]
    assert events[3].split()[3:] == ["default-scheduler", "Successfully", "assigned", "web", "to", "node01"]
    assert len(events) == 4  # the other pod's event is not shown
    for obj in OBJECTS[1:]:
        kind = obj["kind"].lower()
        out = apiserver.kubectl_ok("-n", namespace, "describe", kind, obj["metadata"]["name"])
        assert obj["metadata"]["name"] in out.splitlines()[0], out
    svc = apiserver.kubectl_ok("-n", namespace, "describe", "svc", "web")
    import re

    assert re.search(r"\nIP:\s+10\.96\.201\.1\n", svc) and re.search(r"\nTargetPort:\s+8080/TCP\n", svc)


def test_describe_node_and_namespace(apiserver, namespace):
    apiserver.kubectl_ok("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "describe-node"}}))
    try:
        out = apiserver.kubectl_ok("describe", "node", "describe-node")
        assert out.splitlines()[0].split() == ["Name:", "describe-node"]
    finally:
        apiserver.kubectl("delete", "node", "describe-node")
    out = apiserver.kubectl_ok("describe", "namespace", namespace)
    assert f"Name:         {namespace}" in out and "Status:       Active" in out


def test_explain_prints_field_types_and_descriptions(apiserver):
    out = apiserver.kubectl_ok("explain", "pod.spec")
    lines = out.splitlines()
    assert lines[0].split() == ["KIND:", "Pod"] and lines[1].split() == ["VERSION:", "v1"]
    assert "FIELD: spec <PodSpec>" in out
    assert "  containers\t<[]Container> -required-" in lines
    assert "List of containers belonging to the pod." in out
    svc = apiserver.kubectl_ok("explain", "svc.spec.ports.targetPort")
    assert "Number or name of the port to access on the pods targeted by the service." in svc
    deploy = apiserver.kubectl_ok("explain", "deployment")
    assert deploy.splitlines()[0].split() == ["GROUP:", "apps"]


def test_events_are_shared_between_core_and_events_k8s_io(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "run", "ev", "--image=nginx")
    uid = json.loads(apiserver.kubectl_ok("-n", namespace, "get", "pod", "ev", "-o", "json"))["metadata"]["uid"]
    new_style = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "ev.1"},
                 "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "knet.io/kubelet",
                 "reportingInstance": "node01", "action": "Pulling", "reason": "Pulling", "type": "Normal",
                 "note": "Pulling image nginx",
                 "regarding": {"apiVersion": "v1", "kind": "Pod", "name": "ev", "namespace": namespace, "uid": uid}}
    apiserver.kubectl_ok("-n", namespace, "create", "-f", "-", input=json.dumps(new_style))
    core = json.loads(apiserver.kubectl_ok("-n", namespace, "get", "events.v1.", "ev.1", "-o", "json"))
    assert (core["apiVersion"], core["involvedObject"]["name"], core["message"]) == ("v1", "ev", "Pulling image nginx")
    listed = json.loads(apiserver.kubectl_ok("-n", namespace, "get", "events.v1.events.k8s.io", "-o", "json"))
    assert [(e["apiVersion"], e["note"]) for e in listed["items"]] == [("events.k8s.io/v1", "Pulling image nginx")]
    out = apiserver.kubectl_ok("-n", namespace, "describe", "pod", "ev")
    assert "Pulling image nginx" in out[out.index("Events:"):]
    p = apiserver.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(
        {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "bad"}}))
    assert "eventTime: Required value" in p.stderr
