"""A fuzz test of the API server's request decoding (issue 12, part 4): a fixed seed mutates
valid manifests and raw bodies (wrong types at random paths, unknown fields with control
characters, huge and deep documents, YAML aliases, bad UTF-8, truncated bodies, junk
resourceVersions) and sends them as creates, updates and every patch type (json, merge,
strategic, apply) to a real `knet apiserver`. Every answer must be a Status with a 4xx code or
a 2xx (a mutation that is still valid): never a 5xx or a dropped connection. Afterwards every
stored object is re-read and checked against the kubernetes client's model types (a checker
written here, apart from the server's), and the server still serves."""

from __future__ import annotations

import copy
import json
import random
import time

import kubernetes.client.models as models
import pytest
from api_requests import Conn, Dropped

pytestmark = pytest.mark.api

SEED = 20261204
REQUESTS = 4000
NS = "fuzz"

CONTAINER = {"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
             "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
             "env": [{"name": "A", "value": "1"}], "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
             "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5}}
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [CONTAINER]}}
SEEDS: dict[str, tuple[str, dict]] = {
    "configmaps": ("/api/v1/namespaces/fuzz/configmaps",
                   {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "labels": {"a": "b"}},
                    "data": {"k": "v"}}),
    "secrets": ("/api/v1/namespaces/fuzz/secrets",
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"}, "data": {"k": "dg=="},
                 "type": "Opaque"}),
    "services": ("/api/v1/namespaces/fuzz/services",
                 {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
                  "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
    "pods": ("/api/v1/namespaces/fuzz/pods",
             {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod", "labels": {"app": "web"}},
              "spec": {"containers": [CONTAINER], "tolerations": [{"key": "k", "operator": "Exists"}],
                       "securityContext": {"runAsUser": 1000}}}),
    "deployments": ("/apis/apps/v1/namespaces/fuzz/deployments",
                    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "dep"},
                     "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE,
                              "strategy": {"type": "RollingUpdate",
                                           "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}}}}),
    "serviceaccounts": ("/api/v1/namespaces/fuzz/serviceaccounts",
                        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}}),
    "leases": ("/apis/coordination.k8s.io/v1/namespaces/fuzz/leases",
               {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "lease"},
                "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}}),
    "networkpolicies": ("/apis/networking.k8s.io/v1/namespaces/fuzz/networkpolicies",
                        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np"},
                         "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                                  "ingress": [{"ports": [{"port": 80, "protocol": "TCP"}]}]}}),
    "endpointslices": ("/apis/discovery.k8s.io/v1/namespaces/fuzz/endpointslices",
                       {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "eps"},
                        "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}],
                        "ports": [{"name": "http", "port": 80}]}),
    "events": ("/apis/events.k8s.io/v1/namespaces/fuzz/events",
               {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "ev"},
                "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "fuzz/ctl",
                "reportingInstance": "fuzz-1", "action": "Tested", "reason": "Fuzz", "type": "Normal", "note": "n",
                "regarding": {"kind": "Pod", "name": "pod", "namespace": "fuzz"}}),
}
MODELS = {"events": "EventsV1Event", "configmaps": "V1ConfigMap", "secrets": "V1Secret", "services": "V1Service", "pods": "V1Pod",
          "deployments": "V1Deployment", "serviceaccounts": "V1ServiceAccount", "leases": "V1Lease",
          "networkpolicies": "V1NetworkPolicy", "endpointslices": "V1EndpointSlice"}
PATCH_TYPES = ["application/merge-patch+json", "application/strategic-merge-patch+json",
               "application/json-patch+json", "application/apply-patch+yaml"]


# --- an independent type oracle: the client's models, walked as they are ----------------------
def type_errors(value, type_text: str, path: str, out: list[str]) -> None:
    if value is None:
        return
    t = type_text.strip()
    if t.startswith(("List[", "list[")):
        if not isinstance(value, list):
            out.append(f"{path}: {type(value).__name__} is not a list")
            return
        for i, v in enumerate(value):
            type_errors(v, t[5:-1], f"{path}[{i}]", out)
    elif t.startswith(("Dict[str, ", "dict(str, ")):
        if not isinstance(value, dict):
            out.append(f"{path}: {type(value).__name__} is not a map")
            return
        for k, v in value.items():
            type_errors(v, t[10:-1], f"{path}[{k}]", out)
    elif t == "str" or t == "datetime" or t == "bytes":
        if not isinstance(value, str):
            out.append(f"{path}: {value!r} is not a string")
    elif t == "int":
        if not isinstance(value, int) or isinstance(value, bool) or not -(1 << 63) <= value < (1 << 63):
            out.append(f"{path}: {value!r} is not an integer")
    elif t == "bool":
        if not isinstance(value, bool):
            out.append(f"{path}: {value!r} is not a bool")
    elif t == "object":  # IntOrString, or managedFields' fieldsV1
        if not isinstance(value, str | int | dict) or isinstance(value, bool):
            out.append(f"{path}: {value!r} is not an int-or-string")
    elif hasattr(models, t):
        cls = getattr(models, t)
        if not isinstance(value, dict):
            out.append(f"{path}: {type(value).__name__} is not a {t}")
            return
        by_json = {cls.attribute_map[a]: ty for a, ty in cls.openapi_types.items()}
        for k, v in value.items():
            if k not in by_json:
                out.append(f"{path}.{k}: unknown field of {t}")
            else:
                type_errors(v, by_json[k], f"{path}.{k}", out)


# --- mutations -----------------------------------------------------------------------------
def paths(doc, prefix=()) -> list[tuple]:
    out = [prefix]
    if len(prefix) >= 12:  # not into the deep documents the fuzzer made
        return out
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, prefix + (i,))
    return out


def set_at(doc, path: tuple, value):
    if not path:
        return value
    cur = doc
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return doc


def weird_key(rng: random.Random) -> str:
    return rng.choice(["bogus", "a\x01b", "\x7f", "line\nbreak", "tab\tkey", "\u2028", "é", "", "$patch",
                       "$retainKeys", "q\"uote", "back\\slash", "x" * 300])


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(10)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 80, 2**31, -(2**31) - 1, 2**63 - 1, 2**64, 10**30])
    if kind == 3:
        return rng.choice([1.5, -0.0, 1e300, 3.0])
    if kind == 4:
        return rng.choice(["", "x", "80", "app=web", "100m", "lots", "2026-01-01T00:00:00Z", "not a time",
                           "\x00", "é" * 10, "dg=="])
    if kind == 5 and depth < 3:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    if kind == 6 and depth < 3:
        return {weird_key(rng): random_value(rng, depth + 1) for _ in range(rng.randrange(3))}
    if kind == 7:
        return deep(rng.randrange(50, 400))
    return rng.choice(["str", 7, [], {}])


def deep(n: int):
    v: object = "leaf"
    for i in range(n):
        v = [v] if i % 2 else {"d": v}
    return v


def mutate(rng: random.Random, doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    for _ in range(rng.randrange(1, 4)):
        choice = rng.randrange(6)
        targets = [p for p in paths(doc) if p]
        path = rng.choice(targets) if targets else ()
        if choice <= 2:  # a value of another type at a random place
            doc = set_at(doc, path, random_value(rng))
        elif choice == 3:  # an unknown field, maybe with control characters
            parents = [p for p in paths(doc) if isinstance(_get(doc, p), dict)]
            parent = _get(doc, rng.choice(parents))
            parent[weird_key(rng)] = random_value(rng)
        elif choice == 4:  # deep nesting
            doc = set_at(doc, path, deep(rng.choice([100, 240, 260, 700, 900])))
        else:  # a large value
            doc = set_at(doc, path, "z" * rng.choice([70_000, 500_000, 3_200_000]))
        if not isinstance(doc, dict):
            break
    return doc


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def alias_yaml(rng: random.Random, name: str) -> str:
    width, levels = rng.choice([(2, 3), (9, 9), (10, 6), (3, 12)])
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", f"  name: {name}", "x0: &x0 [\"a\",\"b\"]"]
    for i in range(1, levels):
        lines.append(f"x{i}: &x{i} [" + ",".join([f"*x{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def raw_mutation(rng: random.Random, body: bytes) -> bytes:
    choice = rng.randrange(4)
    if choice == 0 and body:  # truncated
        return body[:rng.randrange(len(body))]
    if choice == 1:  # bad UTF-8 inside a string
        at = body.find(b'"', rng.randrange(max(1, len(body))))
        return body[:at + 1] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]) + body[at + 1:] \
            if at >= 0 else body + b"\xff"
    if choice == 2:  # a raw control character
        at = rng.randrange(max(1, len(body)))
        return body[:at] + bytes([rng.randrange(0, 32)]) + body[at:]
    if choice == 3 and rng.random() < 0.3:  # deeper than JSON's own limits, as text
        n = rng.choice([1100, 5000, 20000])
        return body[:-1] + b',"deep":' + b"[" * n + b"]" * n + b"}"
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))  # garbage


# --- the test ------------------------------------------------------------------------------
def too_large_version(doc) -> bool:
    """kube-apiserver's one 5xx for a client's mistake: 504 for a resourceVersion from the future."""
    causes = (doc.get("details") or {}).get("causes") or [] if isinstance(doc, dict) else []
    return any(c.get("reason") == "ResourceVersionTooLarge" for c in causes)


def check_answer(code: int, doc, what: str) -> None:
    assert code < 500 or (code == 504 and too_large_version(doc)), f"{what}: {code} {json.dumps(doc)[:800]}"
    if code >= 400:
        assert isinstance(doc, dict) and doc.get("kind") == "Status" and doc.get("code") == code, \
            f"{what}: {code} is not a Status: {str(doc)[:500]}"


def test_fuzzed_requests_are_refused_cleanly_and_nothing_invalid_is_stored(apiserver_factory):
    server = apiserver_factory()
    rng = random.Random(SEED)
    conn = Conn(server, timeout=60)
    code, doc, _ = conn.request("POST", "/api/v1/namespaces",
                                json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
    assert code == 201, doc
    for path, obj in SEEDS.values():
        code, doc, _ = conn.request("POST", path, json.dumps(obj))
        assert code == 201, doc

    started = time.monotonic()
    counts: dict[int, int] = {}
    for n in range(REQUESTS):
        resource = rng.choice(sorted(SEEDS))
        path, seed = SEEDS[resource]
        name = seed["metadata"]["name"]
        verb = rng.randrange(11)
        query = rng.choice(["", "", "", "?fieldValidation=Strict", "?fieldValidation=Ignore", "?dryRun=All",
                            "?resourceVersion=abc", "?resourceVersion=99999999999"])
        chunked = rng.random() < 0.2
        ctype = "application/json"
        if verb <= 2:  # create a mutated object (a fresh name, or the taken one)
            obj = mutate(rng, seed)
            if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict) and rng.random() < 0.7:
                obj["metadata"]["name"] = f"{name}-{n}"
            method, url, body = "POST", path + query, json.dumps(obj).encode()
        elif verb == 3:  # update the seed object with a mutated body
            method, url, body = "PUT", f"{path}/{name}{query}", json.dumps(mutate(rng, seed)).encode()
        elif verb <= 6:  # a patch of every type
            ctype = rng.choice(PATCH_TYPES)
            if ctype == "application/json-patch+json":
                targets = ["/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in t)
                           for t in paths(seed) if t]
                ops = [{"op": rng.choice(["add", "replace", "remove", "test", "move", "copy", "bogus"]),
                        "path": rng.choice(targets), "from": rng.choice(targets), "value": random_value(rng)}
                       for _ in range(rng.randrange(1, 4))]
                body = json.dumps(ops).encode()
            else:
                patch = mutate(rng, seed)
                if isinstance(patch, dict) and ctype != "application/apply-patch+yaml":
                    patch.pop("apiVersion", None)
                    patch.pop("kind", None)
                body = json.dumps(patch).encode()
            method, url = "PATCH", f"{path}/{name}{query}" + ("&" if query else "?") + "fieldManager=fuzz"
        elif verb == 7:  # YAML with aliases
            method, url, ctype = "POST", path.replace(path.split("/")[-1], "configmaps") + query, "application/yaml"
            body = alias_yaml(rng, f"alias-{n}").encode()
        elif verb == 8:  # raw garbage of a valid body
            method, url = rng.choice([("POST", path + query), ("PUT", f"{path}/{name}{query}"),
                                      ("PATCH", f"{path}/{name}{query}")])
            ctype = rng.choice(["application/json", "application/yaml"] + PATCH_TYPES) if method == "PATCH" \
                else rng.choice(["application/json", "application/yaml"])
            body = raw_mutation(rng, json.dumps(seed).encode())
        elif verb == 10:  # subresources: status, scale, binding, eviction
            pods, deps = SEEDS["pods"][0], SEEDS["deployments"][0]
            method, url, base = rng.choice([
                ("PUT", f"{pods}/pod/status", SEEDS["pods"][1]),
                ("PATCH", f"{pods}/pod/status", {"status": {"phase": "Running", "podIP": "10.0.0.9"}}),
                ("PUT", f"{deps}/dep/scale", {"apiVersion": "autoscaling/v1", "kind": "Scale",
                                              "metadata": {"name": "dep", "namespace": NS}, "spec": {"replicas": 3}}),
                ("PATCH", f"{deps}/dep/scale", {"spec": {"replicas": 3}}),
                ("POST", f"{pods}/pod/binding", {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "pod"},
                                                 "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}}),
                ("POST", f"{pods}/pod/eviction", {"apiVersion": "policy/v1", "kind": "Eviction",
                                                  "metadata": {"name": "pod", "namespace": NS},
                                                  "deleteOptions": {"gracePeriodSeconds": 0}}),
            ])
            if method == "PATCH":
                ctype = rng.choice(PATCH_TYPES[:2])
            body = json.dumps(mutate(rng, base)).encode()
        else:  # reads and deletes with junk parameters
            method = rng.choice(["GET", "GET", "DELETE"])
            url = rng.choice([path, f"{path}/{name}-{rng.randrange(REQUESTS)}"]) + rng.choice(
                ["?resourceVersion=abc", "?resourceVersion=-1", "?resourceVersion=99999999999",
                 "?resourceVersion=1&resourceVersionMatch=Exact", "?resourceVersionMatch=Bogus", "?limit=x",
                 "?labelSelector=a%20in%20(", "?fieldSelector=bogus=1", ""])
            body = None
            if method == "DELETE" and rng.random() < 0.5:
                body = json.dumps(rng.choice([{"gracePeriodSeconds": "x"}, {"preconditions": {"uid": 5}},
                                              {"propagationPolicy": "Bogus"}, [1], {"dryRun": "All"}])).encode()
        try:
            code, doc, _ = conn.request(method, url, body, ctype, chunked=chunked and body is not None)
        except Dropped as exc:
            pytest.fail(f"request {n} ({method} {url}, {ctype}, {len(body or b'')} bytes) dropped: {exc}")
        check_answer(code, doc, f"request {n}: {method} {url} ({ctype}) {(body or b'')[:300]!r}")
        counts[code] = counts.get(code, 0) + 1
    elapsed = time.monotonic() - started
    print(f"fuzz: {REQUESTS} requests in {elapsed:.1f} s, answers by code: {dict(sorted(counts.items()))}")
    assert elapsed < 240, f"{REQUESTS} requests took {elapsed:.0f} s"
    assert sum(c for code, c in counts.items() if code < 300) > REQUESTS // 20, counts  # still-valid mutations landed

    # Nothing invalid was stored: every object re-read and checked against the model types.
    problems: list[str] = []
    for resource, (path, _) in SEEDS.items():
        code, lst, _ = conn.request("GET", path)
        assert code == 200, lst
        for item in lst["items"]:
            type_errors(item, MODELS[resource], f"{resource}/{item['metadata']['name']}", problems)
    assert problems == []

    # The server still serves, and logged no internal error.
    code, doc, _ = conn.request("POST", SEEDS["configmaps"][0],
                                json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after"}}))
    assert code == 201, doc
    code, doc, _ = conn.request("GET", "/api/v1/pods")
    assert code == 200
    conn.close()
    log = server.log_file.read_text()
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
