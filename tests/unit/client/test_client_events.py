"""Events as upstream records them: involvedObject, source, and repeats aggregated into count."""

from knet.client.events import EventRecorder
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
