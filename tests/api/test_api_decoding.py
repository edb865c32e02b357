"""Nothing invalid is stored (issue 12, part 4): request bodies are read whole up to 3 MiB (413
beyond, chunked too); YAML is decoded with go-yaml's alias and depth guards; every field of a
built-in kind is type-checked before defaulting, on create, update and every patch type, with
encoding/json's words; patches cannot rename or move an object; resourceVersions get
kube-apiserver's answers; no request ends in a 500 or a dropped connection.

Expected messages are kube-apiserver's (k8s.io/apiserver endpoints/handlers rest.go
transformDecodeError and checkName, patch.go's 422 on field "patch", storage/errors.go
NewTooLargeResourceVersionError, apimachinery's ValidateListOptions)."""

from __future__ import annotations

import json

import pytest
from api_requests import Conn

pytestmark = pytest.mark.api

CM = "/api/v1/namespaces/{ns}/configmaps"


@pytest.fixture
def conn(apiserver):
    with Conn(apiserver) as c:
        yield c


def cm(name: str, data: dict | None = None, **extra) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data or {}, **extra}


def pod(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def assert_status(code: int, doc: dict | None, want: int, reason: str | None = None, message: str | None = None):
    assert doc is not None and doc.get("kind") == "Status", doc
    assert (code, doc["code"], doc["status"]) == (want, want, "Failure"), doc
    if reason is not None:
        assert doc["reason"] == reason, doc
    if message is not None:
        assert message in doc["message"], doc["message"][:2000]


def stored_names(conn, ns: str) -> list[str]:
    code, doc, _ = conn.request("GET", CM.format(ns=ns))
    assert code == 200
    return [i["metadata"]["name"] for i in doc["items"]]


# --- bodies read whole ---------------------------------------------------------------------
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size", [70_000, 1_000_000, 2_900_000])
def test_large_bodies_are_read_whole(conn, namespace, size, chunked):
    for attempt in range(3):  # a short read was random: once is not enough
        name = f"big-{size}-{int(chunked)}-{attempt}"
        value = ("0123456789abcdef" * (size // 16 + 1))[:size]
        code, doc, _ = conn.request("POST", CM.format(ns=namespace), json.dumps(cm(name, {"v": value})),
                                    chunked=chunked)
        assert code == 201, doc
        code, doc, _ = conn.request("GET", CM.format(ns=namespace) + "/" + name)
        assert code == 200 and doc["data"]["v"] == value


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_bodies_over_3mib_are_413(conn, namespace, chunked):
    body = json.dumps(cm("too-big", {"v": "x" * (3 * 1024 * 1024)}))
    code, doc, _ = conn.request("POST", CM.format(ns=namespace), body, chunked=chunked)
    assert_status(code, doc, 413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
    assert "too-big" not in stored_names(Conn(conn.server), namespace)


# --- YAML guards ---------------------------------------------------------------------------
def alias_bomb() -> str:
    """Nine levels of nine aliases each: 9^9 strings once expanded (a few hundred bytes)."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: bomb",
             'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for c in "bcdefghi":
        lines.append(f"{c}: &{c} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = c
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_is_refused(conn, namespace):
    bomb = alias_bomb()
    assert len(bomb) < 500
    code, doc, _ = conn.request("POST", CM.format(ns=namespace), bomb, "application/yaml")
    assert_status(code, doc, 400, "BadRequest", "excessive aliasing")
    assert "bomb" not in stored_names(conn, namespace)


def test_yaml_aliases_within_the_limit_are_expanded(conn, namespace):
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: anchors\n  labels: &l {app: web}\n" \
           "  annotations: *l\ndata: {a: '1'}\n"
    code, doc, _ = conn.request("POST", CM.format(ns=namespace), body, "application/yaml")
    assert code == 201, doc
    assert doc["metadata"]["annotations"] == {"app": "web"}


@pytest.mark.parametrize("content_type,body", [
    ("application/json", '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},"x":'
     + "[" * 600 + "]" * 600 + "}"),
    ("application/json", '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},"x":'
     + "[" * 5000 + "]" * 5000 + "}"),
    ("application/yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\nx: " + "[" * 5000 + "]" * 5000),
], ids=["json-600", "json-5000", "yaml-5000"])
def test_deep_documents_are_400(conn, namespace, content_type, body):
    code, doc, _ = conn.request("POST", CM.format(ns=namespace), body, content_type)
    assert_status(code, doc, 400, "BadRequest", "exceeded max depth")
    assert "deep" not in stored_names(conn, namespace)


def test_bad_utf8_is_400(conn, namespace):
    body = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"u"},"data":{"a":"\xff\xfe"}}'
    for ctype in ("application/json", "application/yaml"):
        code, doc, _ = conn.request("POST", CM.format(ns=namespace), body, ctype)
        assert_status(code, doc, 400, "BadRequest")
    assert "u" not in stored_names(conn, namespace)


def test_control_character_in_an_unknown_field_name_is_answered(conn, namespace):
    # A JSON-escaped control character is valid JSON: the field is unknown, dropped, warned of.
    body = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ctl"},"bo\\u0001gus\\n":1}'
    code, doc, resp = conn.request("POST", CM.format(ns=namespace), body)
    assert code == 201, doc
    warning = resp.getheader("Warning")
    assert warning and "unknown field" in warning and "\n" not in warning and "\x01" not in warning
    code, doc, _ = conn.request("POST", CM.format(ns=namespace) + "?fieldValidation=Strict",
                                body.replace('"ctl"', '"ctl2"'))
    assert_status(code, doc, 400, "BadRequest", "strict decoding error: unknown field")
    # A raw control character inside a JSON string is not JSON at all.
    code, doc, _ = conn.request("POST", CM.format(ns=namespace), body.replace("\\u0001", "\x01"))
    assert_status(code, doc, 400, "BadRequest")
    assert sorted(n for n in stored_names(conn, namespace) if n.startswith("ctl")) == ["ctl"]


# --- types ---------------------------------------------------------------------------------
WRONG_TYPES = [
    ("pods", pod("p", nodeName=["x"]),
     'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal array into Go struct field '
     "PodSpec.spec.nodeName of type string"),
    ("services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                  "spec": {"selector": "app=web", "ports": [{"port": 80}]}},
     'Service in version "v1" cannot be handled as a Service: json: cannot unmarshal string into Go struct field '
     "ServiceSpec.spec.selector of type map[string]string"),
    ("services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": "80"}},
     "json: cannot unmarshal string into Go struct field ServiceSpec.spec.ports of type []v1.ServicePort"),
    ("configmaps", {**cm("c"), "metadata": {"name": "c", "labels": ["a"]}},
     "json: cannot unmarshal array into Go struct field ObjectMeta.metadata.labels of type map[string]string"),
    ("configmaps", cm("c", {"a": 1}),
     "json: cannot unmarshal number into Go struct field ConfigMap.data of type string"),
    ("pods", pod("p", containers=[{"name": "c", "image": "i", "ports": [{"containerPort": "80"}]}]),
     "json: cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32"),
    ("pods", pod("p", containers=[5]),
     "json: cannot unmarshal number into Go struct field PodSpec.spec.containers of type v1.Container"),
    ("pods", pod("p", terminationGracePeriodSeconds=1.5),
     "json: cannot unmarshal number 1.5 into Go struct field PodSpec.spec.terminationGracePeriodSeconds of type int64"),
    ("pods", pod("p", hostNetwork="true"),
     "json: cannot unmarshal string into Go struct field PodSpec.spec.hostNetwork of type bool"),
    ("pods", {**pod("p"), "spec": "x"},
     "json: cannot unmarshal string into Go struct field Pod.spec of type v1.PodSpec"),
    ("pods", pod("p", containers=[{"name": "c", "image": "i", "resources": {"limits": {"cpu": "lots"}}}]),
     "quantities must match the regular expression"),
    ("services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                  "spec": {"ports": [{"port": 80, "targetPort": [80]}]}},
     "json: cannot unmarshal array into Go struct field ServicePort.spec.ports.targetPort of type int32"),
    ("deployments", {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                     "spec": {"replicas": 99999999999}},
     "json: cannot unmarshal number 99999999999 into Go struct field DeploymentSpec.spec.replicas of type int32"),
    ("configmaps", {**cm("c"), "binaryData": {"k": "!!"}},
     'ConfigMap in version "v1" cannot be handled as a ConfigMap: illegal base64 data at input byte 0'),
    ("configmaps", {**cm("c"), "metadata": {"name": "c", "creationTimestamp": 5}},
     "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.creationTimestamp of type string"),
]


def _collection(ns: str, resource: str) -> str:
    return (f"/apis/apps/v1/namespaces/{ns}/{resource}" if resource == "deployments"
            else f"/api/v1/namespaces/{ns}/{resource}")


@pytest.mark.parametrize("resource,obj,message", WRONG_TYPES,
                         ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(WRONG_TYPES)])
def test_wrong_types_are_400_on_create_and_update(conn, namespace, resource, obj, message):
    path = _collection(namespace, resource)
    code, doc, _ = conn.request("POST", path, json.dumps(obj))
    assert_status(code, doc, 400, "BadRequest", message)
    code, listed, _ = conn.request("GET", path)
    assert listed["items"] == []
    # The same body as an update of a valid object (PUT decodes it the same way).
    name = obj["metadata"]["name"]
    valid = {"pods": pod(name), "configmaps": cm(name),
             "services": {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                          "spec": {"ports": [{"port": 80}]}},
             "deployments": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                             "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                                 "metadata": {"labels": {"a": "b"}}, "spec": pod(name)["spec"]}}}}[resource]
    code, created, _ = conn.request("POST", path, json.dumps(valid))
    assert code == 201, created
    code, doc, _ = conn.request("PUT", f"{path}/{name}", json.dumps(obj))
    assert_status(code, doc, 400, "BadRequest", message)
    code, after, _ = conn.request("GET", f"{path}/{name}")
    assert after["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_quantities_and_int_or_strings_of_either_type_are_accepted(conn, namespace):
    body = pod("ok", containers=[{"name": "c", "image": "i", "resources": {"limits": {"cpu": 1, "memory": "64Mi"}},
                                  "ports": [{"containerPort": 80, "name": "http"}]}])
    code, doc, _ = conn.request("POST", f"/api/v1/namespaces/{namespace}/pods", json.dumps(body))
    assert code == 201, doc
    assert doc["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "64Mi"}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"name": "a", "port": 80, "targetPort": "http"}, {"name": "b", "port": 81, "targetPort": 8081}]}}
    code, doc, _ = conn.request("POST", f"/api/v1/namespaces/{namespace}/services", json.dumps(svc))
    assert code == 201, doc


def test_nulls_decode_as_go_decodes_them(conn, namespace):
    body = {**cm("nulls", {"a": None, "b": "2"}), "metadata": {"name": "nulls", "labels": None}}
    code, doc, _ = conn.request("POST", CM.format(ns=namespace), json.dumps(body))
    assert code == 201, doc
    assert doc["data"] == {"a": "", "b": "2"} and "labels" not in doc["metadata"]


PATCHES = [
    ("application/merge-patch+json", {"data": "str"},
     "json: cannot unmarshal string into Go struct field ConfigMap.data of type map[string]string"),
    ("application/strategic-merge-patch+json", {"data": "str"},
     "json: cannot unmarshal string into Go struct field ConfigMap.data of type map[string]string"),
    ("application/json-patch+json", [{"op": "replace", "path": "/data", "value": ["x"]}],
     "json: cannot unmarshal array into Go struct field ConfigMap.data of type map[string]string"),
    ("application/merge-patch+json", {"metadata": {"labels": ["a"]}},
     "json: cannot unmarshal array into Go struct field ObjectMeta.metadata.labels of type map[string]string"),
    ("application/strategic-merge-patch+json", {"metadata": {"labels": {"a": 1}}},
     "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"),
]


@pytest.mark.parametrize("ctype,patch,message", PATCHES, ids=[f"{c.split('/')[1]}-{i}" for i, (c, _, _) in enumerate(PATCHES)])
def test_wrong_types_in_patches_are_422_and_nothing_changes(conn, namespace, ctype, patch, message):
    code, created, _ = conn.request("POST", CM.format(ns=namespace), json.dumps(cm("p", {"a": "1"})))
    assert code == 201
    code, doc, _ = conn.request("PATCH", CM.format(ns=namespace) + "/p", json.dumps(patch), ctype)
    assert_status(code, doc, 422, "Invalid", message)
    assert doc["details"]["causes"][0]["field"] == "patch"
    code, after, _ = conn.request("GET", CM.format(ns=namespace) + "/p")
    assert after == created


def test_wrong_types_in_an_apply_patch_are_400(conn, namespace):
    body = json.dumps(pod("ap", nodeName=["x"]))
    path = f"/api/v1/namespaces/{namespace}/pods/ap?fieldManager=t"
    code, doc, _ = conn.request("PATCH", path, body, "application/apply-patch+yaml")
    assert_status(code, doc, 400, "BadRequest", "PodSpec.spec.nodeName of type string")
    code, doc, _ = conn.request("PATCH", path, json.dumps(pod("ap")), "application/apply-patch+yaml")
    assert code == 201, doc
    code, doc, _ = conn.request("PATCH", path, body, "application/apply-patch+yaml")
    assert_status(code, doc, 400, "BadRequest", "PodSpec.spec.nodeName of type string")


@pytest.mark.parametrize("ctype,patch,message", [
    ("application/merge-patch+json", {"metadata": {"name": "other"}},
     "the name of the object (other) does not match the name on the URL (n)"),
    ("application/json-patch+json", [{"op": "replace", "path": "/metadata/name", "value": "other"}],
     "the name of the object (other) does not match the name on the URL (n)"),
    ("application/strategic-merge-patch+json", {"metadata": {"namespace": "kube-system"}},
     "the namespace of the provided object does not match the namespace sent on the request"),
    ("application/json-patch+json", [{"op": "remove", "path": "/metadata/name"}],
     "the name of the object () does not match the name on the URL (n)"),
], ids=["merge-name", "json-name", "strategic-namespace", "json-remove-name"])
def test_patches_cannot_rename_or_move(conn, namespace, ctype, patch, message):
    code, created, _ = conn.request("POST", CM.format(ns=namespace), json.dumps(cm("n")))
    assert code == 201
    code, doc, _ = conn.request("PATCH", CM.format(ns=namespace) + "/n", json.dumps(patch), ctype)
    assert_status(code, doc, 400, "BadRequest", message)
    assert stored_names(conn, namespace) == ["n"]
    code, doc, _ = conn.request("GET", "/api/v1/namespaces/kube-system/configmaps/n")
    assert code == 404


# --- resourceVersion -----------------------------------------------------------------------
BAD_RV = 'invalid resource version: resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax'


def test_non_integer_resource_versions_are_400(conn, namespace):
    code, created, _ = conn.request("POST", CM.format(ns=namespace), json.dumps(cm("rv")))
    assert code == 201
    base = CM.format(ns=namespace)
    for path in (base + "?resourceVersion=abc", base + "/rv?resourceVersion=abc",
                 base + "?watch=1&resourceVersion=abc"):
        code, doc, _ = conn.request("GET", path)
        assert_status(code, doc, 400, "BadRequest", BAD_RV)
    code, doc, _ = conn.request("PUT", base + "/rv", json.dumps({**cm("rv"), "metadata": {"name": "rv",
                                                                                           "resourceVersion": "abc"}}))
    assert_status(code, doc, 400, "BadRequest", BAD_RV)
    code, doc, _ = conn.request("PATCH", base + "/rv", json.dumps({"metadata": {"resourceVersion": "abc"}}),
                                "application/merge-patch+json")
    assert_status(code, doc, 400, "BadRequest", BAD_RV)
    # DeleteOptions' preconditions compare resourceVersions as strings (409, as upstream).
    code, doc, _ = conn.request("DELETE", base + "/rv", json.dumps({"preconditions": {"resourceVersion": "abc"}}))
    assert_status(code, doc, 409, "Conflict", "Precondition failed: ResourceVersion in precondition: abc")
    code, doc, _ = conn.request("DELETE", base + "/rv", json.dumps({"gracePeriodSeconds": "5"}))
    assert_status(code, doc, 400, "BadRequest", "json: cannot unmarshal string into Go struct field "
                                                "DeleteOptions.gracePeriodSeconds of type int64")
    code, after, _ = conn.request("GET", base + "/rv")
    assert after == created


def test_future_resource_versions(conn, namespace):
    base = CM.format(ns=namespace)
    code, lst, _ = conn.request("GET", base)
    current = int(lst["metadata"]["resourceVersion"])
    future = current + 1_000_000
    for path in (f"{base}?resourceVersion={future}", f"{base}?resourceVersion={future}&resourceVersionMatch=NotOlderThan",
                 f"{base}?resourceVersion={future}&resourceVersionMatch=Exact"):
        code, doc, resp = conn.request("GET", path)
        assert_status(code, doc, 504, "Timeout", f"Timeout: Too large resource version: {future}, current: ")
        assert doc["details"]["causes"] == [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]
    code, doc, _ = conn.request("GET", f"{base}?resourceVersion=1&resourceVersionMatch=Exact")
    assert_status(code, doc, 410, "Expired", "The resourceVersion for the provided list is too old.")
    code, doc, _ = conn.request("GET", f"{base}?resourceVersion={current}&resourceVersionMatch=NotOlderThan")
    assert code == 200
    code, doc, _ = conn.request("GET", f"{base}?resourceVersionMatch=Exact")
    assert_status(code, doc, 422, "Invalid", "resourceVersionMatch is forbidden unless resourceVersion is provided")
    code, doc, _ = conn.request("GET", f"{base}?resourceVersion=0&resourceVersionMatch=Bogus")
    assert_status(code, doc, 422, "Invalid", 'Unsupported value: "Bogus"')


def test_watchlist_of_a_future_version_ends_with_504(apiserver, namespace):
    import ssl
    import urllib.request
    base = apiserver.url + CM.format(ns=namespace)
    ctx = ssl.create_default_context(cafile=apiserver.ca_file)
    req = urllib.request.Request(f"{base}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                                 f"&resourceVersion=999999999&timeoutSeconds=10",
                                 headers={"Authorization": f"Bearer {apiserver.token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=15) as r:
        events = [json.loads(line) for line in r.read().splitlines() if line.strip()]
    assert [e["type"] for e in events] == ["ERROR"]
    assert events[0]["object"]["code"] == 504 and "Too large resource version: 999999999" in events[0]["object"]["message"]
