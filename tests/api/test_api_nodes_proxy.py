"""nodes/proxy with the real kubectl: `kubectl get --raw /api/v1/nodes/NODE/proxy/PATH` reaches
the node's kubelet API (a `knet kubelet --dataplane=sim` node agent beside the suite's
apiserver, authorizing every request by SubjectAccessReview as kubeadm's kubelets do) with the
apiserver's kubelet client certificate, as kube-apiserver's nodes/proxy does: /healthz, /pods,
/stats/summary, /metrics, /configz and /logs/ (the node's /var/log through a file server).

The node registers 127.0.0.1 as its InternalIP, which upstream's isProxyableHostname refuses
(400 `address not allowed`); knet's simulated nodes register the endpoint their kubelet serves on
as the `knet.io/kubelet-endpoint` annotation, and the proxy reaches the kubelet there.

Attacker cases: a user without nodes/proxy gets 403; `..` in the proxied path never leaves the
kubelet's API (nor, on the kubelet, /var/log); a node that does not exist is a 404; a malformed
NODE:PORT is a 400; another port of a node at a loopback address is refused; a node's own
credentials (and another node's) cannot re-aim the endpoint annotation at the apiserver's port.
The suite's apiserver runs with --kubelet-endpoint-annotation=true, as a simulated cluster's."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import uuid

import pytest
from node_agents import host_static_pod, sim_kubelet, wait_for

from knet.node.diagnostics import dir_listing

pytestmark = pytest.mark.api

NODE = "proxy-node"
STATIC = host_static_pod("sleeper", {"main": "echo started; exec sleep 3600"})
ANNOTATION = "knet.io/kubelet-endpoint"


@pytest.fixture(scope="module")
def kubelet(apiserver, tmp_path_factory):
    """The node agent's kubelet port, once its Node and mirror pod are there."""
    from knet.cluster.pki import load_cert_key, write_client_kubeconfig

    root = tmp_path_factory.mktemp("proxy-kubelet")
    kubeconfig = write_client_kubeconfig(root / "kubelet.conf", load_cert_key(apiserver.pki_dir, "ca"),
                                         server=apiserver.url, user=f"system:node:{NODE}", groups=["system:nodes"])
    with sim_kubelet(apiserver, root, NODE, kubeconfig=kubeconfig, pod_cidr="10.244.79.0/24",
                     taint="example.com/proxy-only:NoSchedule", static_pods={"sleeper": STATIC}):
        node = wait_for("the node to register", lambda: json.loads(apiserver.kubectl_ok(
            "get", "node", NODE, "-o", "json")))
        port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        wait_for("the mirror pod", lambda: apiserver.kubectl("get", "pod", f"sleeper-{NODE}").returncode == 0)
        yield {"port": port, "root": root}


@pytest.fixture
def sim_endpoint(apiserver, kubelet):
    apiserver.kubectl_ok("annotate", "--overwrite", "node", NODE, f"{ANNOTATION}=127.0.0.1:{kubelet['port']}")
    return kubelet


def raw(apiserver, path: str) -> str:
    return apiserver.kubectl_ok("get", "--raw", path)


def refused(apiserver, path: str, *args: str) -> str:
    p = apiserver.kubectl("get", "--raw", path, *args)
    assert p.returncode != 0, p.stdout
    return p.stderr.strip()


def test_a_kubelet_at_a_loopback_address_is_not_proxied(apiserver, kubelet):
    apiserver.kubectl_ok("annotate", "node", NODE, f"{ANNOTATION}-")
    try:
        assert refused(apiserver, f"/api/v1/nodes/{NODE}/proxy/healthz") == \
            "Error from server (BadRequest): address not allowed"
    finally:
        apiserver.kubectl_ok("annotate", "--overwrite", "node", NODE, f"{ANNOTATION}=127.0.0.1:{kubelet['port']}")


def test_kubelet_endpoints_through_the_apiserver(apiserver, sim_endpoint):
    base = f"/api/v1/nodes/{NODE}/proxy"
    assert raw(apiserver, f"{base}/healthz") == "ok"
    pods = json.loads(raw(apiserver, f"{base}/pods"))
    assert pods["kind"] == "PodList" and f"sleeper-{NODE}" in {p["metadata"]["name"] for p in pods["items"]}
    summary = json.loads(raw(apiserver, f"{base}/stats/summary"))
    assert summary["node"]["nodeName"] == NODE
    metrics = raw(apiserver, f"{base}/metrics").splitlines()
    assert f'kubelet_node_name{{node="{NODE}"}} 1' in metrics
    assert "kubelet_running_pods 1" in metrics
    config = json.loads(raw(apiserver, f"{base}/configz"))["kubeletconfig"]
    assert config["staticPodPath"] == str(sim_endpoint["root"] / "manifests")
    assert config["authorization"]["mode"] == "Webhook" and config["podCIDR"] == "10.244.79.0/24"
    # NODE:PORT naming the kubelet's own port, with or without a scheme, is the same kubelet.
    port = sim_endpoint["port"]
    assert raw(apiserver, f"/api/v1/nodes/{NODE}:{port}/proxy/healthz") == "ok"
    assert raw(apiserver, f"/api/v1/nodes/https:{NODE}:{port}/proxy/healthz") == "ok"


def test_node_logs_are_the_nodes_var_log(apiserver, sim_endpoint):
    """kubelet /logs/ (enableSystemLogHandler, kubeadm's default): the node's /var/log -- here the
    host's, where the sim node agent runs -- as Go's file server lists and serves it."""
    with os.scandir("/var/log") as it:
        entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
    assert raw(apiserver, f"/api/v1/nodes/{NODE}/proxy/logs/") == dir_listing(entries)
    files = sorted(e.name for e in os.scandir("/var/log")
                   if e.is_file(follow_symlinks=False) and 0 < e.stat().st_size < 1 << 20)
    assert files, "no small log file in /var/log to read back"
    with open(f"/var/log/{files[0]}") as f:
        assert raw(apiserver, f"/api/v1/nodes/{NODE}/proxy/logs/{files[0]}") == f.read()


def test_a_user_needs_nodes_proxy(apiserver, sim_endpoint):
    user = f"ops-{uuid.uuid4().hex[:6]}"
    path = f"/api/v1/nodes/{NODE}/proxy/healthz"
    assert refused(apiserver, path, f"--as={user}") == (
        f'Error from server (Forbidden): nodes "{NODE}" is forbidden: User "{user}" cannot get resource '
        '"nodes/proxy" in API group "" at the cluster scope')
    apiserver.kubectl_ok("create", "clusterrolebinding", user, "--clusterrole=system:kubelet-api-admin",
                         f"--user={user}")
    try:
        wait_for("the binding to apply", lambda: apiserver.kubectl("get", "--raw", path, f"--as={user}").stdout == "ok")
    finally:
        apiserver.kubectl("delete", "clusterrolebinding", user)


def test_a_node_cannot_redirect_the_apiservers_kubelet_client(apiserver, sim_endpoint, tmp_path):
    """NodeRestriction (knet's rule): a node's kubelet credentials cannot change, add or remove
    its own kubelet-endpoint annotation, through the Node or its status, and another node's
    cannot touch it at all; the apiserver keeps reaching the real kubelet."""
    from knet.cluster.pki import load_cert_key, write_client_kubeconfig

    own = str(sim_endpoint["root"] / "kubelet.conf")
    other = str(write_client_kubeconfig(tmp_path / "other.conf", load_cert_key(apiserver.pki_dir, "ca"),
                                        server=apiserver.url, user="system:node:intruder", groups=["system:nodes"]))
    hijack = f"{ANNOTATION}=127.0.0.1:{apiserver.port}"
    forbidden = f'node "{NODE}" is not allowed to modify annotation {ANNOTATION}'
    for args in (("annotate", "--overwrite", "node", NODE, hijack), ("annotate", "node", NODE, f"{ANNOTATION}-")):
        p = apiserver.kubectl(f"--kubeconfig={own}", *args)
        assert p.returncode == 1 and forbidden in p.stderr, (args, p.stdout, p.stderr)
    # Through nodes/status, as the kubelet's own client writes: a status write keeps the stored
    # metadata (NodeRestriction refuses the change if it ever did not).
    import kubernetes

    core = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(config_file=own))
    try:
        core.patch_node_status(NODE, {"metadata": {"annotations": {ANNOTATION: f"127.0.0.1:{apiserver.port}"}}})
    except kubernetes.client.ApiException as exc:
        assert exc.status == 403 and forbidden in exc.body
    p = apiserver.kubectl(f"--kubeconfig={other}", "annotate", "--overwrite", "node", NODE, hijack)
    assert p.returncode == 1 and f'node "intruder" is not allowed to modify node "{NODE}"' in p.stderr, p.stderr
    # Its other annotations are still the node's to write.
    assert apiserver.kubectl(f"--kubeconfig={own}", "annotate", "--overwrite", "node", NODE, "note=1").returncode == 0
    node = json.loads(apiserver.kubectl_ok("get", "node", NODE, "-o", "json"))
    assert node["metadata"]["annotations"][ANNOTATION] == f"127.0.0.1:{sim_endpoint['port']}"
    assert raw(apiserver, f"/api/v1/nodes/{NODE}/proxy/healthz") == "ok"


def test_missing_and_malformed_nodes(apiserver, sim_endpoint):
    assert refused(apiserver, "/api/v1/nodes/no-such-node/proxy/healthz") == \
        'Error from server (NotFound): nodes "no-such-node" not found'
    assert refused(apiserver, f"/api/v1/nodes/{NODE}:1:2:3/proxy/healthz") == \
        f"Error from server (BadRequest): invalid node request '{NODE}:1:2:3'"
    assert refused(apiserver, f"/api/v1/nodes/ftp:{NODE}:21/proxy/") == \
        f"Error from server (BadRequest): invalid node request 'ftp:{NODE}:21'"
    assert refused(apiserver, f"/api/v1/nodes/{NODE}:abc/proxy/healthz") == \
        "Error from server (BadRequest): invalid port 'abc'"
    # Another port goes to the node's address (127.0.0.1 here): upstream's refusal, so a node
    # cannot turn the proxy on the apiserver's own host (etcd, the apiserver, ...).
    assert refused(apiserver, f"/api/v1/nodes/{NODE}:2379/proxy/health") == \
        "Error from server (BadRequest): address not allowed"


def _https(host: str, port: int, cert: tuple, ca: str | None = None) -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    if not ca:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.load_cert_chain(*cert)
    return http.client.HTTPSConnection(host, port, context=ctx, timeout=10)


def _get(conn: http.client.HTTPSConnection, path: str) -> tuple[int, str]:
    """GET PATH exactly as written (no client-side cleaning of `..`, unlike kubectl's)."""
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, resp.read().decode(errors="replace")


@pytest.mark.parametrize("path", [
    f"/api/v1/nodes/{NODE}/proxy/../../secrets",
    f"/api/v1/nodes/{NODE}/proxy/../../../api/v1/secrets",
    f"/api/v1/nodes/{NODE}/proxy/logs/../../../etc/passwd",
    f"/api/v1/nodes/{NODE}/proxy/logs/..%2F..%2F..%2Fetc%2Fpasswd",
    f"/api/v1/nodes/{NODE}/proxy/%2E%2E/%2E%2E/etc/passwd",
])
def test_dot_dot_in_the_proxied_path_stays_on_the_kubelet(apiserver, sim_endpoint, path):
    """The path is authorized and served as nodes/proxy (never as secrets), and what reaches the
    kubelet is cleaned below its root (/secrets, /etc/passwd): the kubelet's own 404 (aiohttp's
    text, not an apiserver Status), and no file outside /var/log."""
    admin = (apiserver.pki_dir / "admin.crt", apiserver.pki_dir / "admin.key")
    status, body = _get(_https("127.0.0.1", int(apiserver.url.rsplit(":", 1)[1]), admin, apiserver.ca_file), path)
    assert (status, body) == (404, "404: Not Found")


@pytest.mark.parametrize("path", ["/logs/../../etc/passwd", "/logs/..%2F..%2Fetc%2Fpasswd", "/logs/%2e%2e/%2e%2e/etc/passwd",
                                  "/logs/apt%00/../../etc/passwd", "/logs"])
def test_the_kubelet_keeps_logs_under_var_log(apiserver, sim_endpoint, path):
    """On the kubelet itself (as the apiserver's identity, which may read nodes/log), a path
    that climbs out of /var/log names a file under it (http.Dir cleans), which is not there; a
    NUL byte names nothing; /logs without its slash is not the handler's."""
    cert = (apiserver.pki_dir / "apiserver-kubelet-client.crt", apiserver.pki_dir / "apiserver-kubelet-client.key")
    status, body = _get(_https("127.0.0.1", sim_endpoint["port"], cert), path)
    assert (status, body) == (404, "404 page not found\n")
