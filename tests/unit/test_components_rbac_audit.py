"""Least privilege of the components besides the controller-manager (whose audit is in
tests/unit/controllers/test_controllers_rbac_audit.py): a typical run of each over FakeApi, every
request it made checked against the RBAC role upstream (or kubeadm) binds to its identity. The
rules are upstream's, copied into tests/unit/upstream_roles.py.

- kube-scheduler (user system:kube-scheduler): system:kube-scheduler + system:volume-scheduler,
  with its leader election Lease kube-system/kube-scheduler;
- kube-proxy (service account kube-system/kube-proxy in its DaemonSet pods): system:node-proxier;
- CoreDNS / `knet dns` (service account kube-system/coredns): kubeadm's system:coredns.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from knet.client.fake import FakeApi
from knet.client.leaderelection import LeaderElector
from knet.controllers.base import InformerFactory

sys.path.insert(0, str(Path(__file__).parent))
from async_polling import until  # noqa: E402
from upstream_roles import denied  # noqa: E402

LABELS = {"app": "web"}


def seed_services(fake: FakeApi) -> None:
    for ns in ("default", "kube-system"):
        fake.seed("v1", "namespaces", {"metadata": {"name": ns}})
    fake.seed("v1", "nodes", {"metadata": {"name": "node01", "labels": {}}, "spec": {},
                              "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.2"}],
                                         "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}})
    fake.seed("v1", "services", {"metadata": {"name": "web", "namespace": "default"},
                                 "spec": {"selector": LABELS, "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                                          "type": "ClusterIP",
                                          "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}]}})
    fake.seed("discovery.k8s.io/v1", "endpointslices", {
        "metadata": {"name": "web-abc", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web",
                                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}, "nodeName": "node01",
                       "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"}}]})
    fake.seed("v1", "pods", {"metadata": {"name": "web-1", "namespace": "default", "labels": LABELS},
                             "spec": {"nodeName": "node01", "containers": [{"name": "c"}]},
                             "status": {"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}]}})


def requests_of(fake: FakeApi, user: str) -> list:
    return [r for r in fake.requests if r.user == user]


async def test_scheduler_stays_within_its_roles():
    from knet.scheduler.scheduler import Scheduler
    fake = FakeApi()
    seed_services(fake)
    for name in ("a", "b"):
        fake.seed("v1", "pods", {"metadata": {"name": name, "namespace": "default", "labels": LABELS},
                                 "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Pending"}})
    fake.seed("v1", "pods", {"metadata": {"name": "too-big", "namespace": "default"},
                             "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "64"}}}]},
                             "status": {"phase": "Pending"}})
    api = fake.client("system:kube-scheduler")
    # what `knet scheduler` does: lead (Lease kube-system/kube-scheduler), then schedule
    elector = LeaderElector(api, "kube-scheduler", lease_duration=15, renew_deadline=10, retry_period=2)
    assert await elector.try_acquire_or_renew()
    informers = InformerFactory(api)
    sched = Scheduler(api, informers, retry_interval=60)
    informers.start()
    task = asyncio.create_task(sched.run())
    try:
        await informers.wait_synced(5)
        await until(lambda: all(p["spec"].get("nodeName") for p in fake.objects("v1", "pods")
                                 if p["metadata"]["name"] in ("a", "b")))
        await until(lambda: {e["reason"] for e in fake.objects("v1", "events")} >= {"Scheduled", "FailedScheduling"})
        assert await elector.try_acquire_or_renew()
        await elector.release()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await informers.stop()
    made = requests_of(fake, "system:kube-scheduler")
    assert {(r.verb, r.resource, r.subresource) for r in made} >= {
        ("create", "pods", "binding"), ("update", "pods", "status"), ("create", "events", ""), ("update", "leases", "")}
    assert denied(made, "system:kube-scheduler", "system:volume-scheduler") == []


async def test_kube_proxy_stays_within_system_node_proxier():
    from knet.proxy.netfilter import FakeNetfilter
    from knet.proxy.options import RenderOptions
    from knet.proxy.proxier import Proxier
    from knet.proxy.server import node_address, service_informers

    fake = FakeApi()
    seed_services(fake)
    # the token its DaemonSet pod mounts is kube-system/kube-proxy's
    api = fake.client("system:serviceaccount:kube-system:kube-proxy")
    node_ip = await node_address(api, "node01", attempts=1)
    assert node_ip == "192.168.0.2"
    nf = FakeNetfilter()
    proxier = Proxier("iptables", RenderOptions(node_name="node01", node_ip=node_ip, cluster_cidr="10.244.0.0/16"),
                      nf, hostname="node01")
    informers = service_informers(api, proxier)
    tasks = [asyncio.create_task(i.run()) for i in informers]
    try:
        for informer in informers:
            await informer.wait_synced(5)
        await asyncio.sleep(0)
        proxier.services_synced = proxier.endpoints_synced = True
        assert proxier.sync().ok
        assert any("10.96.0.20" in rule for rule in nf.ipt.tables["nat"]["KUBE-SERVICES"])
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    made = requests_of(fake, "system:serviceaccount:kube-system:kube-proxy")
    assert {(r.verb, r.resource) for r in made} == {("get", "nodes"), ("list", "services"), ("watch", "services"),
                                                    ("list", "endpointslices"), ("watch", "endpointslices")}
    assert denied(made, "system:node-proxier") == []


async def test_dns_stays_within_system_coredns():
    from knet.dns.cache import ClusterCache
    from knet.dns.sync import run_sync

    fake = FakeApi()
    seed_services(fake)
    api = fake.client("system:serviceaccount:kube-system:coredns")
    cache = ClusterCache()
    task = asyncio.create_task(run_sync(api, cache, watch_pods=True))  # `pods verified`: the most it reads
    try:
        await until(cache.has_synced)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    made = requests_of(fake, "system:serviceaccount:kube-system:coredns")
    assert {r.resource for r in made} == {"namespaces", "services", "endpointslices", "pods"}
    assert denied(made, "system:coredns") == []
