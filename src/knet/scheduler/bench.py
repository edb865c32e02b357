"""Scheduling throughput, in process: `python -m knet.scheduler.bench --nodes 100 --pods 1000`.

Runs the real Scheduler (and, with --deployment, the Deployment and ReplicaSet controllers)
over FakeApi, so the figure is knet's decision + bookkeeping cost without HTTP. Prints pods/s
and how evenly pods were spread.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

from knet.client.fake import FakeApi
from knet.controllers.base import InformerFactory
from knet.controllers.deployment import DeploymentController
from knet.controllers.replicaset import ReplicaSetController
from knet.scheduler.scheduler import Scheduler


def _node(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"node{i:04d}", "labels": {}},
            "spec": {}, "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"}}}


async def run(nodes: int, pods: int, deployment: bool) -> dict:
    api = FakeApi()
    for i in range(nodes):
        api.seed("v1", "nodes", _node(i))
    informers = InformerFactory(api)
    tasks = [Scheduler(api, informers, retry_interval=3600)]
    if deployment:
        tasks += [DeploymentController(api, informers), ReplicaSetController(api, informers, burst=pods)]
    informers.start()
    await informers.wait_synced()
    running = [asyncio.create_task(t.run()) for t in tasks]
    started = time.perf_counter()
    template = {"metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}
    if deployment:
        api.seed("apps/v1", "deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "metadata": {"name": "bench", "namespace": "default"},
                                            "spec": {"replicas": pods, "selector": {"matchLabels": {"app": "bench"}},
                                                     "template": template}})
    else:
        for i in range(pods):
            api.seed("v1", "pods", {"apiVersion": "v1", "kind": "Pod",
                                    "metadata": {"name": f"p{i}", "namespace": "default", "labels": {"app": "bench"}},
                                    **{"spec": template["spec"]}})
    table = api.store[("v1", "pods")]  # read the fake's table directly: no copies in the timing loop
    while True:
        bound = [p for p in table.values() if p["spec"].get("nodeName")]
        if len(bound) >= pods:
            break
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    for t in running:
        t.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    await informers.stop()
    per_node = Counter(p["spec"]["nodeName"] for p in bound)
    return {"pods": pods, "nodes": nodes, "seconds": round(elapsed, 3), "pods_per_second": round(pods / elapsed, 1),
            "min_per_node": min(per_node.values()), "max_per_node": max(per_node.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--deployment", action="store_true", help="create the pods through a Deployment")
    args = parser.parse_args()
    print(asyncio.run(run(args.nodes, args.pods, args.deployment)))


if __name__ == "__main__":
    main()
