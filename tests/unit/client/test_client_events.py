"""Events as upstream records them: involvedObject, source, and repeats aggregated into count."""

from knet.client.events import EventCorrelator, EventRecorder
from knet.client.fake import FakeApi


async def test_repeats_bump_count_and_last_timestamp():
    api = FakeApi()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": "dev", "uid": "u1"}}
    rec = EventRecorder(api, "default-scheduler")
    for _ in range(3):
        await rec.event(pod, "Warning", "FailedScheduling", "0/2 nodes are available: 2 Insufficient cpu.")
    await rec.event(pod, "Normal", "Scheduled", "Successfully assigned dev/web-0 to node01")
    await rec.flush()
    events = sorted(api.objects("v1", "events"), key=lambda e: e["reason"])
    assert [(e["reason"], e["count"]) for e in events] == [("FailedScheduling", 3), ("Scheduled", 1)]
    failed = events[0]
    assert failed["metadata"]["namespace"] == "dev" and failed["metadata"]["name"].startswith("web-0.")
    assert failed["involvedObject"] == {"kind": "Pod", "apiVersion": "v1", "name": "web-0", "uid": "u1",
                                        "namespace": "dev"}
    assert failed["source"] == {"component": "default-scheduler"} and failed["type"] == "Warning"
    assert failed["firstTimestamp"] <= failed["lastTimestamp"]


async def test_cluster_scoped_objects_get_events_in_default():
    api = FakeApi()
    rec = EventRecorder(api, "cidrAllocator")
    await rec.event({"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1"}},
                    "Normal", "CIDRNotAvailable", "Node n1 status is now: CIDRNotAvailable")
    await rec.flush()
    [ev] = api.objects("v1", "events")
    assert ev["metadata"]["namespace"] == "default" and ev["involvedObject"]["kind"] == "Node"


async def test_similar_events_are_combined_and_spam_is_dropped_like_client_go():
    api = FakeApi()
    now = [1000.0]
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "dev", "uid": "u"}}
    rec = EventRecorder(api, "replicaset-controller", correlator=EventCorrelator(clock=lambda: now[0]))
    for i in range(1000):
        await rec.event(rs, "Normal", "SuccessfulCreate", f"Created pod: web-{i}")
    await rec.flush()
    events = api.objects("v1", "events")
    # 9 distinct messages, then one combined Event whose count goes up, until the burst of 25 is spent
    assert len(events) == 10
    [combined] = [e for e in events if e["message"].startswith("(combined from similar events): ")]
    assert combined["count"] == 16 and combined["message"] == "(combined from similar events): Created pod: web-24"
    assert len([c for c in api.calls if c[1] == "events"]) == 25
    now[0] += 300  # one more token per 5 minutes; the count includes the dropped ones, as client-go's
    await rec.event(rs, "Normal", "SuccessfulCreate", "Created pod: web-1000")
    await rec.event(rs, "Normal", "SuccessfulCreate", "Created pod: web-1001")
    await rec.flush()
    [combined] = [e for e in api.objects("v1", "events") if e["message"].startswith("(combined")]
    assert combined["count"] == 992 and combined["message"].endswith("web-1000")
    assert len([c for c in api.calls if c[1] == "events"]) == 26


async def test_a_repeat_of_an_expired_event_is_written_anew():
    api = FakeApi()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": "dev", "uid": "u1"}}
    rec = EventRecorder(api, "kubelet")
    await rec.event(pod, "Warning", "BackOff", "Back-off restarting failed container")
    await rec.flush()
    [ev] = api.objects("v1", "events")
    await api.delete("v1", "events", ev["metadata"]["name"], namespace="dev")
    await rec.event(pod, "Warning", "BackOff", "Back-off restarting failed container")
    await rec.flush()
    [again] = api.objects("v1", "events")
    assert again["count"] == 2 and again["metadata"]["name"] == ev["metadata"]["name"]


async def test_recording_does_not_wait_and_a_full_queue_drops_like_client_go():
    api = FakeApi()
    rec = EventRecorder(None, "kubelet", queue_size=3)  # no connection yet: events queue
    for i in range(5):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"web-{i}", "namespace": "dev", "uid": f"u{i}"}}
        rec.record(pod, "Normal", "Pulled", "Container image \"nginx\" already present on machine",
                   host="node01", field_path="spec.containers{nginx}")
    assert api.objects("v1", "events") == []
    rec.start(api)
    await rec.flush()
    events = api.objects("v1", "events")
    assert sorted(e["involvedObject"]["name"] for e in events) == ["web-0", "web-1", "web-2"]
    assert all(e["source"] == {"component": "kubelet", "host": "node01"} for e in events)
    assert all(e["involvedObject"]["fieldPath"] == "spec.containers{nginx}" for e in events)


async def test_an_objects_events_list_in_the_order_they_happened():
    api = FakeApi()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": "dev", "uid": "u1"}}
    rec = EventRecorder(api, "kubelet")
    reasons = ["Scheduled", "Pulled", "Created", "Started"]
    for reason in reasons:
        rec.record(pod, "Normal", reason, reason.lower())
    await rec.flush()
    listed = sorted(api.objects("v1", "events"), key=lambda e: e["metadata"]["name"])  # as the API lists them
    assert [e["reason"] for e in listed] == reasons
