"""Output negotiation against the suite's apiserver, as kube-apiserver answers: YAML on
`Accept: application/yaml`, 406 NotAcceptable (before anything is written) for a protobuf-only
Accept, which knet cannot encode, PartialObjectMetadata(List) for client-go's metadata client
(through the `kubernetes` client's own transport), and the legacy watch of one object
(`/api/v1/watch/namespaces/NS/configmaps/NAME`), a watch narrowed to that name."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest
import yaml

pytestmark = pytest.mark.api

PROTOBUF = "application/vnd.kubernetes.protobuf"
METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
# client-go's metadata client: protobuf first, then JSON (knet answers the JSON clause).
METADATA_LIST = (f"{PROTOBUF};as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,"
                 "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json")


def request(apiserver, path: str, accept: str | None, method: str = "GET", body: dict | None = None,
            timeout: float = 10, as_user: str | None = None) -> tuple[int, str, bytes]:
    """(status, Content-Type, body) of one request with the admin token (impersonating `as_user`)."""
    headers = {"Authorization": f"Bearer {apiserver.token}"}
    if as_user:
        headers["Impersonate-User"] = as_user
    if accept is not None:
        headers["Accept"] = accept
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    req = urllib.request.Request(apiserver.url + path, data=data, method=method, headers=headers)
    ctx = ssl.create_default_context(cafile=apiserver.ca_file)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


@pytest.fixture
def configmaps(apiserver, namespace):
    for name in ("one", "two"):
        apiserver.kubectl_ok("create", "configmap", name, "-n", namespace, "--from-literal=secret=payload")
    return f"/api/v1/namespaces/{namespace}/configmaps"


def test_protobuf_only_is_not_acceptable_and_writes_nothing(apiserver, namespace, configmaps):
    code, ctype, body = request(apiserver, f"{configmaps}/one", PROTOBUF)
    status = json.loads(body)
    assert (code, ctype, status["reason"], status["message"]) == (
        406, "application/json", "NotAcceptable",
        "only the following media types are accepted: application/json, application/yaml")
    new = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "three"}}
    assert request(apiserver, configmaps, PROTOBUF, "POST", new)[0] == 406
    p = apiserver.kubectl("get", "configmap", "three", "-n", namespace)
    assert p.returncode == 1 and "NotFound" in p.stderr
    # A protobuf client that also takes JSON gets JSON.
    code, ctype, body = request(apiserver, f"{configmaps}/one", f"{PROTOBUF}, application/json")
    assert (code, ctype, json.loads(body)["kind"]) == (200, "application/json", "ConfigMap")


def test_yaml(apiserver, configmaps):
    code, ctype, body = request(apiserver, f"{configmaps}/one", "application/yaml")
    _, _, as_json = request(apiserver, f"{configmaps}/one", "application/json")
    assert (code, ctype) == (200, "application/yaml")
    assert yaml.safe_load(body) == json.loads(as_json) and body.startswith(b"apiVersion: v1\ndata:\n")
    code, ctype, body = request(apiserver, configmaps, "application/yaml")
    listed = yaml.safe_load(body)
    assert (code, ctype, listed["kind"]) == (200, "application/yaml", "ConfigMapList")
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["one", "two"]
    # A watch cannot stream YAML: upstream's 406, naming the stream types.
    code, _, body = request(apiserver, f"{configmaps}?watch=1", "application/yaml")
    assert (code, json.loads(body)["message"]) == (
        406, "only the following media types are accepted: application/json;stream=watch")


def client_get(api, path: str, accept: str) -> bytes:
    """A GET through the `kubernetes` client's own transport (its TLS and client certificate)."""
    resp = api.call_api("GET", api.configuration.host + path, header_params={"Accept": accept})
    resp.read()
    assert resp.status == 200, resp.data
    return resp.data


def test_partial_object_metadata_through_the_kubernetes_client(apiserver, configmaps):
    api = apiserver.client()
    raw = client_get(api, configmaps, METADATA_LIST)
    listed = json.loads(raw)
    assert (listed["kind"], listed["apiVersion"]) == ("PartialObjectMetadataList", "meta.k8s.io/v1")
    assert listed["metadata"]["resourceVersion"]
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["one", "two"]
    assert all(i["kind"] == "PartialObjectMetadata" and "data" not in i for i in listed["items"])
    assert b"payload" not in raw  # metadata only
    one = json.loads(client_get(api, f"{configmaps}/one", METADATA))
    assert (one["kind"], one["metadata"]["name"], "data" in one) == ("PartialObjectMetadata", "one", False)
    # A list asked for as one object, and one object asked for as a list: upstream's 406s.
    code, _, body = request(apiserver, configmaps, METADATA)
    assert (code, json.loads(body)["message"]) == (
        406, "you requested PartialObjectMetadata, but the requested object is a list (*core.ConfigMapList)")
    code, _, body = request(apiserver, f"{configmaps}/one", METADATA.replace("Metadata;", "MetadataList;"))
    assert (code, json.loads(body)["message"]) == (
        406, "you requested PartialObjectMetadataList, but the requested object is not a list (*core.ConfigMap)")
    # The metadata informer's watch: each event's object is the PartialObjectMetadata.
    code, _, body = request(apiserver, f"{configmaps}?watch=1&timeoutSeconds=1", METADATA)
    events = [json.loads(line) for line in body.splitlines()]
    assert code == 200 and sorted(e["object"]["metadata"]["name"] for e in events) == ["one", "two"]
    assert {e["object"]["kind"] for e in events} == {"PartialObjectMetadata"}


def test_legacy_watch_of_one_object(apiserver, namespace, configmaps):
    path = f"/api/v1/watch/namespaces/{namespace}/configmaps/one?timeoutSeconds=1"
    code, ctype, body = request(apiserver, path, "application/json")
    events = [json.loads(line) for line in body.splitlines()]
    assert (code, ctype) == (200, "application/json")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "one")]
    ok = request(apiserver, path + "&fieldSelector=metadata.name%3Done", None)
    assert ok[0] == 200 and [json.loads(x)["object"]["metadata"]["name"] for x in ok[2].splitlines()] == ["one"]
    code, _, body = request(apiserver, path + "&fieldSelector=metadata.name%3Dtwo", None)
    assert (code, json.loads(body)["message"]) == (400, "fieldSelector metadata.name doesn't match requested name")
    # Authorized as a watch of that one name: a user who may watch only "two" gets "two", not "one".
    apiserver.kubectl_ok("create", "role", "watch-two", "-n", namespace, "--verb=watch", "--resource=configmaps",
                         "--resource-name=two")
    apiserver.kubectl_ok("create", "rolebinding", "watch-two", "-n", namespace, "--role=watch-two", "--user=watcher")
    two = f"/api/v1/watch/namespaces/{namespace}/configmaps/two?timeoutSeconds=1"
    code, _, body = request(apiserver, two, None, as_user="watcher")
    assert code == 200 and [json.loads(x)["object"]["metadata"]["name"] for x in body.splitlines()] == ["two"]
    code, _, body = request(apiserver, path, None, as_user="watcher")
    assert code == 403, body
