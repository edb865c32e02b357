"""e2e helpers: a namespace of the test's own in the cluster (deleted afterwards, also when the
test fails, without waiting for its termination) and a busybox client pod in it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cluster_namespace(cluster, name: str) -> Iterator[str]:
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def busybox_pod(name: str, ns: str, service_account: str | None = None) -> dict:
    """A busybox pod that sleeps, to exec commands in; it stops at once when deleted."""
    spec: dict = {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}],
                  "terminationGracePeriodSeconds": 0}
    if service_account:
        spec["serviceAccountName"] = service_account
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def wait_running(cluster, ns: str, name: str) -> None:
    cluster.wait_for(f"pod {ns}/{name} Running", lambda: cluster.kubectl(
        "get", "pod", name, "-n", ns, "-o", "jsonpath={.status.phase}", check=False).stdout == "Running",
        timeout=60, interval=0.2)
