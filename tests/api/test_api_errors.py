"""Bad input gets kube-apiserver's Status answers (400/404/405/409/413/415/422 with field
causes) and writes nothing; Service allocation errors and rules (KEP-3070 / KEP-3668)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.api


def call(apiserver, method: str, path: str, body: bytes | str | None = None,
         content_type: str = "application/json") -> tuple[int, dict, dict]:
    ctx = ssl.create_default_context(cafile=apiserver.ca_file)
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(apiserver.url + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {apiserver.token}", "Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), dict(e.headers)


def names(apiserver, namespace: str) -> list[str]:
    _, lst, _ = call(apiserver, "GET", f"/api/v1/namespaces/{namespace}/configmaps")
    return [i["metadata"]["name"] for i in lst["items"]]


CM = "/api/v1/namespaces/{ns}/configmaps"


@pytest.mark.parametrize(("body", "content_type", "code", "reason", "message"), [
    pytest.param('{"kind": "ConfigMap", "metadata": {', "application/json", 400, "BadRequest",
                 "couldn't get version/kind; json parse error", id="malformed-json"),
    pytest.param("kind: ConfigMap\nmetadata: [unclosed", "application/yaml", 400, "BadRequest",
                 "error converting YAML to JSON", id="malformed-yaml"),
    pytest.param("name=x", "text/plain", 415, "UnsupportedMediaType",
                 "the body of the request was in an unknown format", id="unsupported-media-type"),
    pytest.param('{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}', "application/json", 400,
                 "BadRequest", "the object provided is unrecognized or of the wrong kind (Service) for this resource (ConfigMap)",
                 id="wrong-kind"),
    pytest.param('{"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}}', "application/json", 400,
                 "BadRequest", "the API version in the data (apps/v1) does not match the expected API version (v1)",
                 id="wrong-version"),
])
def test_bad_bodies_are_rejected_and_nothing_is_written(apiserver, namespace, body, content_type, code, reason, message):
    status, st, _ = call(apiserver, "POST", CM.format(ns=namespace), body, content_type)
    assert (status, st["kind"], st["status"], st["reason"], st["code"]) == (code, "Status", "Failure", reason, code)
    assert message in st["message"]
    assert names(apiserver, namespace) == []


def test_unknown_fields_strict_rejects_and_warn_warns(apiserver, namespace):
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "u", "colour": "red"},
                       "data": {"a": "1"}, "spec": {}})
    status, st, _ = call(apiserver, "POST", CM.format(ns=namespace) + "?fieldValidation=Strict", body)
    assert status == 400
    assert st["message"] == ('ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
                             'unknown field "metadata.colour", unknown field "spec"')
    status, obj, headers = call(apiserver, "POST", CM.format(ns=namespace), body)
    assert status == 201 and "spec" not in obj and "colour" not in obj["metadata"]  # dropped, as decoding does
    assert headers.get("Warning") == r'299 - "unknown field \"metadata.colour\"", 299 - "unknown field \"spec\""'



def test_invalid_name_is_422_with_field_causes(apiserver, namespace):
    status, st, _ = call(apiserver, "POST", CM.format(ns=namespace),
                         json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}))
    assert status == 422 and st["reason"] == "Invalid"
    assert st["details"]["name"] == "Bad_Name" and st["details"]["kind"] == "ConfigMap"
    assert [(c["reason"], c["field"]) for c in st["details"]["causes"]] == [("FieldValueInvalid", "metadata.name")]
    p = apiserver.kubectl("-n", namespace, "create", "-f", "-",
                          input="apiVersion: v1\nkind: Service\nmetadata:\n  name: Web\nspec:\n  ports: [{port: 80}]\n")
    assert p.stderr.strip() == (
        'The Service "Web" is invalid: metadata.name: Invalid value: "Web": a DNS-1035 label must consist of lower '
        "case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric "
        "character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")


def test_oversized_body_is_413(apiserver, namespace):
    big = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
                      "data": {"x": "a" * (3 * 1024 * 1024)}})
    status, st, _ = call(apiserver, "POST", CM.format(ns=namespace), big)
    assert (status, st["reason"]) == (413, "RequestEntityTooLarge")
    assert names(apiserver, namespace) == []


def test_paths_methods_and_conflicts(apiserver, namespace):
    assert call(apiserver, "GET", "/api/v1/frobs")[0] == 404
    assert call(apiserver, "GET", "/apis/nope.example.com/v1")[0] == 404
    status, st, _ = call(apiserver, "PUT", CM.format(ns=namespace), "{}")
    assert (status, st["reason"]) == (405, "MethodNotAllowed")
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dup"}})
    assert call(apiserver, "POST", CM.format(ns=namespace), body)[0] == 201
    status, st, _ = call(apiserver, "POST", CM.format(ns=namespace), body)
    assert (status, st["reason"], st["message"]) == (409, "AlreadyExists", 'configmaps "dup" already exists')
    status, st, _ = call(apiserver, "PATCH", CM.format(ns=namespace) + "/dup", '{"data":{}}', "application/json")
    assert status == 415
    status, st, _ = call(apiserver, "GET", CM.format(ns=namespace) + "?labelSelector=a%20in%20(b")
    assert status == 400 and "unable to parse requirement" in st["message"]
    status, st, _ = call(apiserver, "GET", "/api/v1/namespaces/nowhere/configmaps/x")
    assert (status, st["message"]) == (404, 'configmaps "x" not found')
    status, st, _ = call(apiserver, "POST", "/api/v1/namespaces/nowhere/configmaps", body)
    assert (status, st["message"]) == (404, 'namespaces "nowhere" not found')


SVC = "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n{spec}"


def create_svc(apiserver, namespace, name, spec: str):
    return apiserver.kubectl("-n", namespace, "create", "-f", "-", input=SVC.format(name=name, spec=spec))


def test_cluster_ip_allocation_rules(apiserver, namespace):
    ports = "  ports: [{port: 80}]\n"
    assert create_svc(apiserver, namespace, "a", "  clusterIP: 10.96.0.50\n" + ports).returncode == 0
    p = create_svc(apiserver, namespace, "b", "  clusterIP: 10.96.0.50\n" + ports)
    assert p.stderr.strip() == ('The Service "b" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.50"}: '
                                "failed to allocate IP 10.96.0.50: provided IP is already allocated")
    p = create_svc(apiserver, namespace, "c", "  clusterIP: 10.0.0.1\n" + ports)
    assert p.stderr.strip() == ('The Service "c" is invalid: spec.clusterIPs: Invalid value: []string{"10.0.0.1"}: '
                                "failed to allocate IP 10.0.0.1: the provided IP (10.0.0.1) is not in the valid range. "
                                "The range of valid IPs is 10.96.0.0/12")
    p = create_svc(apiserver, namespace, "k", "  clusterIP: 10.96.0.1\n" + ports)
    assert "provided IP is already allocated" in p.stderr  # default/kubernetes holds the first address
    apiserver.kubectl_ok("-n", namespace, "delete", "svc", "a")
    assert create_svc(apiserver, namespace, "b", "  clusterIP: 10.96.0.50\n" + ports).returncode == 0
    # Dynamic allocation avoids the static band (the first 256 addresses of a /12) while it can.
    assert create_svc(apiserver, namespace, "d", ports).returncode == 0
    ip = json.loads(apiserver.kubectl_ok("-n", namespace, "get", "svc", "d", "-o", "json"))["spec"]["clusterIP"]
    import ipaddress

    assert int(ipaddress.ip_address(ip)) - int(ipaddress.ip_address("10.96.0.0")) > 256
    # An update cannot change the ClusterIP.
    p = apiserver.kubectl("-n", namespace, "patch", "svc", "d", "-p", '{"spec":{"clusterIP":"10.96.0.99","clusterIPs":["10.96.0.99"]}}')
    assert p.returncode != 0 and "may not change once set" in p.stderr


def test_node_port_allocation_rules(apiserver, namespace):
    p = create_svc(apiserver, namespace, "np1", "  type: NodePort\n  ports: [{port: 80, nodePort: 31999}]\n")
    assert p.returncode == 0
    p = create_svc(apiserver, namespace, "np2", "  type: NodePort\n  ports: [{port: 80, nodePort: 31999}]\n")
    assert p.stderr.strip() == ('The Service "np2" is invalid: spec.ports[0].nodePort: Invalid value: 31999: '
                                "provided port is already allocated")
    p = create_svc(apiserver, namespace, "np3", "  type: NodePort\n  ports: [{port: 80, nodePort: 80}]\n")
    assert p.stderr.strip() == ('The Service "np3" is invalid: spec.ports[0].nodePort: Invalid value: 80: '
                                "provided port is not in the valid range. The range of valid ports is 30000-32767")
    # Switching to ClusterIP releases the port; it can then be taken by another Service.
    apiserver.kubectl_ok("-n", namespace, "patch", "svc", "np1", "-p", '{"spec":{"type":"ClusterIP"}}')
    svc = json.loads(apiserver.kubectl_ok("-n", namespace, "get", "svc", "np1", "-o", "json"))
    assert "nodePort" not in svc["spec"]["ports"][0]
    assert create_svc(apiserver, namespace, "np2", "  type: NodePort\n  ports: [{port: 80, nodePort: 31999}]\n").returncode == 0
    # Dynamic ports come from above the static band (30000-30085 for this range) while they can.
    create_svc(apiserver, namespace, "np4", "  type: NodePort\n  ports: [{port: 80}, {port: 81, name: b}]\n".replace(
        "{port: 80}", "{port: 80, name: a}"))
    svc = json.loads(apiserver.kubectl_ok("-n", namespace, "get", "svc", "np4", "-o", "json"))
    assert all(30086 <= p["nodePort"] <= 32767 for p in svc["spec"]["ports"])


def test_headless_and_external_name(apiserver, namespace):
    assert create_svc(apiserver, namespace, "hl", "  clusterIP: None\n  selector: {app: db}\n").returncode == 0
    svc = json.loads(apiserver.kubectl_ok("-n", namespace, "get", "svc", "hl", "-o", "json"))
    assert (svc["spec"]["clusterIP"], svc["spec"]["clusterIPs"]) == ("None", ["None"])
    assert create_svc(apiserver, namespace, "ext", "  type: ExternalName\n  externalName: db.example.com\n").returncode == 0
    svc = json.loads(apiserver.kubectl_ok("-n", namespace, "get", "svc", "ext", "-o", "json"))
    assert "clusterIP" not in svc["spec"] and svc["spec"]["externalName"] == "db.example.com"
    p = create_svc(apiserver, namespace, "noports", "  selector: {app: x}\n")
    assert p.stderr.strip() == 'The Service "noports" is invalid: spec.ports: Required value'


def test_typed_secrets_and_quantities_are_validated(apiserver, namespace):
    p = apiserver.kubectl("-n", namespace, "create", "-f", "-", input=(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: tls\ntype: kubernetes.io/tls\ndata:\n  tls.crt: Y2VydA==\n"))
    assert p.stderr.strip() == 'The Secret "tls" is invalid: data[tls.key]: Required value'
    p = apiserver.kubectl("-n", namespace, "create", "-f", "-", input=(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: q\nspec:\n  containers:\n  - name: c\n    image: x\n"
        "    resources:\n      limits: {cpu: lots}\n"))
    assert p.returncode == 1
    # resource.Quantity's UnmarshalJSON refuses it while the body is decoded (400), before validation.
    assert p.stderr.strip() == ('Error from server (BadRequest): error when creating "STDIN": Pod in version "v1" '
                                "cannot be handled as a Pod: quantities must match the regular expression "
                                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


def test_updates_that_omit_the_cluster_ip_keep_it(apiserver, namespace):
    assert create_svc(apiserver, namespace, "hl2", "  clusterIP: None\n  selector: {app: db}\n").returncode == 0
    svc = json.loads(apiserver.kubectl_ok("-n", namespace, "get", "svc", "hl2", "-o", "json"))
    for k in ("clusterIP", "clusterIPs"):
        del svc["spec"][k]
    svc["spec"]["selector"] = {"app": "db2"}
    apiserver.kubectl_ok("-n", namespace, "replace", "-f", "-", input=json.dumps(svc))
    after = json.loads(apiserver.kubectl_ok("-n", namespace, "get", "svc", "hl2", "-o", "json"))
    assert (after["spec"]["clusterIP"], after["spec"]["selector"]) == ("None", {"app": "db2"})


def test_unknown_fields_in_patches_warn_and_are_dropped_or_rejected_strictly(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "create", "configmap", "pp")
    p = apiserver.kubectl("-n", namespace, "patch", "cm", "pp", "-p", '{"data":{"a":"1"},"colour":"red"}')
    assert (p.returncode, p.stdout) == (0, "configmap/pp patched\n")
    assert p.stderr == 'Warning: unknown field "colour"\n'
    p = apiserver.kubectl("-n", namespace, "patch", "cm", "pp", "--type=json",
                          "-p", '[{"op":"add","path":"/colour","value":"red"}]')
    assert 'Warning: unknown field "colour"' in p.stderr
    obj = json.loads(apiserver.kubectl_ok("-n", namespace, "get", "cm", "pp", "-o", "json"))
    assert "colour" not in obj and obj["data"] == {"a": "1"}
    status, st, _ = call(apiserver, "PATCH", CM.format(ns=namespace) + "/pp?fieldValidation=Strict",
                         '{"colour":"red"}', "application/merge-patch+json")
    assert (status, st["message"]) == (400, 'strict decoding error: unknown field "colour"')
