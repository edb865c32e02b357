"""The kubelet's Summary API (`/stats/summary`, k8s.io/kubelet/pkg/apis/stats/v1alpha1) from the
node's cgroups: the node (its kubepods cgroup: every pod of the node, not the whole machine as on
a real node), each pod (its pod cgroup) and each running container (its container cgroup).

A node without cgroups (the simulated dataplane) reports its name and start time only: no cpu,
no memory, no pods, which metrics-server (and knet's metrics API) treats as a node without
metrics.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from knet.node.podcgroups import NodeCgroups, Sample

if TYPE_CHECKING:
    from knet.node.agent import NodeAgent

Obj = dict[str, Any]


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cpu_stats(sample: Sample, rate: float | None) -> Obj:
    out: Obj = {"time": rfc3339(sample.timestamp), "usageCoreNanoSeconds": sample.usage.cpu_ns}
    if rate is not None:
        out["usageNanoCores"] = int(rate * 1e9)
    return out


def memory_stats(sample: Sample, limit: int | None = None) -> Obj:
    u = sample.usage
    out: Obj = {"time": rfc3339(sample.timestamp), "usageBytes": u.memory_usage, "workingSetBytes": u.working_set,
                "rssBytes": u.rss, "pageFaults": u.page_faults, "majorPageFaults": u.major_page_faults}
    if limit:
        out["availableBytes"] = max(0, limit - u.working_set)
    return out


def _with_usage(target: Obj, cgroups: NodeCgroups, path: str) -> bool:
    read = cgroups.sample(path)
    if read is None:
        return False
    sample, rate = read
    target["cpu"] = cpu_stats(sample, rate)
    target["memory"] = memory_stats(sample)
    return True


def summary(node: NodeAgent, start_time: str) -> Obj:
    cgroups = node.cgroups
    node_stats: Obj = {"nodeName": node.name, "startTime": start_time}
    pods: list[Obj] = []
    if not cgroups.enabled:
        return {"node": node_stats, "pods": pods}
    _with_usage(node_stats, cgroups, cgroups.node_path())
    for worker in list(node.workers.values()):
        if worker.sandbox is None or worker.stopping.is_set() or not worker.runs_processes:
            continue
        meta = worker.pod["metadata"]
        pod: Obj = {"podRef": {"name": meta["name"], "namespace": meta.get("namespace", "default"),
                               "uid": meta["uid"]},
                    "startTime": worker.start_time, "containers": []}
        if not _with_usage(pod, cgroups, cgroups.pod_path(worker.pod)):
            continue
        for run in worker.runs.values():
            rec = run.record
            if rec.state != "running" or run.process is None:
                continue
            container: Obj = {"name": rec.name, "startTime": rec.started_at}
            if _with_usage(container, cgroups, cgroups.container_path(worker.pod, rec.container_id)):
                pod["containers"].append(container)
        pods.append(pod)
    return {"node": node_stats, "pods": pods}
