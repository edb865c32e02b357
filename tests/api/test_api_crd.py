"""CustomResourceDefinitions with the real kubectl 1.32 and the kubernetes Python client: a CRD
with a structural schema, defaults, printer columns, status and scale subresources becomes
Established and its resource is served (discovery, OpenAPI for `kubectl explain`, every verb);
invalid custom objects get 422 with field paths, unknown fields are pruned, the status
subresource ignores spec changes, `kubectl scale` works, watches see the changes; deleting the
CRD deletes its objects and the resource; RBAC treats custom resources as any resource; CRDs
and their objects survive a restart."""

from __future__ import annotations

import json
import re
import threading
import uuid

import pytest
import yaml

pytestmark = pytest.mark.api


def _cols(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def crd_manifest(group: str, scope: str = "Namespaced", versions: list[str] | None = None) -> dict:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object", "description": "What the widget should be.",
                "required": ["color"],
                "properties": {
                    "color": {"type": "string", "enum": ["red", "green", "blue"], "description": "The widget's colour."},
                    "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1,
                                 "description": "How many widgets."},
                    "size": {"type": "string", "default": "M", "pattern": "^(S|M|L)$"},
                    "selector": {"type": "string"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "port": {"x-kubernetes-int-or-string": True},
                },
            },
            "status": {"type": "object", "properties": {
                "replicas": {"type": "integer"}, "phase": {"type": "string"}}},
        },
    }
    names = versions or ["v1"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group, "scope": scope,
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{
                "name": v, "served": True, "storage": v == names[-1],
                "schema": {"openAPIV3Schema": schema},
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                         "statusReplicasPath": ".status.replicas",
                                                         "labelSelectorPath": ".spec.selector"}},
                "additionalPrinterColumns": [
                    {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Size", "type": "string", "jsonPath": ".spec.size", "priority": 1},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
            } for v in names],
        },
    }


def widget(group: str, name: str, version: str = "v1", **spec) -> str:
    return yaml.safe_dump({"apiVersion": f"{group}/{version}", "kind": "Widget", "metadata": {"name": name},
                           "spec": spec})


@pytest.fixture
def kubectl(apiserver, tmp_path):
    """kubectl with its own discovery cache (resources come and go in these tests)."""
    def run(*args: str, input: str | None = None, ok: bool = True, cache: str = "cache"):
        p = apiserver.kubectl(f"--cache-dir={tmp_path / cache}", *args, input=input)
        if ok:
            assert p.returncode == 0, f"kubectl {' '.join(args)} failed:\n{p.stderr}"
        return p
    return run


def apply_crd(kubectl, manifest: dict) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
    kubectl("wait", "--for=condition=Established", f"crd/{manifest['metadata']['name']}", "--timeout=20s")


def test_crd_established_and_served_with_kubectl(apiserver, namespace, kubectl):
    group = f"t{uuid.uuid4().hex[:6]}.example.com"
    manifest = crd_manifest(group)
    crd_name = manifest["metadata"]["name"]
    apply_crd(kubectl, manifest)
    try:
        crd = json.loads(kubectl("get", "crd", crd_name, "-o", "json").stdout)
        conds = {c["type"]: c for c in crd["status"]["conditions"]}
        assert conds["NamesAccepted"]["status"] == "True" and conds["NamesAccepted"]["reason"] == "NoConflicts"
        assert conds["Established"]["status"] == "True"
        assert crd["status"]["acceptedNames"]["kind"] == "Widget"
        assert crd["status"]["acceptedNames"]["listKind"] == "WidgetList"
        assert crd["status"]["storedVersions"] == ["v1"]
        assert crd["spec"]["conversion"] == {"strategy": "None"}
        table = kubectl("get", "crd", crd_name).stdout.splitlines()
        assert _cols(table[0]) == ["NAME", "CREATED AT"]
        assert _cols(table[1])[0] == crd_name
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", _cols(table[1])[1])
        assert crd_name in kubectl("get", "crds").stdout

        resources = kubectl("api-resources", f"--api-group={group}").stdout.splitlines()
        assert _cols(resources[1]) == ["widgets", "wd", f"{group}/v1", "true", "Widget"]

        # create: client-side apply, defaults set; server-side apply of another
        kubectl("-n", namespace, "apply", "-f", "-", input=widget(group, "w1", color="red"))
        kubectl("-n", namespace, "apply", "--server-side", "-f", "-",
                input=widget(group, "w2", color="blue", replicas=3, size="L", port="http"))
        w1 = json.loads(kubectl("-n", namespace, "get", "widget", "w1", "-o", "json").stdout)
        assert w1["spec"] == {"color": "red", "replicas": 1, "size": "M"}
        assert w1["metadata"]["generation"] == 1
        w2 = json.loads(kubectl("-n", namespace, "get", "wd", "w2", "-o", "json", "--show-managed-fields").stdout)
        assert w2["spec"] == {"color": "blue", "replicas": 3, "size": "L", "port": "http"}
        assert any(m["manager"] == "kubectl" and m["operation"] == "Apply" for m in w2["metadata"]["managedFields"])

        # printer columns (priority 1 only with -o wide)
        table = kubectl("-n", namespace, "get", "widgets").stdout.splitlines()
        assert _cols(table[0]) == ["NAME", "COLOR", "REPLICAS", "PHASE", "AGE"]
        # no status.phase yet: an empty (null) cell
        assert _cols(table[1])[:3] == ["w1", "red", "1"] and len(_cols(table[1])) == 4
        assert _cols(table[2])[:3] == ["w2", "blue", "3"]
        wide = kubectl("-n", namespace, "get", "widgets", "-o", "wide").stdout.splitlines()
        assert _cols(wide[0]) == ["NAME", "COLOR", "REPLICAS", "PHASE", "SIZE", "AGE"]  # in the CRD's order
        assert _cols(wide[2])[:3] == ["w2", "blue", "3"] and _cols(wide[2])[-2] == "L"

        # a second client-side apply changes the object (a merge patch: custom resources have no
        # strategic merge) and bumps the generation
        kubectl("-n", namespace, "apply", "-f", "-", input=widget(group, "w1", color="green", replicas=2))
        w1 = json.loads(kubectl("-n", namespace, "get", "widget", "w1", "-o", "json").stdout)
        assert (w1["spec"]["color"], w1["spec"]["replicas"], w1["metadata"]["generation"]) == ("green", 2, 2)
        p = kubectl("-n", namespace, "patch", "widget", "w1", "--type=strategic", "-p", '{"spec":{"replicas":3}}',
                    ok=False)
        assert p.returncode != 0 and "the body of the request was in an unknown format" in p.stderr, p.stderr

        # explain reads the schema from OpenAPI v3
        explained = kubectl("explain", "widget.spec").stdout
        assert re.search(r"^KIND:\s+Widget$", explained, re.M), explained
        assert re.search(rf"^GROUP:\s+{re.escape(group)}$", explained, re.M), explained
        assert re.search(r"^VERSION:\s+v1$", explained, re.M), explained
        assert re.search(r"^\s+color\s+<string> -required-$", explained, re.M), explained
        assert "The widget's colour." in explained
        assert re.search(r"^\s+replicas\s+<integer>$", explained, re.M), explained

        described = kubectl("-n", namespace, "describe", "widget", "w2").stdout
        assert re.search(r"^Name:\s+w2$", described, re.M) and re.search(r"^Kind:\s+Widget$", described, re.M)
    finally:
        kubectl("delete", "crd", crd_name, "--ignore-not-found", "--wait=false", ok=False)


def test_custom_objects_validation_pruning_and_subresources(apiserver, namespace, kubectl):
    group = f"t{uuid.uuid4().hex[:6]}.example.com"
    manifest = crd_manifest(group)
    crd_name = manifest["metadata"]["name"]
    apply_crd(kubectl, manifest)
    try:
        # 422 with upstream's field paths and words
        p = kubectl("-n", namespace, "apply", "-f", "-", input=widget(group, "bad", color="pink", replicas="many"),
                    ok=False)
        assert p.returncode != 0
        assert 'spec.replicas: Invalid value: "many": spec.replicas in body must be of type integer: "string"' in p.stderr, p.stderr
        assert 'spec.color: Unsupported value: "pink": supported values: "red", "green", "blue"' in p.stderr, p.stderr
        p = kubectl("-n", namespace, "create", "-f", "-", input=widget(group, "bad", size="XL", replicas=11), ok=False)
        assert "spec.color: Required value" in p.stderr, p.stderr
        assert "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10" in p.stderr
        assert "spec.size: Invalid value: \"XL\": spec.size in body should match '^(S|M|L)$'" in p.stderr
        p = kubectl("-n", namespace, "create", "-f", "-", input=widget(group, "Bad_Name", color="red"), ok=False)
        assert 'metadata.name: Invalid value: "Bad_Name"' in p.stderr, p.stderr

        # strict field validation (kubectl's default) refuses unknown fields; else they are pruned
        p = kubectl("-n", namespace, "create", "-f", "-", input=widget(group, "strict", color="red", bogus=1), ok=False)
        assert 'unknown field "spec.bogus"' in p.stderr, p.stderr
        import kubernetes

        api = kubernetes.client.CustomObjectsApi(apiserver.client())
        body = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "pruned"}, "top": 1,
                "spec": {"color": "red", "bogus": {"a": 1}, "labels": {"a": "b"}, "extra": {"anything": [1, {"x": 2}]}},
                "status": {"phase": "Ready"}}
        made = api.create_namespaced_custom_object(group, "v1", namespace, "widgets", body)
        assert "top" not in made and "bogus" not in made["spec"]
        assert made["spec"] == {"color": "red", "replicas": 1, "size": "M", "labels": {"a": "b"},
                                "extra": {"anything": [1, {"x": 2}]}}
        assert "status" not in made  # written through the status subresource only

        # status subresource: spec changes ignored there, status ignored on the main resource
        kubectl("-n", namespace, "patch", "widget", "pruned", "--subresource=status", "--type=merge",
                "-p", '{"status":{"phase":"Ready","replicas":1},"spec":{"color":"blue"}}')
        got = json.loads(kubectl("-n", namespace, "get", "widget", "pruned", "-o", "json").stdout)
        assert got["status"] == {"phase": "Ready", "replicas": 1}
        assert got["spec"]["color"] == "red" and got["metadata"]["generation"] == 1
        kubectl("-n", namespace, "patch", "widget", "pruned", "--type=merge",
                "-p", '{"status":{"phase":"Gone"},"spec":{"color":"green"}}')
        got = json.loads(kubectl("-n", namespace, "get", "widget", "pruned", "-o", "json").stdout)
        assert got["status"]["phase"] == "Ready" and got["spec"]["color"] == "green"
        assert got["metadata"]["generation"] == 2
        p = kubectl("-n", namespace, "patch", "widget", "pruned", "--subresource=status", "--type=merge",
                    "-p", '{"status":{"replicas":"x"}}', ok=False)
        assert 'status.replicas: Invalid value: "x": status.replicas in body must be of type integer: "string"' \
            in p.stderr, p.stderr

        # scale subresource: kubectl scale writes specReplicasPath
        api.patch_namespaced_custom_object(group, "v1", namespace, "widgets", "pruned", {"spec": {"selector": "app=w"}})
        kubectl("-n", namespace, "scale", "widget", "pruned", "--replicas=4")
        got = json.loads(kubectl("-n", namespace, "get", "widget", "pruned", "-o", "json").stdout)
        assert got["spec"]["replicas"] == 4
        scale = json.loads(kubectl("get", "--raw",
                                   f"/apis/{group}/v1/namespaces/{namespace}/widgets/pruned/scale").stdout)
        assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
        assert scale["spec"] == {"replicas": 4} and scale["status"] == {"replicas": 1, "selector": "app=w"}
        p = kubectl("-n", namespace, "scale", "widget", "pruned", "--replicas=20", ok=False)
        assert "spec.replicas" in p.stderr and "less than or equal to 10" in p.stderr, p.stderr
    finally:
        kubectl("delete", "crd", crd_name, "--ignore-not-found", "--wait=false", ok=False)


def test_watch_and_crd_deletion_removes_objects(apiserver, namespace, kubectl):
    import kubernetes

    group = f"t{uuid.uuid4().hex[:6]}.example.com"
    manifest = crd_manifest(group)
    crd_name = manifest["metadata"]["name"]
    apply_crd(kubectl, manifest)
    client = apiserver.client()
    api = kubernetes.client.CustomObjectsApi(client)
    seen: list[tuple[str, str]] = []
    started = threading.Event()

    def watch() -> None:
        w = kubernetes.watch.Watch()
        started.set()
        for ev in w.stream(api.list_namespaced_custom_object, group, "v1", namespace, "widgets", timeout_seconds=15):
            seen.append((ev["type"], ev["object"]["metadata"]["name"]))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    started.wait()
    import time

    time.sleep(0.5)
    kubectl("-n", namespace, "create", "-f", "-", input=widget(group, "watched", color="red"))
    api.patch_namespaced_custom_object(group, "v1", namespace, "widgets", "watched", {"spec": {"replicas": 5}})
    kubectl("-n", namespace, "delete", "widget", "watched")
    t.join(20)
    assert seen == [("ADDED", "watched"), ("MODIFIED", "watched"), ("DELETED", "watched")]

    for i in range(3):
        kubectl("-n", namespace, "create", "-f", "-", input=widget(group, f"w{i}", color="red"))
    kubectl("-n", namespace, "label", "widget", "w0", "w1", "batch=one")
    gone = api.delete_collection_namespaced_custom_object(group, "v1", namespace, "widgets", label_selector="batch=one")
    assert sorted(i["metadata"]["name"] for i in gone["items"]) == ["w0", "w1"]
    assert kubectl("-n", namespace, "get", "widgets", "-o", "name").stdout.split() == [f"widget.{group}/w2"]
    kubectl("-n", namespace, "create", "-f", "-", input=widget(group, "w3", color="red"))
    kubectl("delete", "crd", crd_name, "--timeout=30s")
    p = kubectl("get", "crd", crd_name, ok=False)
    assert "NotFound" in p.stderr or "not found" in p.stderr
    p = kubectl("-n", namespace, "get", "widgets", ok=False, cache="fresh")
    assert p.returncode != 0
    assert 'the server doesn\'t have a resource type "widgets"' in p.stderr, p.stderr
    raw = apiserver.kubectl("get", "--raw", f"/apis/{group}/v1/namespaces/{namespace}/widgets")
    assert raw.returncode != 0 and "NotFound" in raw.stderr
    groups = json.loads(apiserver.kubectl_ok("get", "--raw", "/apis"))
    assert group not in {g["name"] for g in groups["groups"]}

    # created again, it has no objects left from before
    apply_crd(kubectl, manifest)
    try:
        out = kubectl("-n", namespace, "get", "widgets", cache="again")
        assert "No resources found" in out.stderr
    finally:
        kubectl("delete", "crd", crd_name, "--timeout=30s")


def test_deleting_a_crd_waits_for_its_objects(apiserver, namespace, kubectl):
    """An object's own finalizer holds the CRD Terminating (customresourcecleanup finalizer);
    meanwhile no new object can be created."""
    group = f"t{uuid.uuid4().hex[:6]}.example.com"
    manifest = crd_manifest(group)
    crd_name = manifest["metadata"]["name"]
    apply_crd(kubectl, manifest)
    held = yaml.safe_load(widget(group, "held", color="red"))
    held["metadata"]["finalizers"] = ["example.com/hold"]
    kubectl("-n", namespace, "create", "-f", "-", input=yaml.safe_dump(held))
    kubectl("delete", "crd", crd_name, "--wait=false")
    crd = json.loads(kubectl("get", "crd", crd_name, "-o", "json").stdout)
    assert "customresourcecleanup.apiextensions.k8s.io" in crd["metadata"]["finalizers"]
    assert crd["metadata"].get("deletionTimestamp")
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}.get("Terminating") == "True"
    p = kubectl("-n", namespace, "create", "-f", "-", input=widget(group, "late", color="red"), ok=False)
    assert "create not allowed while custom resource definition is terminating" in p.stderr, p.stderr
    got = json.loads(kubectl("-n", namespace, "get", "widget", "held", "-o", "json").stdout)
    assert got["metadata"].get("deletionTimestamp")
    kubectl("-n", namespace, "patch", "widget", "held", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    kubectl("wait", "--for=delete", f"crd/{crd_name}", "--timeout=20s")


def test_versions_cluster_scope_and_python_client(apiserver, kubectl):
    import kubernetes

    group = f"t{uuid.uuid4().hex[:6]}.example.com"
    manifest = crd_manifest(group, scope="Cluster", versions=["v1beta1", "v1"])
    crd_name = manifest["metadata"]["name"]
    apply_crd(kubectl, manifest)
    client = apiserver.client()
    try:
        ext = kubernetes.client.ApiextensionsV1Api(client)
        crd = ext.read_custom_resource_definition(crd_name)
        assert crd.spec.scope == "Cluster" and crd.status.stored_versions == ["v1"]
        assert [c.type for c in crd.status.conditions if c.status == "True"] == ["NamesAccepted", "Established"]

        api = kubernetes.client.CustomObjectsApi(client)
        old = api.create_cluster_custom_object(group, "v1beta1", "widgets", {
            "apiVersion": f"{group}/v1beta1", "kind": "Widget", "metadata": {"name": "c1"}, "spec": {"color": "red"}})
        assert old["apiVersion"] == f"{group}/v1beta1"
        new = api.get_cluster_custom_object(group, "v1", "widgets", "c1")
        assert new["apiVersion"] == f"{group}/v1" and new["spec"]["replicas"] == 1
        listed = api.list_cluster_custom_object(group, "v1beta1", "widgets")
        assert [i["apiVersion"] for i in listed["items"]] == [f"{group}/v1beta1"]
        api.patch_cluster_custom_object(group, "v1beta1", "widgets", "c1", {"spec": {"replicas": 7}})
        assert api.get_cluster_custom_object(group, "v1", "widgets", "c1")["spec"]["replicas"] == 7
        api.patch_cluster_custom_object_status(group, "v1beta1", "widgets", "c1", {"status": {"phase": "Up"},
                                                                                    "spec": {"replicas": 0}})
        got = api.get_cluster_custom_object(group, "v1", "widgets", "c1")
        assert got["status"] == {"phase": "Up"} and got["spec"]["replicas"] == 7
        # kubectl prefers the storage version; either name works
        assert _cols(kubectl("get", "widgets").stdout.splitlines()[1])[:3] == ["c1", "red", "7"]
        assert json.loads(kubectl("get", f"widgets.v1beta1.{group}", "c1", "-o", "json").stdout)["apiVersion"] == \
            f"{group}/v1beta1"
        p = kubectl("get", "--raw", f"/apis/{group}/v1/namespaces/default/widgets", ok=False)
        assert p.returncode != 0
        api.delete_cluster_custom_object(group, "v1", "widgets", "c1")
        assert api.list_cluster_custom_object(group, "v1", "widgets")["items"] == []
    finally:
        kubectl("delete", "crd", crd_name, "--ignore-not-found", "--timeout=30s", ok=False)


def test_invalid_crds_are_refused(apiserver, kubectl):
    group = f"t{uuid.uuid4().hex[:6]}.example.com"
    bad = crd_manifest(group)
    bad["metadata"]["name"] = f"gadgets.{group}"
    schema = bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"]["properties"]["loose"] = {"properties": {"a": {"type": "string"}}}
    bad["spec"]["versions"][0]["storage"] = False
    bad["spec"]["scope"] = "Global"
    p = kubectl("create", "-f", "-", input=yaml.safe_dump(bad), ok=False)
    assert p.returncode != 0
    assert f'metadata.name: Invalid value: "gadgets.{group}": must be spec.names.plural+"."+spec.group' in p.stderr
    assert 'spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"' in p.stderr
    assert ("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[loose].type: Required value: "
            "must not be empty for specified object fields") in p.stderr, p.stderr
    assert "must have exactly one version marked as storage version" in p.stderr
    no_schema = crd_manifest(group)
    del no_schema["spec"]["versions"][0]["schema"]
    p = kubectl("create", "-f", "-", input=yaml.safe_dump(no_schema), ok=False)
    assert "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required" in p.stderr, p.stderr


def test_custom_resources_are_authorized_like_any_resource(apiserver, namespace, kubectl):
    group = f"t{uuid.uuid4().hex[:6]}.example.com"
    manifest = crd_manifest(group)
    crd_name = manifest["metadata"]["name"]
    apply_crd(kubectl, manifest)
    try:
        kubectl("-n", namespace, "create", "rolebinding", "viewers", "--clusterrole=view", "--user=vera")
        kubectl("-n", namespace, "create", "-f", "-", input=widget(group, "mine", color="red"))
        p = kubectl("-n", namespace, "--as=vera", "create", "-f", "-", input=widget(group, "hers", color="red"),
                    ok=False)
        assert p.returncode != 0
        assert (f'widgets.{group} is forbidden: User "vera" cannot create resource "widgets" in API group "{group}" '
                f'in the namespace "{namespace}"') in p.stderr, p.stderr
        # view is not aggregated with custom resources unless a role says so
        p = kubectl("-n", namespace, "--as=vera", "get", "widgets", ok=False)
        assert "forbidden" in p.stderr
        kubectl("create", "role", "-n", namespace, "widget-reader", "--verb=get,list",
                f"--resource=widgets.{group}")
        kubectl("-n", namespace, "create", "rolebinding", "widget-readers", "--role=widget-reader", "--user=vera")
        assert "mine" in kubectl("-n", namespace, "--as=vera", "get", "widgets").stdout
        p = kubectl("-n", namespace, "--as=vera", "delete", "widget", "mine", ok=False)
        assert "forbidden" in p.stderr
    finally:
        kubectl("delete", "crd", crd_name, "--ignore-not-found", "--wait=false", ok=False)


def test_crds_and_objects_survive_a_restart(apiserver_factory, tmp_path):
    server = apiserver_factory()
    group = f"t{uuid.uuid4().hex[:6]}.example.com"
    manifest = crd_manifest(group)

    def k(*args: str, input: str | None = None) -> str:
        return server.kubectl_ok(f"--cache-dir={tmp_path / 'c'}", *args, input=input)

    k("apply", "-f", "-", input=yaml.safe_dump(manifest))
    k("wait", "--for=condition=Established", f"crd/{manifest['metadata']['name']}", "--timeout=20s")
    k("-n", "default", "create", "-f", "-", input=widget(group, "kept", color="blue"))
    server.stop()
    server.start()
    got = json.loads(k("-n", "default", "get", "widget", "kept", "-o", "json"))
    assert got["spec"] == {"color": "blue", "replicas": 1, "size": "M"}
    assert _cols(k("-n", "default", "get", "widgets").splitlines()[0]) == ["NAME", "COLOR", "REPLICAS", "PHASE", "AGE"]
    k("-n", "default", "create", "-f", "-", input=widget(group, "after", color="red"))


def test_defaults_added_later_show_on_reads(apiserver, namespace, kubectl):
    """A default added to the schema shows on objects written before, on get, list and watch
    (apiextensions-apiserver defaults what it reads from storage), without rewriting them."""
    import kubernetes

    group = f"t{uuid.uuid4().hex[:6]}.example.com"
    manifest = crd_manifest(group)
    crd_name = manifest["metadata"]["name"]
    apply_crd(kubectl, manifest)
    try:
        kubectl("-n", namespace, "create", "-f", "-", input=widget(group, "old", color="red"))
        before = json.loads(kubectl("-n", namespace, "get", "widget", "old", "-o", "json").stdout)
        assert "tier" not in before["spec"]
        props = manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        props["tier"] = {"type": "string", "default": "gold"}
        kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
        api = kubernetes.client.CustomObjectsApi(apiserver.client())
        import time

        deadline = time.monotonic() + 10
        while api.get_namespaced_custom_object(group, "v1", namespace, "widgets", "old")["spec"].get("tier") != "gold":
            assert time.monotonic() < deadline, "the new default never showed"
            time.sleep(0.05)
        got = api.get_namespaced_custom_object(group, "v1", namespace, "widgets", "old")
        assert got["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # not rewritten
        listed = api.list_namespaced_custom_object(group, "v1", namespace, "widgets")
        assert [i["spec"]["tier"] for i in listed["items"]] == ["gold"]
        w = kubernetes.watch.Watch()
        events = list(w.stream(api.list_namespaced_custom_object, group, "v1", namespace, "widgets", timeout_seconds=1))
        assert [(e["type"], e["object"]["spec"]["tier"]) for e in events] == [("ADDED", "gold")]
    finally:
        kubectl("delete", "crd", crd_name, "--ignore-not-found", "--wait=false", ok=False)
