"""pods/ephemeralcontainers with the real kubectl 1.32 (`kubectl debug`, which sends a strategic
merge patch to the subresource) against the session's apiserver (Node,RBAC): the container it
adds, upstream's refusals (422 with field causes), what a plain pod update may not do, RBAC (the
default edit role does not include the subresource, deliberately upstream, so a namespace editor
gets 403 until granted it), `kubectl describe`, discovery, and `kubectl debug --copy-to` /
`node/...` building their pods (the node debugger's hostPath / volume survives kubectl's
protobuf body)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.api


def make_pod(apiserver, ns: str, name: str = "web") -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
           "spec": {"containers": [{"name": "app", "image": "nginx"}]}}
    apiserver.kubectl_ok("apply", "-f", "-", input=json.dumps(pod))


def get_pod(apiserver, ns: str, name: str = "web") -> dict:
    return json.loads(apiserver.kubectl_ok("get", "pod", name, "-n", ns, "-o", "json"))


def debugger_name(stderr_or_out: str) -> str:
    line = next(x for x in stderr_or_out.splitlines() if x.startswith("Defaulting debug container name to "))
    return line.removeprefix("Defaulting debug container name to ").rstrip(".")


def test_kubectl_debug_adds_an_ephemeral_container(apiserver, namespace):
    ns = namespace
    make_pod(apiserver, ns)
    p = apiserver.kubectl("debug", "web", "-n", ns, "--image=busybox", "--target=app", "--", "ps")
    assert p.returncode == 0, p.stderr
    assert 'Targeting container "app".' in p.stdout
    name = debugger_name(p.stdout)
    [ec] = get_pod(apiserver, ns)["spec"]["ephemeralContainers"]
    assert ec["name"] == name and ec["image"] == "busybox" and ec["command"] == ["ps"]
    assert ec["targetContainerName"] == "app"
    assert ec["terminationMessagePolicy"] == "File" and ec["imagePullPolicy"] == "Always"  # defaulted
    # A second one joins it; the first stays.
    p = apiserver.kubectl("debug", "web", "-n", ns, "--image=busybox", "-c", "second", "--", "sleep", "1")
    assert p.returncode == 0, p.stderr
    assert [c["name"] for c in get_pod(apiserver, ns)["spec"]["ephemeralContainers"]] == [name, "second"]
    # kubectl describe lists them; the READY column counts regular containers only.
    described = apiserver.kubectl_ok("describe", "pod", "web", "-n", ns)
    section = described.split("Ephemeral Containers:", 1)[1].split("Volumes:", 1)[0]
    assert f"  {name}:" in section and "  second:" in section and "Image:      busybox" in section
    assert apiserver.kubectl_ok("get", "pod", "web", "-n", ns, "--no-headers").split()[1] == "0/1"
    # The subresource's GET is the pod.
    got = json.loads(apiserver.kubectl_ok("get", "--raw", f"/api/v1/namespaces/{ns}/pods/web/ephemeralcontainers"))
    assert got["kind"] == "Pod" and len(got["spec"]["ephemeralContainers"]) == 2


def test_refusals_are_422_with_upstreams_messages(apiserver, namespace):
    ns = namespace
    make_pod(apiserver, ns)
    p = apiserver.kubectl("debug", "web", "-n", ns, "--image=busybox", "-c", "app")
    assert p.returncode == 1
    assert 'The Pod "web" is invalid: spec.ephemeralContainers[0].name: Duplicate value: "app"' in p.stderr
    p = apiserver.kubectl("debug", "web", "-n", ns, "--image=busybox", "--target=nope")
    assert p.returncode == 1
    assert 'spec.ephemeralContainers[0].targetContainerName: Not found: "nope"' in p.stderr
    assert "ephemeralContainers" not in get_pod(apiserver, ns)["spec"]
    # Fields an ephemeral container may not have, through the subresource's PUT (kubectl replace --raw).
    pod = get_pod(apiserver, ns)
    pod["spec"]["ephemeralContainers"] = [{"name": "dbg", "image": "busybox", "ports": [{"containerPort": 80}],
                                           "readinessProbe": {"exec": {"command": ["true"]}},
                                           "resources": {"limits": {"cpu": "1"}}}]
    p = apiserver.kubectl("replace", "--raw", f"/api/v1/namespaces/{ns}/pods/web/ephemeralcontainers", "-f", "-",
                          "-v=6", input=json.dumps(pod))
    assert p.returncode == 1 and "422 Unprocessable Entity" in p.stderr
    for field in ("ports", "resources", "readinessProbe"):
        assert f"* spec.ephemeralContainers[0].{field}: Forbidden: cannot be set for an Ephemeral Container" \
            in p.stderr
    # Once added, one may be neither removed nor changed.
    apiserver.kubectl_ok("debug", "web", "-n", ns, "--image=busybox", "-c", "dbg", "--", "true")
    for change in ([], [{**get_pod(apiserver, ns)["spec"]["ephemeralContainers"][0], "image": "debian"}]):
        pod = get_pod(apiserver, ns)
        pod["spec"]["ephemeralContainers"] = change
        p = apiserver.kubectl("replace", "--raw", f"/api/v1/namespaces/{ns}/pods/web/ephemeralcontainers", "-f",
                              "-", input=json.dumps(pod))
        assert p.returncode == 1
        message = "may not be removed" if not change else "may not be changed"
        assert f'spec.ephemeralContainers: Forbidden: existing ephemeral containers "dbg" {message}' in p.stderr
    # A plain pod update may not add one (they come only through the subresource).
    p = apiserver.kubectl("patch", "pod", "web", "-n", ns, "-p",
                          json.dumps({"spec": {"ephemeralContainers": [{"name": "sneaky", "image": "busybox"}]}}))
    assert p.returncode == 1 and "Forbidden: pod updates may not change fields" in p.stderr
    # Nor may a pod be created with one.
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "born-with-one", "namespace": ns},
           "spec": {"containers": [{"name": "app", "image": "nginx"}],
                    "ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}}
    p = apiserver.kubectl("create", "-f", "-", input=json.dumps(bad))
    assert p.returncode == 1 and "spec.ephemeralContainers: Forbidden: cannot be set on create" in p.stderr


def test_an_editor_needs_the_subresource_granted(apiserver, namespace, tmp_path):
    ns = namespace
    make_pod(apiserver, ns)
    sa = f"system:serviceaccount:{ns}:dev"
    apiserver.kubectl_ok("create", "serviceaccount", "dev", "-n", ns)
    apiserver.kubectl_ok("create", "rolebinding", "dev-edits", "--clusterrole=edit", f"--serviceaccount={ns}:dev",
                         "-n", ns)
    # Upstream's edit/admin roles leave pods/ephemeralcontainers out on purpose (it bypasses
    # admission written before it existed): kubectl debug is refused, plain pod writes are not.
    assert apiserver.kubectl_ok("auth", "can-i", "patch", "pods", "-n", ns, f"--as={sa}").strip() == "yes"
    assert apiserver.kubectl("auth", "can-i", "patch", "pods", "--subresource=ephemeralcontainers", "-n", ns,
                             f"--as={sa}").stdout.strip() == "no"
    p = apiserver.kubectl("debug", "web", "-n", ns, "--image=busybox", f"--as={sa}", "--", "true")
    assert p.returncode == 1
    assert (f'Error from server (Forbidden): pods "web" is forbidden: User "{sa}" cannot patch resource '
            f'"pods/ephemeralcontainers" in API group "" in the namespace "{ns}"') in p.stderr
    assert "ephemeralContainers" not in get_pod(apiserver, ns)["spec"]
    # Granted the subresource (as the docs say to), the same user can debug.
    apiserver.kubectl_ok("create", "role", "debugger", "--verb=patch,update", "--resource=pods/ephemeralcontainers",
                         "-n", ns)
    apiserver.kubectl_ok("create", "rolebinding", "dev-debugs", "--role=debugger", f"--serviceaccount={ns}:dev",
                         "-n", ns)
    p = apiserver.kubectl("debug", "web", "-n", ns, "--image=busybox", f"--as={sa}", "--", "true")
    assert p.returncode == 0, p.stderr
    assert len(get_pod(apiserver, ns)["spec"]["ephemeralContainers"]) == 1


def test_discovery_serves_the_subresource(apiserver):
    resources = json.loads(apiserver.kubectl_ok("get", "--raw", "/api/v1"))["resources"]
    entry = next(r for r in resources if r["name"] == "pods/ephemeralcontainers")
    assert entry["kind"] == "Pod" and sorted(entry["verbs"]) == ["get", "patch", "update"]


def test_copy_to_and_node_debugging_build_their_pods(apiserver, namespace):
    ns = namespace
    make_pod(apiserver, ns)
    p = apiserver.kubectl("debug", "web", "-n", ns, "--image=busybox", "--copy-to=web-copy", "--share-processes",
                          "--", "sleep", "1")
    assert p.returncode == 0, p.stderr
    assert "Warning" not in p.stderr  # nothing of kubectl's (protobuf) body was dropped as unknown
    copy = get_pod(apiserver, ns, "web-copy")["spec"]
    name = debugger_name(p.stdout)
    assert [c["name"] for c in copy["containers"]] == ["app", name]
    assert copy["shareProcessNamespace"] is True
    p = apiserver.kubectl("debug", "web", "-n", ns, "--image=busybox", "--copy-to=apart", "--share-processes=false",
                          "--profile=restricted", "--", "true")
    assert p.returncode == 0, p.stderr
    apart = get_pod(apiserver, ns, "apart")["spec"]
    assert apart["shareProcessNamespace"] is False  # a stated false (protobuf) is kept
    assert apart["containers"][1]["securityContext"]["allowPrivilegeEscalation"] is False
    # One service-account volume, mounted in both (the copied one, reused).
    [volume] = copy["volumes"]
    assert volume["name"].startswith("kube-api-access-") and "projected" in volume
    assert all(m["name"] == volume["name"] for c in copy["containers"] for m in c["volumeMounts"])
    # kubectl debug node/NAME: the node's / at /host, host namespaces, bound to the node.
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "debug-node"}}
    apiserver.kubectl_ok("create", "-f", "-", input=json.dumps(node))
    try:
        p = apiserver.kubectl("debug", "node/debug-node", "-n", ns, "--image=busybox", "--", "chroot", "/host", "true")
        assert p.returncode == 0, p.stderr
        assert "Warning" not in p.stderr
        pod_name = p.stdout.split("Creating debugging pod ", 1)[1].split()[0]
        assert pod_name.startswith("node-debugger-debug-node-")
        spec = get_pod(apiserver, ns, pod_name)["spec"]
        assert spec["nodeName"] == "debug-node" and spec["restartPolicy"] == "Never"
        assert spec["hostNetwork"] is True and spec["hostPID"] is True and spec["hostIPC"] is True
        host_root = next(v for v in spec["volumes"] if v["name"] == "host-root")
        assert host_root["hostPath"]["path"] == "/"
        assert {"name": "host-root", "mountPath": "/host"} in spec["containers"][0]["volumeMounts"]
    finally:
        apiserver.kubectl("delete", "node", "debug-node", "--wait=false")
