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
    await EventRecorder(api, "cidrAllocator").event({"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1"}},
                                                    "Normal", "CIDRNotAvailable", "Node n1 status is now: CIDRNotAvailable")
    [ev] = api.objects("v1", "events")
    assert ev["metadata"]["namespace"] == "default" and ev["involvedObject"]["kind"] == "Node"


async def test_similar_events_are_combined_and_spam_is_dropped_like_client_go():
    api = FakeApi()
    now = [1000.0]
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "dev", "uid": "u"}}
    rec = EventRecorder(api, "replicaset-controller", correlator=EventCorrelator(clock=lambda: now[0]))
    for i in range(1000):
        await rec.event(rs, "Normal", "SuccessfulCreate", f"Created pod: web-{i}")
    events = api.objects("v1", "events")
    # 9 distinct messages, then one combined Event whose count goes up, until the burst of 25 is spent
    assert len(events) == 10
    [combined] = [e for e in events if e["message"].startswith("(combined from similar events): ")]
    assert combined["count"] == 16 and combined["message"] == "(combined from similar events): Created pod: web-24"
    assert len([c for c in api.calls if c[1] == "events"]) == 25
    now[0] += 300  # one more token per 5 minutes; the count includes the dropped ones, as client-go's
    await rec.event(rs, "Normal", "SuccessfulCreate", "Created pod: web-1000")
    await rec.event(rs, "Normal", "SuccessfulCreate", "Created pod: web-1001")
    [combined] = [e for e in api.objects("v1", "events") if e["message"].startswith("(combined")]
    assert combined["count"] == 992 and combined["message"].endswith("web-1000")
    assert len([c for c in api.calls if c[1] == "events"]) == 26


async def test_a_repeat_of_an_expired_event_is_written_anew():
    api = FakeApi()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": "dev", "uid": "u1"}}
    rec = EventRecorder(api, "kubelet")
    await rec.event(pod, "Warning", "BackOff", "Back-off restarting failed container")
    [ev] = api.objects("v1", "events")
    await api.delete("v1", "events", ev["metadata"]["name"], namespace="dev")
    await rec.event(pod, "Warning", "BackOff", "Back-off restarting failed container")
    [again] = api.objects("v1", "events")
    assert again["count"] == 2 and again["metadata"]["name"] == ev["metadata"]["name"]
