from knet.controllers.nodeipam import NodeIpamController


def node(name, cidr=None):
    spec = {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec, "status": {}}


def cidrs(api):
    return {n["metadata"]["name"]: n["spec"].get("podCIDR") for n in api.objects("v1", "nodes")}


async def test_sequential_allocation_restart_and_release(harness):
    api = harness.api
    api.seed("v1", "nodes", node("controlplane", "10.244.0.0/24"))  # allocated before a restart
    api.seed("v1", "nodes", node("node01"))
    ctrl = NodeIpamController(api, harness.informers, cluster_cidr="10.244.0.0/16", node_mask_size=24)
    await harness.start(ctrl)
    await harness.until(lambda: cidrs(api) == {"controlplane": "10.244.0.0/24", "node01": "10.244.1.0/24"})
    assert api.objects("v1", "nodes")[1]["spec"]["podCIDRs"] == ["10.244.1.0/24"]
    await api.delete("v1", "nodes", "node01")
    await harness.until(lambda: "node01" not in ctrl._owned)
    api.seed("v1", "nodes", node("node02"))
    # sequential after the last handed out (like upstream), not re-using the freed one first
    await harness.until(lambda: cidrs(api).get("node02") == "10.244.2.0/24")


async def test_exhaustion_records_event_and_condition(harness):
    api = harness.api
    api.seed("v1", "nodes", node("a"))
    api.seed("v1", "nodes", node("b"))
    ctrl = NodeIpamController(api, harness.informers, cluster_cidr="10.244.0.0/24", node_mask_size=24)
    await harness.start(ctrl)
    events = await harness.until(lambda: [e for e in api.objects("v1", "events") if e["reason"] == "CIDRNotAvailable"])
    starved = events[0]["involvedObject"]["name"]
    assert events[0]["involvedObject"]["kind"] == "Node"
    assert events[0]["message"] == f"Node {starved} status is now: CIDRNotAvailable"
    got = await api.get("v1", "nodes", starved)
    [cond] = got["status"]["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("NetworkUnavailable", "True", "CIDRNotAvailable")
