"""Least privilege of the controller-manager: a typical run of every controller over FakeApi with
--use-service-account-credentials, each request checked against the RBAC role upstream binds to
the identity that made it (system:controller:<service account> for each controller's client,
system:kube-controller-manager for the shared informers and leader election). The rules are
upstream's, copied into tests/unit/upstream_roles.py."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from knet.client.fake import FakeApi
from knet.client.leaderelection import LeaderElector
from knet.controllers.clientbuilder import ServiceAccountClientBuilder
from knet.controllers.manager import SERVICE_ACCOUNTS, ManagerOptions, run_controller_manager

sys.path.insert(0, str(Path(__file__).parent.parent))
import async_polling  # noqa: E402
from upstream_roles import denied  # noqa: E402

KCM = "system:kube-controller-manager"
LABELS = {"app": "web"}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready_node(name: str) -> dict:
    return {"metadata": {"name": name}, "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": now()}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.0.2"}]}}


def seed_cluster(fake: FakeApi) -> None:
    for ns in ("default", "kube-system", "kube-node-lease"):
        fake.seed("v1", "namespaces", {"metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]}})
    fake.seed("v1", "namespaces", {"metadata": {"name": "doomed", "deletionTimestamp": now()},
                                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Terminating"}})
    fake.seed("v1", "configmaps", {"metadata": {"name": "leftover", "namespace": "doomed"}})
    for name in ("n1", "n2"):  # n1 renews its lease (below); n2 has gone silent
        fake.seed("v1", "nodes", ready_node(name))
    template = {"metadata": {"labels": LABELS}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    fake.seed("apps/v1", "deployments", {"metadata": {"name": "web", "namespace": "default"},
                                         "spec": {"replicas": 2, "selector": {"matchLabels": LABELS},
                                                  "template": template}})
    fake.seed("v1", "services", {"metadata": {"name": "web", "namespace": "default"},
                                 "spec": {"selector": LABELS, "clusterIP": "10.96.0.20",
                                          "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}})
    fake.seed("v1", "services", {"metadata": {"name": "web-lb", "namespace": "default"},
                                 "spec": {"selector": LABELS, "clusterIP": "10.96.0.21", "type": "LoadBalancer",
                                          "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80,
                                                     "nodePort": 30080}]}})
    fake.seed("apps/v1", "daemonsets", {"metadata": {"name": "agent", "namespace": "kube-system"},
                                        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                                                 "template": {"metadata": {"labels": {"app": "agent"}},
                                                              "spec": {"containers": [{"name": "a", "image": "a"}]}}}})
    fake.seed("apps/v1", "statefulsets", {"metadata": {"name": "db", "namespace": "default", "generation": 1},
                                          "spec": {"replicas": 1, "serviceName": "db",
                                                   "selector": {"matchLabels": {"app": "db"}},
                                                   "podManagementPolicy": "OrderedReady",
                                                   "updateStrategy": {"type": "RollingUpdate",
                                                                      "rollingUpdate": {"partition": 0}},
                                                   "revisionHistoryLimit": 10,
                                                   "template": {"metadata": {"labels": {"app": "db"}},
                                                                "spec": {"containers": [{"name": "d", "image": "d"}]}}}})
    # a pod whose owner is gone (generic GC) and one bound to a node that no longer exists (pod GC)
    fake.seed("v1", "pods", {"metadata": {"name": "stray", "namespace": "default", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gone", "uid": "gone-uid", "controller": True}]},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}})
    fake.seed("v1", "pods", {"metadata": {"name": "ghost", "namespace": "default"},
                             "spec": {"nodeName": "vanished", "containers": [{"name": "c", "image": "x"}]}})


# a whole controller-manager's run: more time than one controller's test
until = functools.partial(async_polling.until, timeout=10.0, interval=0.02)


def pods_of(fake: FakeApi, labels: dict) -> list[dict]:
    return [p for p in fake.objects("v1", "pods") if all(((p["metadata"].get("labels") or {}).get(k) == v)
                                                         for k, v in labels.items())]


async def play_kubelet(fake: FakeApi, stop: asyncio.Event) -> None:
    """What n1's kubelet does meanwhile: renew its lease, run the web pods (Ready, with IPs)."""
    lease = {"metadata": {"name": "n1", "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": "n1", "renewTime": now()}}
    fake.seed("coordination.k8s.io/v1", "leases", lease)
    n = 0
    while not stop.is_set():
        n += 1
        await fake.patch("coordination.k8s.io/v1", "leases", "n1", {"spec": {"renewTime": f"{now()}#{n}"}},
                         namespace="kube-node-lease")
        for i, pod in enumerate(pods_of(fake, LABELS)):
            if (pod.get("status") or {}).get("podIP"):
                continue
            await fake.patch("v1", "pods", pod["metadata"]["name"], {
                "spec": {"nodeName": "n1"},
                "status": {"phase": "Running", "podIP": f"10.244.1.{10 + i}", "podIPs": [{"ip": f"10.244.1.{10 + i}"}],
                           "conditions": [{"type": "Ready", "status": "True"}]}}, namespace="default")
        await asyncio.sleep(0.05)


def web_slice_ready(fake: FakeApi, count: int) -> bool:
    slices = [s for s in fake.objects("discovery.k8s.io/v1", "endpointslices")
              if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == "web"]
    return bool(slices) and sum(len(s.get("endpoints") or []) for s in slices) == count


def web_endpoints(fake: FakeApi) -> int:
    eps = [e for e in fake.objects("v1", "endpoints") if e["metadata"]["name"] == "web"]
    return sum(len(s.get("addresses") or []) for e in eps for s in e.get("subsets") or [])


async def test_every_controller_stays_within_its_upstream_role():
    fake = FakeApi()
    seed_cluster(fake)
    root = fake.client(KCM)
    builder = ServiceAccountClientBuilder(root, make_client=lambda source, sa: fake.client(token_source=source))
    options = ManagerOptions(cluster_cidr="10.244.0.0/16", allocate_node_cidrs=True, root_ca="-----CA-----",
                             node_monitor_grace_period=0.5, node_monitor_period=0.1,
                             controllers=("*", "garbagecollector", "namespace"),
                             load_balancer_pool="192.168.0.200-192.168.0.210")
    elector = LeaderElector(root, "kube-controller-manager", lease_duration=15, renew_deadline=10, retry_period=2)
    assert await elector.try_acquire_or_renew()
    stop = asyncio.Event()
    kubelet = asyncio.create_task(play_kubelet(fake, stop))
    manager = asyncio.create_task(run_controller_manager(root, options, builder))
    try:
        await until(lambda: web_slice_ready(fake, 2) and web_endpoints(fake) == 2)
        # scale, then roll out a new template: ReplicaSet resizes, a new revision, status updates
        await fake.patch("apps/v1", "deployments", "web", {"spec": {"replicas": 3}}, namespace="default")
        await until(lambda: web_slice_ready(fake, 3))
        await fake.patch("apps/v1", "deployments", "web", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "nginx:2"}]}}}}, namespace="default")
        await until(lambda: len(fake.objects("apps/v1", "replicasets")) == 2)
        await until(lambda: (fake.objects("apps/v1", "deployments")[0]["metadata"].get("annotations") or {})
                    .get("deployment.kubernetes.io/revision") == "2")
        await until(lambda: not {"stray", "ghost"} & {p["metadata"]["name"] for p in fake.objects("v1", "pods")})
        await until(lambda: next(n for n in fake.objects("v1", "namespaces")
                                 if n["metadata"]["name"] == "doomed")["spec"].get("finalizers") == [])
        await until(lambda: any(c.get("status") == "Unknown" for n in fake.objects("v1", "nodes")
                                if n["metadata"]["name"] == "n2" for c in n["status"]["conditions"]))
        await until(lambda: all(n["spec"].get("podCIDR") for n in fake.objects("v1", "nodes")))
        await until(lambda: {(sa["metadata"]["namespace"], sa["metadata"]["name"])
                             for sa in fake.objects("v1", "serviceaccounts")} >= {("default", "default")})
        await until(lambda: any(c["metadata"]["name"] == "kube-root-ca.crt" for c in fake.objects("v1", "configmaps")))
        # the daemon runs on n1 only: n2 is unreachable (NoSchedule)
        await until(lambda: [p["spec"]["affinity"]["nodeAffinity"] for p in pods_of(fake, {"app": "agent"})])
        await until(lambda: (fake.objects("apps/v1", "daemonsets")[0].get("status") or {})
                    .get("desiredNumberScheduled") == 1)
        await until(lambda: pods_of(fake, {"statefulset.kubernetes.io/pod-name": "db-0"})
                    and (fake.objects("apps/v1", "statefulsets")[0].get("status") or {}).get("updateRevision"))
        await until(lambda: any(e.get("source", {}).get("component") == "node-controller"
                                for e in fake.objects("v1", "events")))
        await until(lambda: any(((s.get("status") or {}).get("loadBalancer") or {}).get("ingress")
                                for s in fake.objects("v1", "services")))
        assert await elector.try_acquire_or_renew()
        await elector.release()
    finally:
        stop.set()
        manager.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await manager
        await kubelet

    by_user: dict[str | None, list] = defaultdict(list)
    for request in fake.requests:
        by_user[request.user].append(request)
    role_of = {KCM: "system:kube-controller-manager",
               **{f"system:serviceaccount:kube-system:{sa}": f"system:controller:{sa}" for sa in SERVICE_ACCOUNTS.values()}}
    assert set(by_user) - {None} <= set(role_of), "requests by an identity no upstream role is bound to"
    for user, requests in by_user.items():
        if user is not None:  # None: this test's own seeding and kubelet play
            assert denied(requests, role_of[user]) == [], f"{user} ({role_of[user]}) made requests its role refuses"
    # each controller wrote with its own identity; the controller-manager's own only reads,
    # elects, and provisions the controllers' accounts and tokens
    writers = {u.rsplit(":", 1)[-1] for u, rs in by_user.items()
               if u and u != KCM and any(r.verb not in ("get", "list", "watch") for r in rs)}
    assert writers == {"deployment-controller", "replicaset-controller", "endpointslice-controller",
                       "endpoint-controller", "daemon-set-controller", "statefulset-controller", "node-controller",
                       "service-account-controller",
                       "root-ca-cert-publisher", "pod-garbage-collector", "generic-garbage-collector",
                       "namespace-controller", "service-controller"}
    assert {(r.verb, r.resource, r.subresource) for r in by_user[KCM] if r.verb not in ("get", "list", "watch")} \
        == {("create", "serviceaccounts", ""), ("create", "serviceaccounts", "token"), ("create", "leases", ""),
            ("update", "leases", "")}
    # the informers are shared: each kind is listed once, by the controller-manager's identity
    lists = [(r.group, r.resource, r.namespace) for r in fake.requests if r.verb == "list" and r.user == KCM]
    assert len(lists) == len(set(lists))
