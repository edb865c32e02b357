"""Watch: kubectl get -w (server-side tables over a watch), resourceVersion resume, selector
transitions, 410 Gone for compacted versions (after a restart), bookmarks, and the
kubernetes client's watch."""

from __future__ import annotations

import json
import queue
import ssl
import subprocess
import threading
import time
import urllib.request

import pytest

pytestmark = pytest.mark.api


def raw_watch(apiserver, path: str, timeout: float = 10.0) -> list[dict]:
    """Read a whole (server-terminated) watch stream authenticated with the bearer token."""
    ctx = ssl.create_default_context(cafile=apiserver.ca_file)
    req = urllib.request.Request(apiserver.url + path, headers={"Authorization": f"Bearer {apiserver.token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
        return [json.loads(line) for line in r.read().decode().splitlines() if line.strip()]


def test_kubectl_get_watch_prints_rows_as_they_change(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "create", "configmap", "w0", "--from-literal=a=1")
    proc = subprocess.Popen(["kubectl", f"--kubeconfig={apiserver.kubeconfig}", "-n", namespace, "get", "cm", "-w"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        def next_line() -> list[str]:
            return lines.get(timeout=10).split()

        assert next_line() == ["NAME", "DATA", "AGE"]
        assert next_line()[:2] == ["w0", "1"]
        apiserver.kubectl_ok("-n", namespace, "create", "configmap", "w1", "--from-literal=a=1", "--from-literal=b=2")
        assert next_line()[:2] == ["w1", "2"]
        apiserver.kubectl_ok("-n", namespace, "patch", "cm", "w0", "-p", '{"data":{"c":"3"}}')
        assert next_line()[:2] == ["w0", "2"]
        apiserver.kubectl_ok("-n", namespace, "delete", "cm", "w1")
        assert next_line()[:2] == ["w1", "2"]
    finally:
        proc.terminate()
        proc.wait(5)


def test_resume_from_a_resource_version_and_selector_transitions(apiserver, namespace):
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    apiserver.kubectl_ok("-n", namespace, "create", "configmap", "a")
    rv = json.loads(apiserver.kubectl_ok("get", "--raw", base))["metadata"]["resourceVersion"]
    apiserver.kubectl_ok("-n", namespace, "label", "cm", "a", "team=x")
    apiserver.kubectl_ok("-n", namespace, "label", "cm", "a", "team=y", "--overwrite")
    apiserver.kubectl_ok("-n", namespace, "delete", "cm", "a")
    events = raw_watch(apiserver, f"{base}?watch=1&resourceVersion={rv}&timeoutSeconds=1")
    assert [e["type"] for e in events] == ["MODIFIED", "MODIFIED", "DELETED"]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)
    selected = raw_watch(apiserver, f"{base}?watch=1&resourceVersion={rv}&timeoutSeconds=1&labelSelector=team%3Dx")
    # Entering the selection is ADDED, leaving it DELETED, for this watcher.
    assert [(e["type"], e["object"]["metadata"]["labels"]["team"]) for e in selected] == [("ADDED", "x"), ("DELETED", "y")]


def test_watch_without_version_starts_with_the_current_state(apiserver, namespace):
    for name in ("x1", "x2"):
        apiserver.kubectl_ok("-n", namespace, "create", "configmap", name)
    events = raw_watch(apiserver, f"/api/v1/namespaces/{namespace}/configmaps?watch=true&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "x1"), ("ADDED", "x2")]


def test_python_client_watch_sees_each_change_once(apiserver, namespace):
    import kubernetes

    with apiserver.client() as api_client:
        core = kubernetes.client.CoreV1Api(api_client)
        rv = core.list_namespaced_config_map(namespace).metadata.resource_version
        for i in range(3):
            core.create_namespaced_config_map(namespace, {"metadata": {"name": f"p{i}"}})
        seen = []
        w = kubernetes.watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=5):
            seen.append((ev["type"], ev["object"].metadata.name))
            if len(seen) == 3:
                w.stop()
        assert seen == [("ADDED", "p0"), ("ADDED", "p1"), ("ADDED", "p2")]


def test_too_old_version_after_restart_is_410_and_clients_relist(apiserver_factory):
    server = apiserver_factory()
    if True:
        server.kubectl_ok("create", "configmap", "before", "-n", "default")
        old_rv = json.loads(server.kubectl_ok("get", "--raw", "/api/v1/namespaces/default/configmaps"))["metadata"]["resourceVersion"]
        server.kubectl_ok("create", "configmap", "after", "-n", "default")
        server.stop()
        server.start()
        path = "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&resourceVersion="
        events = raw_watch(server, path + old_rv)
        assert len(events) == 1 and events[0]["type"] == "ERROR"
        status = events[0]["object"]
        assert (status["code"], status["reason"]) == (410, "Expired")
        assert status["message"].startswith(f"too old resource version: {old_rv} (")
        # Re-list, then watch from the list's version: that works, and sees new writes.
        rv = json.loads(server.kubectl_ok("get", "--raw", "/api/v1/namespaces/default/configmaps"))["metadata"]["resourceVersion"]
        result: list = []
        t = threading.Thread(target=lambda: result.extend(raw_watch(server, path.replace("timeoutSeconds=1", "timeoutSeconds=3") + rv)))
        t.start()
        time.sleep(0.5)
        server.kubectl_ok("create", "configmap", "resumed", "-n", "default")
        t.join(10)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in result] == [("ADDED", "resumed")]


def test_bookmarks_carry_the_current_version(apiserver_factory):
    # Bookmarks come when a watch is idle (every 10 s by default; 0.3 s for this server).
    server = apiserver_factory(env={"KNET_WATCH_BOOKMARK_SECONDS": "0.3"})
    server.kubectl_ok("-n", "default", "create", "configmap", "bm")
    events = raw_watch(server, "/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true"
                               "&timeoutSeconds=1&resourceVersion=0", timeout=20)
    assert events[0]["type"] == "ADDED"
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks, events
    assert bookmarks[0]["object"]["kind"] == "ConfigMap"
    assert int(bookmarks[0]["object"]["metadata"]["resourceVersion"]) > 0


def test_watch_list_ends_its_initial_events_with_a_bookmark(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "create", "configmap", "wl")
    events = raw_watch(apiserver, f"/api/v1/namespaces/{namespace}/configmaps?watch=1&sendInitialEvents=true"
                                  "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1")
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
