"""The fake side of `ClusterAccess`: an in-memory cluster for unit tests. Objects are stored as
given; creating a Pod marks it Ready and a Deployment's ready count follows its replicas (what
the controllers would do); `exec` and `node_run` answer through functions the test supplies
(which may compute the answer from the fake's objects), as does `probe` (`knet trace --probe`)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from knet.labs.access import ExecResult, LabClusterError

KIND_OF = {"Namespace": "namespaces", "Pod": "pods", "Service": "services", "Deployment": "deployments",
           "ConfigMap": "configmaps", "NetworkPolicy": "networkpolicies", "Node": "nodes",
           "DaemonSet": "daemonsets", "EndpointSlice": "endpointslices"}
CLUSTER_SCOPED = ("namespaces", "nodes")

ExecFn = Callable[["FakeCluster", str, str, list[str]], ExecResult]
NodeFn = Callable[["FakeCluster", str, list[str]], ExecResult]
ProbeFn = Callable[["FakeCluster", str, str, int, str], dict[str, Any]]
WriteHook = Callable[["FakeCluster"], None]


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeCluster:
    def __init__(self, objects: list[dict[str, Any]] = (), *, exec_fn: ExecFn | None = None,
                 node_fn: NodeFn | None = None, after_write: WriteHook | None = None,
                 probe_fn: ProbeFn | None = None) -> None:
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.exec_fn = exec_fn
        self.node_fn = node_fn
        self.probe_fn = probe_fn
        self.calls: list[tuple[str, ...]] = []
        # What the controllers would do after a write (make a Deployment's pods, give addresses).
        self.after_write = after_write
        for obj in objects:
            self._store(obj)
        self._written()

    def _written(self) -> None:
        if self.after_write is not None:
            self.after_write(self)

    def _key(self, kind: str, name: str, namespace: str | None) -> tuple[str, str | None, str]:
        return (kind, None if kind in CLUSTER_SCOPED else (namespace or "default"), name)

    def _store(self, obj: dict[str, Any]) -> None:
        obj = copy.deepcopy(obj)
        kind = KIND_OF[obj["kind"]]
        meta = obj.setdefault("metadata", {})
        if kind == "pods":
            status = obj.setdefault("status", {})
            status.setdefault("phase", "Running")
            status.setdefault("conditions", [{"type": "Ready", "status": "True"}])
        if kind == "deployments":
            obj.setdefault("status", {})["readyReplicas"] = (obj.get("spec") or {}).get("replicas", 1)
        self.objects[self._key(kind, meta["name"], meta.get("namespace"))] = obj

    # ClusterAccess
    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        obj = self.objects.get(self._key(kind, name, namespace))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, kind: str, namespace: str | None = None, selector: str | None = None) -> list[dict[str, Any]]:
        want = dict(part.split("=", 1) for part in selector.split(",")) if selector else {}
        out = []
        for (k, ns, _), obj in sorted(self.objects.items(), key=lambda kv: str(kv[0])):
            if k != kind or (namespace is not None and ns != namespace):
                continue
            labels = obj["metadata"].get("labels") or {}
            if all(labels.get(key) == value for key, value in want.items()):
                out.append(copy.deepcopy(obj))
        return out

    def create(self, obj: dict[str, Any]) -> None:
        kind = KIND_OF[obj["kind"]]
        meta = obj["metadata"]
        self.calls.append(("create", kind, meta["name"]))
        if self._key(kind, meta["name"], meta.get("namespace")) in self.objects:
            raise LabClusterError(f'{kind} "{meta["name"]}" already exists')
        if kind not in CLUSTER_SCOPED and self.get("namespaces", meta.get("namespace") or "default") is None:
            raise LabClusterError(f'namespaces "{meta.get("namespace")}" not found')
        self._store(obj)
        self._written()

    def patch(self, kind: str, name: str, namespace: str | None, patch: dict[str, Any]) -> None:
        self.calls.append(("patch", kind, name))
        obj = self.objects.get(self._key(kind, name, namespace))
        if obj is None:
            raise LabClusterError(f'{kind} "{name}" not found')
        _merge(obj, patch)
        if kind == "deployments":
            obj.setdefault("status", {})["readyReplicas"] = (obj.get("spec") or {}).get("replicas", 1)
        self._written()

    def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        self.calls.append(("delete", kind, name))
        self.objects.pop(self._key(kind, name, namespace), None)
        if kind == "namespaces":
            for key in [k for k in self.objects if k[1] == name]:
                del self.objects[key]
        self._written()

    def exec(self, namespace: str, pod: str, argv: list[str], timeout: float = 15.0) -> ExecResult:
        self.calls.append(("exec", namespace, pod, *argv))
        if self.get("pods", pod, namespace) is None:
            return ExecResult(1, "", f'Error from server (NotFound): pods "{pod}" not found')
        if self.exec_fn is None:
            return ExecResult(127, "", f"{argv[0]}: not found")
        return self.exec_fn(self, namespace, pod, argv)

    def node_run(self, node: str, argv: list[str], timeout: float = 15.0) -> ExecResult:
        self.calls.append(("node", node, *argv))
        if self.node_fn is None:
            return ExecResult(127, "", f"{argv[0]}: not found")
        return self.node_fn(self, node, argv)

    def probe(self, source: str, destination: str, port: int, protocol: str = "tcp") -> dict[str, Any]:
        self.calls.append(("probe", source, destination, str(port), protocol))
        if self.probe_fn is None:
            raise LabClusterError("this fake cluster has no kernel to probe")
        return self.probe_fn(self, source, destination, port, protocol)

    def sleep(self, seconds: float) -> None:
        pass
