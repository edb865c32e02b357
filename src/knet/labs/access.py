"""How a lab touches a cluster: the `ClusterAccess` interface (objects, exec in a pod, a command
in a node), its real side (`kubectl` with the cluster's admin kubeconfig, `knet ssh`), and the
`Setup` recorder through which a lab's `start` changes the cluster, writing down how to undo
each change so `knet lab reset` can put the cluster back."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from knet.labs.facts import pod_ready


class LabClusterError(RuntimeError):
    """The cluster refused or could not do what a lab asked (the message says what)."""


@dataclass(frozen=True)
class ExecResult:
    rc: int
    stdout: str
    stderr: str = ""

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


class ClusterAccess(Protocol):
    """Kinds are kubectl's resource names (pods, services, deployments, configmaps, nodes, ...)."""

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def list(self, kind: str, namespace: str | None = None, selector: str | None = None) -> list[dict[str, Any]]: ...

    def create(self, obj: dict[str, Any]) -> None: ...

    def patch(self, kind: str, name: str, namespace: str | None, patch: dict[str, Any]) -> None: ...

    def delete(self, kind: str, name: str, namespace: str | None = None) -> None: ...

    def exec(self, namespace: str, pod: str, argv: list[str], timeout: float = 15.0) -> ExecResult: ...

    def node_run(self, node: str, argv: list[str], timeout: float = 15.0) -> ExecResult: ...

    def probe(self, source: str, destination: str, port: int, protocol: str = "tcp") -> dict[str, Any]:
        """`knet trace SOURCE DESTINATION --port P --probe`: a real connection, what the kernel did
        with it and why (the walk): {"outcome": connected|refused|timeout|error, "agrees": the walk
        and the kernel agree, "reason": the walk's verdict, "policy": the policy rules that allowed it,
        "message": the probe's summary}."""
        ...

    def sleep(self, seconds: float) -> None: ...


# ------------------------------------------------------------------------------ the real side

class KubectlCluster:
    """The real side: kubectl with the cluster's admin kubeconfig (whatever the user's current
    context is), and `knet ssh` for commands in a node."""

    def __init__(self, cluster_name: str, kubeconfig: Path, *, dataplane: str = "real",
                 kubectl: str = "kubectl", knet: list[str] | None = None) -> None:
        self.cluster_name = cluster_name
        self.kubeconfig = kubeconfig
        self.dataplane = dataplane
        self._kubectl = kubectl
        if knet is None:
            from knet.cluster.bootstrap import knet_argv

            knet = knet_argv()
        self._knet = knet

    def _run(self, args: list[str], *, input: str | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([self._kubectl, "--kubeconfig", str(self.kubeconfig), *args], input=input,
                                  capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise LabClusterError("kubectl is not on PATH (knet lab drives the cluster with kubectl)") from None
        except subprocess.TimeoutExpired:
            raise LabClusterError(f"kubectl {' '.join(args)}: no answer within {timeout:.0f}s") from None

    def _ok(self, args: list[str], **kw: Any) -> str:
        result = self._run(args, **kw)
        if result.returncode != 0:
            raise LabClusterError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    @staticmethod
    def _ns(namespace: str | None) -> list[str]:
        return ["-n", namespace] if namespace else []

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        result = self._run(["get", kind, name, *self._ns(namespace), "-o", "json"])
        if result.returncode != 0:
            if "NotFound" in result.stderr or "not found" in result.stderr:
                return None
            raise LabClusterError(f"kubectl get {kind} {name}: {result.stderr.strip()}")
        return json.loads(result.stdout)

    def list(self, kind: str, namespace: str | None = None, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", kind, *self._ns(namespace), "-o", "json"]
        if selector:
            args += ["-l", selector]
        if namespace is None and kind not in ("nodes", "namespaces"):
            args.append("-A")
        return json.loads(self._ok(args)).get("items") or []

    def create(self, obj: dict[str, Any]) -> None:
        self._ok(["create", "-f", "-"], input=json.dumps(obj))

    def patch(self, kind: str, name: str, namespace: str | None, patch: dict[str, Any]) -> None:
        self._ok(["patch", kind, name, *self._ns(namespace), "--type", "merge", "-p", json.dumps(patch)])

    def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        self._ok(["delete", kind, name, *self._ns(namespace), "--ignore-not-found", "--timeout=90s"], timeout=120)

    def exec(self, namespace: str, pod: str, argv: list[str], timeout: float = 15.0) -> ExecResult:
        try:
            result = self._run(["exec", "-n", namespace, pod, "--", *argv], timeout=timeout)
        except LabClusterError as exc:
            return ExecResult(124, "", str(exc))
        return ExecResult(result.returncode, result.stdout, result.stderr)

    def node_run(self, node: str, argv: list[str], timeout: float = 15.0) -> ExecResult:
        if self.dataplane != "real":
            raise LabClusterError(f'cluster "{self.cluster_name}" has a simulated dataplane: node {node} '
                                  "is not a machine to look into (this lab needs --dataplane real)")
        try:
            result = subprocess.run([*self._knet, "ssh", "--name", self.cluster_name, node, "--", *argv],
                                    capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return ExecResult(124, "", f"no answer from node {node} within {timeout:.0f}s")
        return ExecResult(result.returncode, result.stdout, result.stderr)

    def probe(self, source: str, destination: str, port: int, protocol: str = "tcp") -> dict[str, Any]:
        if self.dataplane != "real":
            raise LabClusterError(f'cluster "{self.cluster_name}" has a simulated dataplane: no kernel to probe '
                                  "(this lab needs --dataplane real)")
        argv = [*self._knet, "trace", "--name", self.cluster_name, source, destination, "--port", str(port),
                "--protocol", protocol, "--probe", "-o", "json"]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise LabClusterError(f"knet trace {source} {destination} --probe: no answer within 60s") from None
        try:  # exit 1 with a report: the kernel and the walk disagree (said in the facts)
            data = json.loads(result.stdout)
        except ValueError:
            raise LabClusterError(f"knet trace {source} {destination} --probe: "
                                  f"{(result.stderr or result.stdout).strip()[:500]}") from None
        got = data.get("probe") or {}
        path = (data.get("paths") or [{}])[0]
        return {"outcome": got.get("outcome", "error"), "agrees": bool(got.get("agrees") and got.get("rules_agree")),
                "reason": data.get("reason", ""), "policy": path.get("policy") or [],
                "message": f"{got.get('message', '')}; kernel trace: {got.get('rules', '')}"}

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


# ------------------------------------------------------------------ setup, undo and waiting

def undo_patch(old: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that puts back what `patch` changes in `old` (absent fields -> null,
    which a merge patch removes). Pure."""
    out: dict[str, Any] = {}
    for key, value in patch.items():
        before = old.get(key) if isinstance(old, dict) else None
        if isinstance(value, dict) and isinstance(before, dict):
            out[key] = undo_patch(before, value)
        else:
            out[key] = before
    return out


class Setup:
    """What a lab's `setup` may do. Each change is recorded (with `record`, which the engine
    persists at once) as the step that undoes it, before or as it is made."""

    def __init__(self, cluster: ClusterAccess, record: Callable[[dict[str, Any]], None]) -> None:
        self.cluster = cluster
        self._record = record

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        if self.cluster.get("namespaces", name) is not None:
            raise LabClusterError(f"namespace {name} already exists: delete it (kubectl delete namespace {name}) "
                                  "or run knet lab reset")
        self._record({"op": "delete", "kind": "namespaces", "name": name, "namespace": None})
        self.cluster.create({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": name, "labels": {"knet.io/lab": "true", **(labels or {})}}})

    def create(self, kind: str, obj: dict[str, Any]) -> None:
        """Create an object (kind: its kubectl resource name, for the undo)."""
        meta = obj["metadata"]
        self._record({"op": "delete", "kind": kind, "name": meta["name"], "namespace": meta.get("namespace")})
        self.cluster.create(obj)

    def patch(self, kind: str, name: str, namespace: str | None, patch: dict[str, Any], *,
              wait_ready_on_undo: bool = False) -> None:
        """Change an object that was there before the lab; reset restores the fields it changed
        (and, with wait_ready_on_undo, waits for the Deployment to be ready again)."""
        old = self.cluster.get(kind, name, namespace)
        if old is None:
            raise LabClusterError(f"{kind} {namespace}/{name} does not exist: this lab needs it")
        self._record({"op": "patch", "kind": kind, "name": name, "namespace": namespace,
                      "patch": undo_patch(old, patch), "wait_ready": wait_ready_on_undo})
        self.cluster.patch(kind, name, namespace, patch)

    def wait_ready(self, namespace: str, timeout: float = 90.0) -> None:
        wait_namespace_ready(self.cluster, namespace, timeout)

    def restart_on_undo(self, namespace: str, selector: str, daemonset: str) -> None:
        """Record (only) that reset must restart a DaemonSet's pods, after undoing what is recorded
        later (steps are undone last first): so they start again with what reset put back."""
        self._record({"op": "restart", "namespace": namespace, "selector": selector, "daemonset": daemonset})

    def restart_pods(self, namespace: str, selector: str) -> None:
        """Delete the pods a selector picks, for their controller to start new ones (which read
        their configuration again, as after `kubectl rollout restart`)."""
        for pod in self.cluster.list("pods", namespace, selector):
            self.cluster.delete("pods", pod["metadata"]["name"], namespace)


def namespace_not_ready(cluster: ClusterAccess, namespace: str) -> list[str]:
    """What in a namespace is not ready yet (pods, Deployments); empty when everything is."""
    waiting = []
    for d in cluster.list("deployments", namespace):
        want = (d.get("spec") or {}).get("replicas", 1)
        have = (d.get("status") or {}).get("readyReplicas") or 0
        if have < want:
            waiting.append(f"deployment {d['metadata']['name']} ({have}/{want} ready)")
    for p in cluster.list("pods", namespace):
        if not pod_ready(p):
            waiting.append(f"pod {p['metadata']['name']} ({(p.get('status') or {}).get('phase', 'Pending')})")
    return waiting


def wait_namespace_ready(cluster: ClusterAccess, namespace: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        waiting = namespace_not_ready(cluster, namespace)
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise LabClusterError(f"not ready after {timeout:.0f}s in namespace {namespace}: {', '.join(waiting)}")
        cluster.sleep(0.5)


def wait_deployment_ready(cluster: ClusterAccess, name: str, namespace: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        d = cluster.get("deployments", name, namespace) or {}
        want = (d.get("spec") or {}).get("replicas", 1)
        have = (d.get("status") or {}).get("readyReplicas") or 0
        if have >= want:
            return
        if time.monotonic() > deadline:
            raise LabClusterError(f"deployment {namespace}/{name}: {have}/{want} ready after {timeout:.0f}s")
        cluster.sleep(0.5)


def restart_daemonset_pods(cluster: ClusterAccess, namespace: str, selector: str, daemonset: str,
                           timeout: float) -> None:
    """Delete a DaemonSet's pods and wait until new ones are Ready on every node it covers."""
    old = {p["metadata"]["name"] for p in cluster.list("pods", namespace, selector)}
    for name in sorted(old):
        cluster.delete("pods", name, namespace)
    deadline = time.monotonic() + timeout
    while True:
        ds = cluster.get("daemonsets", daemonset, namespace) or {}
        want = (ds.get("status") or {}).get("desiredNumberScheduled") or 0
        pods = [p for p in cluster.list("pods", namespace, selector) if p["metadata"]["name"] not in old]
        ready = [p for p in pods if pod_ready(p)]
        if want and len(ready) >= want:
            return
        if time.monotonic() > deadline:
            raise LabClusterError(f"daemonset {namespace}/{daemonset}: {len(ready)}/{want} new pods ready "
                                  f"after {timeout:.0f}s")
        cluster.sleep(0.5)


def run_undo(cluster: ClusterAccess, steps: list[dict[str, Any]], timeout: float = 90.0) -> list[str]:
    """Undo recorded steps, last first. Returns what failed (each step is tried)."""
    failures = []
    for step in reversed(steps):
        try:
            if step["op"] == "delete":
                cluster.delete(step["kind"], step["name"], step.get("namespace"))
            elif step["op"] == "patch":
                cluster.patch(step["kind"], step["name"], step.get("namespace"), step["patch"])
                if step.get("wait_ready") and step["kind"] == "deployments":
                    wait_deployment_ready(cluster, step["name"], step["namespace"], timeout)
            elif step["op"] == "restart":
                restart_daemonset_pods(cluster, step["namespace"], step["selector"], step["daemonset"], timeout)
        except LabClusterError as exc:
            failures.append(str(exc))
    return failures
