"""NetworkPolicy enforced on a real cluster: a port of upstream's truth-table suite
(test/e2e/network/netpol/{model,policies,network_policy}.go).

The model: namespaces x, y, z (here np-x, np-y, np-z, labelled ns=x ...) with pods a, b, c, each
serving TCP and UDP on ports 80 and 81 (agnhost serve-hostname; upstream runs one container per
port and protocol, here one per port serving both protocols, with upstream's named ports
serve-80-tcp, serve-80-udp, ...), and a Service per pod. Probes go from every pod to every other
pod (loopback ignored, as upstream ignores it), all at once: one `kubectl exec` per source pod
runs the 8 connection attempts in parallel with a 1 s timeout, by pod IP or by Service. Each test
prints the truth table it saw when it differs from upstream's expectation.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
PREFIX = "np-"
PROBE = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
def probe(t):
    key, host, port, proto = t
    try:
        if proto == "tcp":
            socket.create_connection((host, port), timeout=1.0).close()
            return key, True
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1.0)
        s.connect((host, port))
        s.send(b"hostname")
        return key, bool(s.recv(256))
    except OSError:
        return key, False
with ThreadPoolExecutor(32) as ex:
    print(json.dumps(dict(ex.map(probe, json.loads(sys.argv[1])))))
"""


def ns_name(ns: str) -> str:
    return PREFIX + ns


def model_objects() -> list[dict]:
    objs: list[dict] = []
    for ns in NAMESPACES:
        objs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns_name(ns), "labels": {"ns": ns}}})
        for pod in PODS:
            containers = [{
                "name": f"cont-{port}", "image": "registry.k8s.io/e2e-test-images/agnhost:2.47",
                "command": ["/agnhost", "serve-hostname", "--tcp", "--udp", "--http=false", "--port", str(port)],
                "ports": [{"name": f"serve-{port}-{proto.lower()}", "containerPort": port, "protocol": proto}
                          for proto in ("TCP", "UDP")]} for port in (80, 81)]
            objs.append({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": pod, "namespace": ns_name(ns), "labels": {"pod": pod}},
                         "spec": {"containers": containers, "terminationGracePeriodSeconds": 0}})
            objs.append({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": f"s-{ns}-{pod}", "namespace": ns_name(ns)},
                         "spec": {"selector": {"pod": pod}, "ports": [
                             {"name": f"service-port-{proto.lower()}-{port}", "port": port, "protocol": proto}
                             for port in (80, 81) for proto in ("TCP", "UDP")]}})
    return objs


class Model:
    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.ips: dict[str, str] = {}
        self.svc: dict[str, str] = {}

    def keys(self) -> list[str]:
        return [f"{ns}/{pod}" for ns in NAMESPACES for pod in PODS]

    def kubectl(self, *args: str, input: str | None = None, check: bool = True):
        return self.cluster.kubectl(*args, input=input, check=check, timeout=60)

    def refresh(self) -> None:
        for ns in NAMESPACES:
            pods = json.loads(self.kubectl("get", "pods", "-n", ns_name(ns), "-o", "json").stdout)["items"]
            for p in pods:
                self.ips[f"{ns}/{p['metadata']['name']}"] = p["status"].get("podIP", "")
            for ns_ in (ns,):
                for pod in PODS:
                    self.svc[f"{ns}/{pod}"] = f"s-{ns}-{pod}.{ns_name(ns_)}.svc.cluster.local"

    def probe_from(self, src: str, targets: list[tuple[str, str, int, str]]) -> dict[str, bool]:
        ns, pod = src.split("/")
        out = self.cluster.kubectl("exec", "-n", ns_name(ns), pod, "-c", "cont-80", "--", "python3", "-c", PROBE,
                                   json.dumps(targets), check=False, timeout=30)
        if out.returncode != 0:
            raise AssertionError(f"probe from {src} failed: {out.stderr}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def table(self, port: int, proto: str, via: str = "ip") -> dict[tuple[str, str], bool]:
        keys = self.keys()

        def one(src: str) -> dict[tuple[str, str], bool]:
            targets = [(dst, self.ips[dst] if via == "ip" else self.svc[dst], port, proto) for dst in keys if dst != src]
            return {(src, dst): ok for dst, ok in self.probe_from(src, targets).items()}
        with ThreadPoolExecutor(len(keys)) as ex:
            result: dict[tuple[str, str], bool] = {}
            for part in ex.map(one, keys):
                result.update(part)
        return result

    def node_of(self, key: str) -> str:
        ns, pod = key.split("/")
        return json.loads(self.kubectl("get", "pod", pod, "-n", ns_name(ns), "-o", "json").stdout)["spec"]["nodeName"]

    def addon_pod(self, node: str) -> str:
        return self.kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=knet-net", "--field-selector",
                            f"spec.nodeName={node}", "-o", "name").stdout.strip()

    @staticmethod
    def render(got: dict[tuple[str, str], bool], expected) -> str:
        keys = [f"{ns}/{pod}" for ns in NAMESPACES for pod in PODS]
        lines = ["        " + " ".join(f"{k:>5}" for k in keys)]
        for s in keys:
            cells = []
            for d in keys:
                if s == d:
                    cells.append("    -")
                    continue
                mark = "." if got[(s, d)] else "X"
                cells.append(f"{mark if got[(s, d)] == expected(s, d) else mark + '!':>5}")
            lines.append(f"{s:>7} " + " ".join(cells))
        return "\n".join(lines) + "\n(. reachable, X blocked, ! differs from the expectation)"

    def expect(self, expected, port: int = 80, proto: str = "tcp", via: str = "ip", timeout: float = 20.0) -> None:
        """Probe until the truth table matches `expected(src, dst)` (policies take effect
        asynchronously), else fail with the last table."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.table(port, proto, via)
            if all(v == expected(s, d) for (s, d), v in got.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"truth table for {proto}/{port} by {via}:\n{self.render(got, expected)}")
            time.sleep(0.5)

    def apply(self, *policies: dict) -> None:
        self.kubectl("apply", "-f", "-", input=as_list(policies))

    def clear(self) -> None:
        for ns in NAMESPACES:
            self.kubectl("delete", "networkpolicies", "--all", "-n", ns_name(ns), "--wait=false")
        for ns in NAMESPACES:  # labels tests may have changed
            self.kubectl("label", "namespace", ns_name(ns), "team-", check=False)
            for pod in PODS:
                self.kubectl("label", "pod", "-n", ns_name(ns), pod, "team-", check=False)


def as_list(objs) -> str:
    """JSON for kubectl (as YAML, upstream's label values x, y, z would read as booleans)."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)})


def netpol(ns: str, name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns_name(ns)}, "spec": spec}


def everything(_s: str, _d: str) -> bool:
    return True


@pytest.fixture(scope="module")
def model(knet_cluster):
    cluster = knet_cluster
    cluster.wait_for("the knet-net add-on pod Running on every node", lambda: json.loads(cluster.kubectl(
        "get", "ds", "knet-net", "-n", "kube-system", "-o", "json").stdout)["status"].get("numberReady", 0)
        == len(cluster.config["nodes"]), timeout=60, interval=0.5)
    cluster.kubectl("apply", "-f", "-", input=as_list(model_objects()), timeout=60)
    m = Model(cluster)
    try:
        for ns in NAMESPACES:
            cluster.kubectl("wait", "--for=condition=Ready", "pods", "--all", "-n", ns_name(ns), "--timeout=120s",
                            timeout=130)
        m.refresh()
        m.expect(everything)
        yield m
    finally:
        for ns in NAMESPACES:
            cluster.kubectl("delete", "namespace", ns_name(ns), "--wait=false", check=False)


@pytest.fixture
def m(model):
    yield model
    model.clear()


def test_default_deny_ingress(m, knet_cluster):
    # upstream "should support a 'default-deny-ingress' policy"
    m.apply(netpol("x", "deny-ingress", {"podSelector": {}, "ingress": []}))
    blocked_into_x = lambda s, d: not d.startswith("x/")  # noqa: E731
    m.expect(blocked_into_x)
    m.expect(blocked_into_x, via="service")   # after kube-proxy's DNAT too
    m.expect(blocked_into_x, port=81, proto="udp")
    # what users see: the chains next to kube-proxy's, and what the controller says it did
    node = m.node_of("x/a")
    mode = knet_cluster.kubectl("get", "cm", "kube-proxy", "-n", "kube-system", "-o",
                                "jsonpath={.data.config\\.conf}").stdout
    listing = knet_cluster.ssh(node, "iptables", "--list", "-n").stdout
    if "mode: nftables" in mode:  # a table of its own, nothing in iptables
        assert "KNET" not in listing
        assert "np-x/deny-ingress ingress" in knet_cluster.ssh(node, "nft", "list", "table", "ip", "knet-netpol").stdout
    else:  # chains next to kube-proxy's, the jump first in FORWARD
        assert "np-x/deny-ingress ingress" in listing and "KNET-NPC-INGRESS" in listing
        forward = knet_cluster.ssh(node, "iptables", "-S", "FORWARD").stdout.splitlines()
        assert forward[1] == '-A FORWARD -m comment --comment "knet network policies" -j KNET-NPC', forward
    logs = knet_cluster.kubectl("logs", "-n", "kube-system", m.addon_pod(node), "-c", "netpol").stdout
    assert "programmed np-x/deny-ingress ingress" in logs and "isolates np-x/a" in logs


def test_allow_from_namespace(m):
    # upstream "should enforce policy to allow ingress traffic from pods in all namespaces"-style: from y only
    m.apply(netpol("x", "allow-from-y", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}))
    m.expect(lambda s, d: d != "x/a" or s.startswith("y/"))
    # what `knet netpol check` (the rules evaluated without a kernel, as on sim clusters) answers agrees
    assert m.cluster.knet("netpol", "check", "np-y/b", "np-x/a", "--port", "80").returncode == 0
    denied = m.cluster.knet("netpol", "check", "np-z/b", "np-x/a", "--port", "80")
    assert denied.returncode == 1 and "denied" in denied.stdout


def test_namespace_and_pod_selector_together_and_apart(m):
    # upstream "should enforce policy based on PodSelector and NamespaceSelector" / "... or ..."
    m.apply(netpol("x", "and", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["x"]}]},
         "podSelector": {"matchLabels": {"pod": "b"}}}]}]}))
    m.expect(lambda s, d: d != "x/a" or s in ("y/b", "z/b"))
    m.apply(netpol("x", "and", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["x"]}]}},
        {"podSelector": {"matchLabels": {"pod": "b"}}}]}]}))
    m.expect(lambda s, d: d != "x/a" or not s.startswith("x/") or s == "x/b")


def test_named_port_and_end_port(m):
    # upstream "should allow ingress access on one named port" and "... with endPort field"
    m.apply(netpol("x", "named", {"podSelector": {}, "ingress": [{"ports": [{"port": "serve-81-tcp"}]}]}))
    m.expect(lambda s, d: not d.startswith("x/"), port=80)
    m.expect(everything, port=81)
    m.clear()
    m.apply(netpol("x", "range", {"podSelector": {}, "ingress": [{"ports": [{"port": 79, "endPort": 80}]}]}))
    m.expect(everything, port=80)
    m.expect(lambda s, d: not d.startswith("x/"), port=81)


def test_ip_block_with_except(m):
    # upstream "should enforce except clause while egress access to server in CIDR block", ingress side
    src = m.ips["y/b"]
    m.apply(netpol("x", "block", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": [f"{src}/32"]}}]}]}))
    m.expect(lambda s, d: not (d == "x/a" and s == "y/b"))


def test_default_deny_egress_with_dns_allowed(m):
    # upstream "should enforce egress policy allowing traffic to a server in a different namespace
    # based on PodSelector and NamespaceSelector" with DNS allowed: x may only reach y/a (and DNS)
    m.apply(netpol("x", "egress", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
        {"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}, "podSelector": {"matchLabels": {"pod": "a"}}}]}]}))
    m.expect(lambda s, d: not s.startswith("x/") or d == "y/a", via="service")  # by name: DNS works


def test_deny_all_ingress_and_egress_together(m):
    # upstream "should support denying of egress traffic on the client side (even if the server
    # explicitly allows this traffic)": y/a denies all egress, x/a allows all ingress
    m.apply(netpol("y", "deny-all", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress", "Egress"]}),
            netpol("x", "allow-all", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{}]}))
    m.expect(lambda s, d: s != "y/a" and d != "y/a")
    m.expect(lambda s, d: s != "y/a" and d != "y/a", port=81, proto="udp")


def test_policy_added_and_removed_while_traffic_flows(m):
    m.apply(netpol("y", "deny", {"podSelector": {"matchLabels": {"pod": "b"}}}))
    m.expect(lambda s, d: d != "y/b")
    m.kubectl("delete", "networkpolicy", "deny", "-n", ns_name("y"))
    m.expect(everything)


def test_pod_and_namespace_relabelled_after_the_policy(m):
    # upstream "should enforce updated policy" / "... after namespace/pod labels change"
    m.apply(netpol("x", "from-team", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"team": "blue"}}},
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"team": "blue"}}}]}]}))
    m.expect(lambda s, d: d != "x/a")
    m.kubectl("label", "namespace", ns_name("z"), "team=blue")
    m.expect(lambda s, d: d != "x/a" or s.startswith("z/"))
    m.kubectl("label", "pod", "-n", ns_name("y"), "c", "team=blue")
    m.expect(lambda s, d: d != "x/a" or s.startswith("z/") or s == "y/c")


def test_restarted_controller_never_opens_an_isolated_pod(m, knet_cluster):
    m.apply(netpol("x", "deny", {"podSelector": {"matchLabels": {"pod": "a"}}}))
    m.expect(lambda s, d: d != "x/a")
    node = m.node_of("x/a")
    pod = m.addon_pod(node)
    m.kubectl("delete", "-n", "kube-system", pod, "--wait=false")
    end = time.monotonic() + 6
    while time.monotonic() < end:  # while the add-on pod goes and comes back, x/a stays closed
        assert not m.probe_from("y/a", [("x/a", m.ips["x/a"], 80, "tcp")])["x/a"], "x/a opened during the restart"
    knet_cluster.wait_for("the knet-net pod back on " + node, lambda: json.loads(knet_cluster.kubectl(
        "get", "ds", "knet-net", "-n", "kube-system", "-o", "json").stdout)["status"].get("numberReady", 0)
        == len(knet_cluster.config["nodes"]), timeout=60, interval=0.5)
    m.expect(lambda s, d: d != "x/a")


def test_metrics(m):
    """The controller serves Prometheus text on its node (sync duration, rules, errors)."""
    m.apply(netpol("x", "deny", {"podSelector": {}}))
    m.expect(lambda s, d: not d.startswith("x/"))
    node = m.node_of("x/a")
    out = m.cluster.ssh(node, "python3", "-c", "import urllib.request; print(urllib.request.urlopen("
                        "'http://127.0.0.1:9809/metrics').read().decode())").stdout
    assert "knet_netpol_sync_duration_seconds_count" in out
    assert "knet_netpol_sync_errors_total 0" in out
    assert "knet_netpol_isolated_pods" in out and "knet_netpol_isolated_pods 0" not in out


def test_isolated_pod_not_reachable_through_a_node_port(m):
    """As an attacker: a pod that a policy isolates stays closed when reached through a NodePort on
    any node (kube-proxy DNATs, and on other nodes masquerades, before the policy checks)."""
    m.apply(netpol("x", "deny", {"podSelector": {"matchLabels": {"pod": "a"}}}))
    m.kubectl("patch", "service", "s-x-a", "-n", ns_name("x"), "-p", '{"spec": {"type": "NodePort"}}')
    try:
        svc = json.loads(m.kubectl("get", "service", "s-x-a", "-n", ns_name("x"), "-o", "json").stdout)
        node_port = next(p["nodePort"] for p in svc["spec"]["ports"] if p["port"] == 80 and p["protocol"] == "TCP")
        nodes = json.loads(m.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        ips = [a["address"] for n in nodes for a in n["status"]["addresses"] if a["type"] == "InternalIP"]
        targets = [(ip, ip, node_port, "tcp") for ip in ips]
        m.expect(lambda s, d: d != "x/a")
        for src in ("y/b", "x/b", "z/c"):
            got = m.probe_from(src, targets)
            assert not any(got.values()), f"{src} reached isolated x/a through NodePort {node_port}: {got}"
        m.kubectl("delete", "networkpolicy", "deny", "-n", ns_name("x"))
        m.cluster.wait_for("x/a reachable through the NodePort once the policy is gone",
                           lambda: all(m.probe_from("y/b", targets).values()), timeout=20, interval=0.5)
    finally:
        m.kubectl("patch", "service", "s-x-a", "-n", ns_name("x"), "--type=json",
                  "-p", '[{"op": "replace", "path": "/spec/type", "value": "ClusterIP"}, '
                        '{"op": "remove", "path": "/spec/ports/0/nodePort"}, {"op": "remove", "path": "/spec/ports/1/nodePort"}, '
                        '{"op": "remove", "path": "/spec/ports/2/nodePort"}, {"op": "remove", "path": "/spec/ports/3/nodePort"}]',
                  check=False)
