"""The node agent (kubelet): registers its Node(s), keeps their Lease, runs the pods bound to
them and reports their status. One process hosts one real node, or many simulated ones."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from knet.client import ApiClient, ApiError, Informer, load_config
from knet.client.events import EventRecorder
from knet.node import checkpoint, logpaths, netready, nodeobject, podcgroups, podenv, static, volumes
from knet.node.config import KubeletConfig
from knet.node.podcgroups import NodeCgroups
from knet.node.podworker import PodWorker
from knet.node.runtime import PodRuntime, for_dataplane
from knet.node.status import now_rfc3339
from knet.node.tokenmanager import TokenManager

log = logging.getLogger(__name__)
Obj = dict[str, Any]

STATUS_REPORT_EVERY = 300.0  # an unchanged node status is re-posted this often (nodeStatusReportFrequency); the Lease is the heartbeat
STATUS_WRITERS_PER_NODE = 16  # pod status writes in flight at once, per node of the process ...
STATUS_WRITERS_MAX = 128      # ... and at most in all
VOLUME_SYNC_SECONDS = 5.0    # configMap/secret volumes follow their objects this quickly
LOG_LINKS_SECONDS = 1.0      # /var/log/containers follows the node's containers this quickly
TOKEN_SYNC_SECONDS = 1.0     # how often tokens are checked for renewal (no request unless one is due)


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeAgent:
    """One node: its registration, lease, pods and pod network; the PodHost of its pod workers
    (knet.node.podhost). Its runtime and cgroups are chosen by the Kubelet, once."""

    def __init__(self, kubelet: Kubelet, name: str, node_ip: str, *, labels: dict[str, str],
                 taints: list[Obj], static_host: bool, root_dir: str, runtime: PodRuntime, cgroups: NodeCgroups,
                 annotations: dict[str, str] | None = None) -> None:
        self.kubelet = kubelet
        self.cfg = kubelet.cfg
        self.name = name
        self.node_ip = node_ip
        self.labels = labels
        self.taints = taints
        self.annotations = annotations or {}
        self.static_host = static_host
        self.root_dir = root_dir
        self.runtime = runtime
        self.cgroups = cgroups
        self.pod_cidr: str | None = self.cfg.pod_cidr
        if self.pod_cidr:
            self.runtime.set_pod_cidr(self.pod_cidr)
        self.workers: dict[str, PodWorker] = {}
        self.node_uid: str | None = None
        self.registered = False
        self.last_status: Obj | None = None
        self.last_report = 0.0
        self.static_pods: dict[str, Obj] = {}  # file -> pod
        # uid -> checkpoint of a pod a previous kubelet left running, until its worker adopts it
        self.adoptions: dict[str, checkpoint.PodCheckpoint] = {}
        self.well_known_hosts = self.runtime.well_known_hosts()

    # -- PodHost: what pod workers use ------------------------------------------------------
    @property
    def node_name(self) -> str:
        return self.name

    @property
    def pods_dir(self) -> Path:
        return Path(self.root_dir) / "pods"

    @property
    def cluster_dns(self) -> list[str]:
        return self.cfg.cluster_dns

    @property
    def cluster_domain(self) -> str:
        return self.cfg.cluster_domain

    async def materialise_volumes(self, pod: Obj, pod_dir: Path, *, static: bool) -> tuple[Obj, dict[str, Path]]:
        api = self.api
        pod = pod if static or api is None else volumes.with_service_account_volume(pod)
        paths = await volumes.materialise(api, pod, pod_dir, self.kubelet.tokens)
        if volumes.SA_VOLUME in paths:
            volumes.ensure_ca_file(paths[volumes.SA_VOLUME], self.kubelet.ca_pem())
        return pod, paths

    def take_adoption(self, uid: str) -> checkpoint.PodCheckpoint | None:
        return self.adoptions.pop(uid, None)

    async def find_adoptions(self) -> None:
        """At start: the pods a previous kubelet of this node left running are kept for their
        workers to adopt (release_unclaimed drops those no longer wanted); the other containers
        and sandboxes it left go."""
        if not self.runtime.checkpoints:
            return
        self.adoptions = self.runtime.adoptable_pods()
        if self.adoptions:
            log.info("re-adopting %d pods a previous kubelet left running", len(self.adoptions))
        keep = frozenset(c.container_id for cp in self.adoptions.values() for c in cp.containers.values())
        try:
            removed = await self.runtime.clean_containers(keep)
        except Exception as exc:  # noqa: BLE001 -- e.g. runc missing: the first pod says so
            log.warning("runc containers of a previous kubelet: %s", exc)
            removed = 0
        if removed:
            log.info("deleted %d runc containers a previous kubelet left behind", removed)
        cleaned = self.runtime.clean_orphans(f"{self.root_dir}/cni/ipam", self.adoptions)
        if cleaned:
            log.info("stopped %d processes of pods a previous kubelet left behind", cleaned)

    async def release_unclaimed(self, wanted: set[str]) -> None:
        """Once this node's pods are listed: the adoptable pods that neither the API (`wanted`:
        the uids bound here) nor a static manifest still runs here (deleted or rebound while the
        kubelet was down) are torn down."""
        if not self.runtime.checkpoints:
            return
        wanted = wanted | {p["metadata"]["uid"] for p in self.static_pods.values()}
        unclaimed = {uid: cp for uid, cp in self.adoptions.items() if uid not in wanted}
        for uid in unclaimed:
            self.adoptions.pop(uid, None)
        for cp in unclaimed.values():
            log.info("pod %s is no longer this node's: removing its sandbox", cp.uid)
            await self.runtime.release_sandbox(cp)

    @property
    def api(self) -> ApiClient | None:
        return self.kubelet.api if self.kubelet.api_ready else None

    def services(self) -> list[Obj]:
        return self.kubelet.services.list() if self.kubelet.services is not None else []

    async def fetch_env_sources(self, ns: str, container: Obj) -> None:
        await self.kubelet.fetch_env_sources(ns, container)

    def config_map_data(self, ns: str, name: str) -> dict[str, str] | None:
        data = self.kubelet.cached("configmaps", ns, name)
        return None if data is None else dict(data.get("data") or {})

    def secret_data(self, ns: str, name: str) -> dict[str, str] | None:
        data = self.kubelet.cached("secrets", ns, name)
        if data is None:
            return None
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in (data.get("data") or {}).items()}

    def status_changed(self, worker: PodWorker) -> None:
        self.kubelet.dirty_pods[worker.uid] = worker
        self.kubelet.status_wakeup.set()

    async def event(self, pod: Obj, event_type: str, reason: str, message: str, field_path: str | None) -> None:
        self.kubelet.recorder.record(pod, event_type, reason, message, host=self.name, field_path=field_path)

    def retry_pod(self, worker: PodWorker) -> None:
        """A pod whose sandbox failed: start a fresh worker for it (unless it went away)."""
        if self.workers.get(worker.uid) is worker and not worker.delete_requested:
            fresh = PodWorker(self, worker.pod, static=worker.static)
            self.workers[worker.uid] = fresh
            fresh.start()

    async def pod_terminated(self, worker: PodWorker) -> None:
        """Containers stopped after a graceful delete: remove the object (gracePeriodSeconds=0)."""
        self.workers.pop(worker.uid, None)
        self.kubelet.dirty_pods.pop(worker.uid, None)
        api = self.api
        if api is None or worker.static:
            return
        try:
            await api.delete("v1", "pods", worker.name, namespace=worker.namespace, grace_period_seconds=0,
                             preconditions={"uid": worker.uid})
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("deleting pod %s: %s", worker.key, exc)

    # -- pod network ---------------------------------------------------------------------
    def set_pod_cidr(self, cidr: str | None) -> None:
        if cidr and cidr != self.pod_cidr:
            self.pod_cidr = cidr
            self.runtime.set_pod_cidr(cidr)
            self.kubelet.node_status_wakeup.set()  # Ready follows; waiting pods retry their sandbox

    # -- pods ----------------------------------------------------------------------------
    def on_pod(self, pod: Obj) -> None:
        meta = pod["metadata"]
        if static.is_mirror(pod):
            return
        uid = meta["uid"]
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            if worker.reported_ready is not None and _ready_status(pod.get("status")) != worker.reported_ready:
                # Another writer changed the pod's Ready condition (the node lifecycle controller
                # sets Ready=False on the pods of a node it thought down): the kubelet's status
                # manager writes its own view back, else the pod stays not ready for good.
                self.status_changed(worker)
            return
        if meta.get("deletionTimestamp"):  # nothing of it runs here: remove the object at once
            asyncio.create_task(self._delete_unknown(pod))
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            return
        worker = PodWorker(self, pod)
        self.workers[uid] = worker
        worker.start()

    async def _delete_unknown(self, pod: Obj) -> None:
        api = self.api
        if api is not None:
            with contextlib.suppress(ApiError):
                await api.delete("v1", "pods", pod["metadata"]["name"], namespace=pod["metadata"].get("namespace"),
                                 grace_period_seconds=0, preconditions={"uid": pod["metadata"]["uid"]})

    def on_pod_deleted(self, pod: Obj) -> None:
        worker = self.workers.pop(pod["metadata"].get("uid", ""), None)
        if worker is not None:
            asyncio.create_task(worker.terminate(0, delete_object=False))

    def sync_static_pods(self) -> None:
        manifests = static.read_manifests(self.cfg.pod_manifest_path)
        seen = set()
        for fname, text in manifests.items():
            try:
                pod = static.static_pod(text, self.name)
            except Exception as exc:  # noqa: BLE001 -- a bad manifest is skipped, as upstream
                log.warning("static pod %s: %s", fname, exc)
                continue
            seen.add(fname)
            old = self.static_pods.get(fname)
            if old is not None and old["metadata"]["uid"] == pod["metadata"]["uid"]:
                continue
            if old is not None:
                self._stop_static(old)
            self.static_pods[fname] = pod
            worker = PodWorker(self, pod, static=True)
            self.workers[pod["metadata"]["uid"]] = worker
            worker.start()
            self.status_changed(worker)
        for fname in set(self.static_pods) - seen:
            self._stop_static(self.static_pods.pop(fname))

    def _stop_static(self, pod: Obj) -> None:
        worker = self.workers.pop(pod["metadata"]["uid"], None)
        if worker is not None:
            asyncio.create_task(worker.terminate(None, delete_object=False))
        api = self.api
        if api is not None:
            asyncio.create_task(self._delete_mirror(pod))

    async def _delete_mirror(self, pod: Obj) -> None:
        with contextlib.suppress(ApiError):
            await self.kubelet.api.delete("v1", "pods", pod["metadata"]["name"], namespace=pod["metadata"]["namespace"],
                                          grace_period_seconds=0)

    async def sync_mirror_pods(self) -> None:
        api = self.api
        if api is None or self.kubelet.pods is None or not self.kubelet.pods.has_synced:
            return
        if not self.node_uid:  # a mirror pod is owned by its Node (NodeRestriction checks the uid)
            return
        for pod in list(self.static_pods.values()):
            meta = pod["metadata"]
            existing = self.kubelet.pods.get(f"{meta['namespace']}/{meta['name']}")
            if existing is not None and (existing["metadata"].get("annotations") or {}).get(static.MIRROR) \
                    == meta["annotations"][static.HASH] and not existing["metadata"].get("deletionTimestamp"):
                continue
            try:
                if existing is not None:
                    await api.delete("v1", "pods", meta["name"], namespace=meta["namespace"], grace_period_seconds=0)
                await api.create("v1", "pods", static.mirror_pod(pod, self.node_uid), namespace=meta["namespace"])
                worker = self.workers.get(meta["uid"])
                if worker is not None:
                    self.status_changed(worker)
            except ApiError as exc:
                if exc.status != 409:
                    log.warning("mirror pod %s: %s", meta["name"], exc)

    # -- node object --------------------------------------------------------------------------
    def network_ready(self) -> bool:
        return self.runtime.network_ready()

    def compute_status(self, previous: list[Obj] | None) -> Obj:
        return nodeobject.node_status(
            node_ip=self.node_ip, hostname=self.name, facts=self.kubelet.facts,
            kubelet_version=self.cfg.kubernetes_version, port=self.kubelet.port, max_pods=self.cfg.max_pods,
            network_ready=self.network_ready(), now=now_rfc3339(), previous=previous)

    async def register(self, api: ApiClient) -> None:
        node = nodeobject.node_object(self.name, labels=self.labels, taints=self.taints, pod_cidr=self.cfg.pod_cidr,
                                      annotations=self.annotations, facts=self.kubelet.facts)
        try:
            created = await api.create("v1", "nodes", node)
        except ApiError as exc:
            if exc.status != 409:
                raise
            created = await api.get("v1", "nodes", self.name)
            merged_labels = dict(created["metadata"].get("labels") or {}, **node["metadata"]["labels"])
            created = await api.patch("v1", "nodes", self.name, {"metadata": {
                "labels": merged_labels, "annotations": node["metadata"]["annotations"]}})
        self.node_uid = created["metadata"]["uid"]
        self.set_pod_cidr((created.get("spec") or {}).get("podCIDR"))
        await self.report_status(api, force=True)
        self.registered = True

    async def report_status(self, api: ApiClient, force: bool = False) -> None:
        previous = self.last_status["conditions"] if self.last_status else None
        status = self.compute_status(previous)
        comparable = _without_heartbeats(status)
        if not force and self.last_status is not None and comparable == _without_heartbeats(self.last_status) \
                and time.monotonic() - self.last_report < STATUS_REPORT_EVERY:
            return
        await api.patch("v1", "nodes", self.name, {"status": status}, subresource="status")
        self.last_status = status
        self.last_report = time.monotonic()

    async def renew_lease(self, api: ApiClient) -> None:
        lease = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": self.name, "leaseDurationSeconds": self.cfg.node_lease_duration_seconds,
                     "renewTime": _micro_now()},
        }
        if self.node_uid:
            lease["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": self.name,
                                                     "uid": self.node_uid}]
        try:
            await api.patch("coordination.k8s.io/v1", "leases", self.name, {"spec": lease["spec"]},
                            namespace="kube-node-lease")
        except ApiError as exc:
            if exc.status != 404:
                raise
            await api.create("coordination.k8s.io/v1", "leases", lease, namespace="kube-node-lease")


def _without_heartbeats(status: Obj) -> Obj:
    return dict(status, conditions=[{k: v for k, v in c.items() if k != "lastHeartbeatTime"}
                                    for c in status["conditions"]])


class Kubelet:
    """The process: shared API client, informers, status writer, HTTP server; one or many nodes."""

    def __init__(self, cfg: KubeletConfig, *, new_runtime: Callable[[str], PodRuntime] | None = None,
                 new_cgroups: Callable[[str, str], NodeCgroups] | None = None) -> None:
        """new_runtime(root_dir) and new_cgroups(node name, root_dir) make a node's runtime and
        cgroups (default: as the dataplane and the host have them; tests give fakes)."""
        self.cfg = cfg
        self.facts = nodeobject.host_facts()
        self.port = cfg.port
        self.api: ApiClient | None = None
        self.api_ready = False
        self.pods: Informer | None = None
        self.services: Informer | None = None
        self.node_informer: Informer | None = None
        self.dirty_pods: dict[str, PodWorker] = {}
        self.status_wakeup = asyncio.Event()
        self.node_status_wakeup = asyncio.Event()
        # One recorder (queue and writer) for all the nodes of the process, as it has one API client.
        self.recorder = EventRecorder(None, "kubelet")
        self._cache: dict[tuple[str, str, str], tuple[float, Obj | None]] = {}
        self.tokens = TokenManager()  # pods' projected service-account tokens, renewed before expiry
        if cfg.sim_nodes:
            self.nodes_spec = list(cfg.sim_nodes)
        else:
            self.nodes_spec = [(cfg.hostname_override, cfg.node_ip)]
        self.nodes: dict[str, NodeAgent] = {}
        new_runtime = new_runtime or (lambda root_dir: for_dataplane(cfg, root_dir))
        new_cgroups = new_cgroups or (lambda name, root_dir: podcgroups.for_node(cfg, name, root_dir))
        for i, (name, ip) in enumerate(self.nodes_spec):
            annotations = {"knet.io/kubelet-endpoint": f"127.0.0.1:{cfg.port}"} if cfg.sim_nodes else {}
            root_dir = cfg.root_dir if len(self.nodes_spec) <= 1 else f"{cfg.root_dir}/{name}"
            self.nodes[name] = NodeAgent(self, name, ip, labels=dict(cfg.node_labels),
                                         taints=list(cfg.register_with_taints), static_host=(i == 0),
                                         root_dir=root_dir, runtime=new_runtime(root_dir),
                                         cgroups=new_cgroups(name, root_dir), annotations=annotations)
        self.static_node = self.nodes.get(cfg.hostname_override) if cfg.hostname_override else None

    # -- helpers -----------------------------------------------------------------------
    def ca_pem(self) -> bytes | None:
        """The cluster CA from the kubelet's kubeconfig (for pods' service-account ca.crt)."""
        if not self.cfg.kubeconfig:
            return None
        with contextlib.suppress(Exception):
            return load_config(kubeconfig=self.cfg.kubeconfig).ca_data
        return None

    def find_worker(self, namespace: str, name: str) -> PodWorker | None:
        for node in self.nodes.values():
            for worker in node.workers.values():
                if worker.namespace == namespace and worker.name == name and not worker.stopped.is_set():
                    return worker
        for node in self.nodes.values():
            for worker in node.workers.values():
                if worker.namespace == namespace and worker.name == name:
                    return worker
        return None

    def cached(self, resource: str, ns: str, name: str) -> Obj | None:
        """ConfigMaps/Secrets for env: read synchronously from the last fetch (fetch_env_sources)."""
        entry = self._cache.get((resource, ns, name))
        return entry[1] if entry else None

    async def fetch_env_sources(self, ns: str, container: Obj) -> None:
        """Read the ConfigMaps and Secrets a container's env refers to again, before each start
        attempt (the kubelet's configmap/secret managers: a ConfigMap created after the pod is
        seen at the next attempt). An unreachable API keeps the last copy."""
        api = self.api if self.api_ready else None
        if api is None:
            return
        for resource, name in podenv.env_sources(container):
            try:
                obj = await api.get("v1", resource, name, namespace=ns)
            except ApiError as exc:
                if exc.status != 404:
                    log.warning("%s %s/%s for env: %s", resource, ns, name, exc)
                    continue
                obj = None
            except Exception as exc:  # noqa: BLE001 -- the API may be restarting: keep the last copy
                log.warning("%s %s/%s for env: %s", resource, ns, name, exc)
                continue
            if obj is None:
                self._cache.pop((resource, ns, name), None)
            else:
                self._cache[(resource, ns, name)] = (time.monotonic(), obj)

    # -- loops -----------------------------------------------------------------------------
    async def run(self) -> None:
        from knet.node.server import start_server

        for node in self.nodes.values():
            await node.find_adoptions()
        runner = await start_server(self)
        scheme = "https" if runner.app["ssl"] is not None else "http"
        for node in self.nodes.values():
            host = node.node_ip if self.cfg.address in ("0.0.0.0", "::") else self.cfg.address
            with contextlib.suppress(OSError):
                os.makedirs(node.root_dir, exist_ok=True)
                with open(f"{node.root_dir}/kubelet-endpoint", "w") as f:
                    f.write(f"{scheme}://{host}:{self.port}\n")
        from knet.node import criserver

        runtime_endpoint = await criserver.start(self)
        try:
            if self.static_node is not None and self.cfg.pod_manifest_path:
                self.static_node.sync_static_pods()
            tasks = [asyncio.create_task(self._static_loop()), asyncio.create_task(self._api_main()),
                     asyncio.create_task(self._log_links_loop())]
            if self._owns_node_iptables():
                from knet.node import kubeletiptables

                tasks.append(asyncio.create_task(kubeletiptables.run_forever()))
            await asyncio.gather(*tasks)
        finally:
            await asyncio.shield(self.shutdown())
            if runtime_endpoint is not None:
                await runtime_endpoint.cleanup()
            await runner.cleanup()

    def _owns_node_iptables(self) -> bool:
        """The kubelet's iptables chains (knet.node.kubeletiptables) are made by the kubelet of one
        real node, in that node's network namespace only, never in the host's tables."""
        if self.cfg.dataplane != "real" or self.cfg.sim_nodes:
            return False
        from knet.node import kubeletiptables

        if not kubeletiptables.in_knet_node():
            log.info("not in a knet node's network namespace: the kubelet leaves iptables alone")
            return False
        return True

    async def shutdown(self) -> None:
        """On exit, stop pods this process started (their processes would otherwise linger)."""
        for node in self.nodes.values():
            await asyncio.gather(*(w.terminate(1, delete_object=False) for w in list(node.workers.values())),
                                 return_exceptions=True)

    async def _static_loop(self) -> None:
        if self.static_node is None or not self.cfg.pod_manifest_path:
            return
        while True:
            await asyncio.sleep(1.0)
            self.static_node.sync_static_pods()
            with contextlib.suppress(Exception):
                await self.static_node.sync_mirror_pods()

    async def _log_links_loop(self, period: float = LOG_LINKS_SECONDS) -> None:
        """/var/log/pods and /var/log/containers of each node (logpaths), where the node has them."""
        while True:
            synced = False
            for node in self.nodes.values():
                logs = [logpaths.ContainerLog(w.namespace, w.name, w.uid, run.record.name, run.record.container_id,
                                              run.log_index)
                        for w in list(node.workers.values()) for run in w.all_runs().values()
                        if run.record.container_id]
                pending = list(node.adoptions.values())  # a restarted kubelet's pods not adopted yet
                try:
                    synced = logpaths.sync(node.root_dir, logs, [cp.uid for cp in pending],
                                           [c.container_id for cp in pending for c in cp.containers.values()]) or synced
                except OSError as exc:
                    synced = True
                    log.warning("log links of node %s: %s", node.name, exc)
            if not synced:
                return  # no node here shows a /var/log of its own (knet.cluster.nodefs)
            await asyncio.sleep(period)

    async def _api_main(self) -> None:
        if not self.cfg.kubeconfig:
            await asyncio.Event().wait()  # standalone: static pods only
        config = load_config(kubeconfig=self.cfg.kubeconfig)
        # "kubelet/…", as the other components name themselves: the apiserver records the first
        # word as the field manager of what the kubelet writes (node and pod status), as upstream.
        async with ApiClient(config, user_agent="kubelet/knet") as api:
            self.api = api
            while True:  # wait for the apiserver (it may be one of our own static pods)
                try:
                    # Its own Node is what a kubelet may read (Node authorizer); any answer, even
                    # 404 before registration, means the apiserver is up.
                    await api.get("v1", "nodes", self.cfg.hostname_override or next(iter(self.nodes), ""))
                    break
                except ApiError:
                    break
                except Exception:  # noqa: BLE001
                    await asyncio.sleep(0.5)
            self.api_ready = True
            self.recorder.start(api)
            sem = asyncio.Semaphore(32)

            async def register(node: NodeAgent) -> None:
                async with sem:
                    while True:
                        try:
                            await node.register(api)
                            return
                        except Exception as exc:  # noqa: BLE001
                            log.warning("registering node %s: %s", node.name, exc)
                            await asyncio.sleep(1.0)

            await asyncio.gather(*(register(n) for n in self.nodes.values()))
            # One node watches its own pods (as the kubelet does); a process hosting many simulated
            # nodes watches every bound pod: pods not yet scheduled are nobody's business here, and
            # were a quarter of the watch events it decoded.
            single = len(self.nodes) == 1
            self.pods = Informer(api, "v1", "pods", field_selector=f"spec.nodeName={self.cfg.hostname_override}"
                                 if single else "spec.nodeName!=")
            self.pods.add_handler(on_add=self._on_pod, on_update=lambda old, new: self._on_pod(new),
                                  on_delete=self._on_pod_deleted)
            # Only this process's own Nodes matter (podCIDR, Ready as others see it): the routes to
            # the other nodes are the network add-on's (knet.cniagent).
            self.node_informer = Informer(api, "v1", "nodes", field_selector=f"metadata.name={self.cfg.hostname_override}"
                                          if single else None)
            self.node_informer.add_handler(on_add=self._on_node, on_update=lambda old, new: self._on_node(new))
            tasks = [asyncio.create_task(self.pods.run()), asyncio.create_task(self.node_informer.run()),
                     asyncio.create_task(self._release_unclaimed())]
            if any(n.runtime.needs_service_env for n in self.nodes.values()):
                self.services = Informer(api, "v1", "services")
                tasks.append(asyncio.create_task(self.services.run()))
            if any(n.runtime.refreshes_volumes for n in self.nodes.values()):
                tasks.append(asyncio.create_task(self._volume_refresh_loop(api)))
            if any(n.runtime.network_from_plugin for n in self.nodes.values()):
                tasks.append(asyncio.create_task(netready.watch_network_ready(self.nodes.values(),
                                                                              self.node_status_wakeup.set)))
            tasks.append(asyncio.create_task(self._token_refresh_loop(api)))
            tasks += [asyncio.create_task(self._status_writer(api)), asyncio.create_task(self._lease_loop(api)),
                      asyncio.create_task(self._node_status_loop(api))]
            for node in self.nodes.values():
                for worker in node.workers.values():
                    node.status_changed(worker)
            await asyncio.gather(*tasks)

    async def _release_unclaimed(self) -> None:
        assert self.pods is not None
        await self.pods.wait_synced(timeout=None)
        for node in self.nodes.values():
            wanted = {p["metadata"]["uid"] for p in self.pods.list()
                      if (p.get("spec") or {}).get("nodeName") == node.name and not p["metadata"].get("deletionTimestamp")
                      and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")}
            await node.release_unclaimed(wanted)

    def _node_of(self, pod: Obj) -> NodeAgent | None:
        return self.nodes.get((pod.get("spec") or {}).get("nodeName") or "")

    async def _on_pod(self, pod: Obj) -> None:
        node = self._node_of(pod)
        if node is None:
            return
        if pod["metadata"]["uid"] not in node.workers and node.runtime.runs_processes(pod, False):
            if self.services is not None and not self.services.has_synced:
                # Service env vars need the Services: kubelet waits for that informer too.
                with contextlib.suppress(TimeoutError):
                    await self.services.wait_synced(timeout=5)
        node.on_pod(pod)

    def _on_pod_deleted(self, pod: Obj) -> None:
        node = self._node_of(pod)
        if node is not None and not static.is_mirror(pod):
            node.on_pod_deleted(pod)

    def _on_node(self, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        cidr = (obj.get("spec") or {}).get("podCIDR")
        if name in self.nodes:
            agent = self.nodes[name]
            agent.node_uid = obj["metadata"]["uid"]
            agent.set_pod_cidr(cidr)
            seen = _ready_status(obj.get("status"))
            if agent.last_status is not None and seen == "Unknown" and seen != _ready_status(agent.last_status):
                # Someone else changed our Ready condition (the node lifecycle controller marks a
                # node Unknown when its heartbeat was late): post our own view again now, as the
                # kubelet does by comparing with the API's node rather than its last report.
                # Only Unknown counts: True/False are our own writes, and an older one of them
                # arriving late on the watch (NotReady before the podCIDR) is no reason to
                # re-report -- it woke the loop over all 1,000 simulated nodes again and again.
                agent.last_status = None
                self.node_status_wakeup.set()

    async def _status_writer(self, api: ApiClient) -> None:
        """A pool of writers over the dirty set: no batch barrier, at most one write in flight per
        pod (so a slow older status can never land after a newer one), latest status at write time.
        Upstream each kubelet writes on its own; a process of many simulated nodes gets more
        writers than one node's 16, so that a thousand nodes do not queue behind them."""
        concurrency = min(STATUS_WRITERS_MAX, STATUS_WRITERS_PER_NODE * len(self.nodes))
        in_flight: set[str] = set()

        async def write(worker: PodWorker) -> None:
            namespace, name = worker.namespace, worker.name
            status = worker.status()
            try:
                await api.patch("v1", "pods", name, {"status": status}, subresource="status", namespace=namespace)
                worker.reported_ready = _ready_status(status)
            except ApiError as exc:
                if exc.status != 404:
                    log.warning("status of %s/%s: %s", namespace, name, exc)
                    self._retry_status_later(worker)
            except Exception as exc:  # noqa: BLE001 -- the API may be restarting: try again soon
                log.warning("status of %s/%s: %s", namespace, name, exc)
                self._retry_status_later(worker)
            if status["phase"] in ("Succeeded", "Failed"):
                await worker.teardown_if_finished()

        async def writer() -> None:
            while True:
                uid = next((u for u in self.dirty_pods if u not in in_flight), None)
                if uid is None:
                    self.status_wakeup.clear()
                    await self.status_wakeup.wait()
                    continue
                worker = self.dirty_pods.pop(uid)
                in_flight.add(uid)
                try:
                    await write(worker)
                finally:
                    in_flight.discard(uid)
                    if uid in self.dirty_pods:
                        self.status_wakeup.set()

        await asyncio.gather(*(writer() for _ in range(concurrency)))

    async def _volume_refresh_loop(self, api: ApiClient, period: float = VOLUME_SYNC_SECONDS) -> None:
        while True:
            await asyncio.sleep(period)
            for node in self.nodes.values():
                for worker in list(node.workers.values()):
                    if worker.sandbox is None or worker.stopping.is_set() or worker.static:
                        continue
                    try:
                        await volumes.refresh(api, worker.pod, worker.dir)
                    except Exception as exc:  # noqa: BLE001 -- next round
                        log.warning("volumes of %s: %s", worker.key, exc)

    async def _token_refresh_loop(self, api: ApiClient, period: float = TOKEN_SYNC_SECONDS) -> None:
        """Keep every running pod's projected service-account tokens fresh for its whole life
        (the kubelet's token manager behind its projected volumes). Only pods with files hold
        tokens: simulated pods have none, so a simulated node has nothing to renew."""
        while True:
            await asyncio.sleep(period)
            live: list[str] = []
            for node in self.nodes.values():
                for worker in list(node.workers.values()):
                    if not worker.runs_processes or worker.static:
                        continue
                    live.append(worker.uid)
                    if worker.sandbox is None or worker.stopping.is_set():
                        continue
                    pod = volumes.with_service_account_volume(worker.pod)
                    if not volumes.has_tokens(pod):
                        continue
                    try:
                        if await volumes.refresh_tokens(api, self.tokens, pod, worker.dir):
                            log.info("renewed the service-account token of %s", worker.key)
                    except Exception as exc:  # noqa: BLE001 -- next round; the current token stays
                        log.warning("service-account token of %s: %s", worker.key, exc)
            self.tokens.retain(live)

    def _retry_status_later(self, worker: PodWorker, delay: float = 1.0) -> None:
        def again() -> None:
            if not worker.deleted:
                self.dirty_pods.setdefault(worker.uid, worker)
                self.status_wakeup.set()

        asyncio.get_running_loop().call_later(delay, again)

    async def _lease_loop(self, api: ApiClient) -> None:
        interval = self.cfg.node_lease_duration_seconds / 4
        sem = asyncio.Semaphore(32)

        async def renew(node: NodeAgent) -> None:
            async with sem:
                try:
                    await node.renew_lease(api)
                except Exception as exc:  # noqa: BLE001
                    log.warning("lease of %s: %s", node.name, exc)

        while True:
            t0 = time.monotonic()
            await asyncio.gather(*(renew(n) for n in self.nodes.values()))
            await asyncio.sleep(max(0.5, interval - (time.monotonic() - t0)))

    async def _node_status_loop(self, api: ApiClient) -> None:
        sem = asyncio.Semaphore(32)

        async def report(node: NodeAgent) -> None:
            async with sem:
                try:
                    await node.report_status(api)
                except Exception as exc:  # noqa: BLE001
                    log.warning("status of node %s: %s", node.name, exc)

        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.node_status_wakeup.wait(), self.cfg.node_status_update_frequency)
            self.node_status_wakeup.clear()
            await asyncio.gather(*(report(n) for n in self.nodes.values()))

def _ready_status(status: Obj | None) -> str | None:
    return next((c.get("status") for c in (status or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
