"""LoadBalancer Services on a real knet cluster (the session `knet_cluster`, 3 nodes; issue #18
item 1): the service-lb-controller gives each an address of the node network's pool, a node
answers ARP for it on the cluster bridge, and kube-proxy DNATs it: `curl http://<EXTERNAL-IP>`
works from the host (the user's shell) and from a pod, in both proxy modes.
`loadBalancerSourceRanges` and `externalTrafficPolicy: Local` hold as upstream documents them; a
Service asking for an address it may not have stays `<pending>` with an Event; status is written
only with `services/status` rights; a deleted Service's address is free for the next one.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess

import pytest
import yaml

from knet.ipam.lbpool import parse_pool
from knet.net.names import ClusterNetwork

from .test_proxy_cluster import current_mode, set_mode, written_mode

pytestmark = pytest.mark.e2e

NS = "lb-e2e"
IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.39"
BACKEND_NODE = "node01"


def manifests(host_ip: str) -> str:
    container = {"name": "echo", "image": IMAGE, "args": ["netexec", "--http-port=8080"]}

    def pod(name: str, node: str, labels: dict) -> dict:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": labels},
                "spec": {"nodeName": node, "containers": [container], "terminationGracePeriodSeconds": 0}}

    def svc(name: str, **spec) -> dict:  # noqa: ANN003
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
                "spec": {"type": "LoadBalancer", "selector": {"app": "backend"},
                         "ports": [{"name": "http", "port": 80, "targetPort": 8080}], **spec}}
    return yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        pod("backend", BACKEND_NODE, {"app": "backend"}),
        pod("client", "node02", {"app": "client"}),
        svc("web"),
        svc("web-local", externalTrafficPolicy="Local"),
        # only the host may come in: the client pod is refused
        svc("web-ranges", loadBalancerSourceRanges=[f"{host_ip}/32"]),
    ])


class Lb:
    def __init__(self, cluster) -> None:  # noqa: ANN001
        self.c = cluster
        self.host_ip = str(ipaddress.IPv4Network(cluster.config["nodeNetwork"])[1])
        self.bridge = ClusterNetwork(cluster.name).bridge
        self.pool = parse_pool(cluster.config["loadBalancerPool"])

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.c.kubectl("-n", NS, *args, check=check)

    def external_ip(self, name: str, timeout: float = 30) -> str:
        return self.c.wait_for(f"{name}'s EXTERNAL-IP", lambda: self.kubectl(
            "get", "svc", name, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout, timeout=timeout)

    def from_host(self, url: str, seconds: float = 2) -> str:
        result = subprocess.run(["curl", "-s", "-m", str(seconds), url], capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else f"CURL-EXIT-{result.returncode}"

    def from_pod(self, url: str, seconds: float = 2) -> str:
        script = f"out=$(curl -s -m {seconds} {url}) || out=CURL-EXIT-$?; echo \"$out\""
        return self.kubectl("exec", "client", "--", "sh", "-c", script).stdout.strip()

    def answers(self, what: str, fetch, expected: str, timeout: float = 30) -> None:  # noqa: ANN001
        seen: list[str] = []

        def ok() -> bool:
            seen[:] = [fetch()]
            return seen[0] == expected
        try:
            self.c.wait_for(what, ok, timeout=timeout, interval=0.5)
        except AssertionError as exc:
            log = self.c.kubectl("-n", "kube-system", "logs", "-l", "k8s-app=knet-net", "-c", "cni", "--tail=15",
                                 "--prefix", check=False).stdout
            raise AssertionError(f"{exc}; last answer {seen}; the announcers:\n{log}") from None

    def events(self, name: str) -> list[tuple[str, str, str]]:
        items = json.loads(self.kubectl("get", "events", "--field-selector", f"involvedObject.name={name}",
                                        "-o", "json").stdout)["items"]
        return [(e["type"], e["reason"], e["message"]) for e in items]


@pytest.fixture(scope="module")
def lb(knet_cluster):  # noqa: ANN001, ANN201
    lb = Lb(knet_cluster)
    knet_cluster.kubectl("apply", "-f", "-", input=manifests(lb.host_ip))
    try:
        knet_cluster.kubectl("-n", NS, "wait", "--for=condition=Ready", "pod/backend", "pod/client",
                             "--timeout=60s", timeout=70)
        yield lb
    finally:
        knet_cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def check_reachable(lb: Lb, name: str) -> str:
    ip = lb.external_ip(name)
    lb.answers(f"http://{ip} ({name}) from the host", lambda: lb.from_host(f"http://{ip}/hostname"), "backend")
    lb.answers(f"http://{ip} ({name}) from a pod on node02", lambda: lb.from_pod(f"http://{ip}/hostname"), "backend")
    return ip


def test_loadbalancer_gets_an_address_that_answers_from_the_host_and_a_pod(knet_cluster, lb):  # noqa: ANN001
    ip = check_reachable(lb, "web")
    assert ip in lb.pool
    row = lb.kubectl("get", "svc", "web", "--no-headers").stdout.split()
    assert row[1] == "LoadBalancer" and row[3] == ip and row[4].startswith("80:3"), row
    described = lb.kubectl("describe", "svc", "web").stdout
    assert f"LoadBalancer Ingress:     {ip}" in described, described
    reasons = [r for _, r, _ in lb.events("web")]
    assert {"EnsuringLoadBalancer", "IPAllocated", "EnsuredLoadBalancer"} <= set(reasons), reasons
    assert ("Normal", "IPAllocated", f'Assigned IP ["{ip}"]') in lb.events("web")
    status = json.loads(lb.kubectl("get", "svc", "web", "-o", "json").stdout)["status"]
    assert status["loadBalancer"]["ingress"] == [{"ip": ip, "ipMode": "VIP"}]


def test_external_traffic_policy_local_keeps_the_client_address_and_one_node_answers(knet_cluster, lb):  # noqa: ANN001
    ip = lb.external_ip("web-local")
    # the host's own address reaches the backend unchanged (no SNAT); with Cluster it is masqueraded
    lb.answers(f"http://{ip}/clientip from the host", lambda: lb.from_host(f"http://{ip}/clientip").rsplit(":", 1)[0],
               lb.host_ip)
    cluster_ip = lb.external_ip("web")
    assert lb.from_host(f"http://{cluster_ip}/clientip").rsplit(":", 1)[0] != lb.host_ip
    # the node that answered ARP for it is the one with the endpoint (MetalLB's choice for Local)
    neigh = subprocess.run(["ip", "neigh", "show", ip, "dev", lb.bridge], capture_output=True, text=True).stdout
    mac = knet_cluster.ssh(BACKEND_NODE, "cat", "/sys/class/net/eth0/address").stdout.strip()
    assert mac and f"lladdr {mac}" in neigh, (neigh, mac)


def test_external_traffic_policy_local_follows_its_endpoint_to_another_node(knet_cluster, lb):  # noqa: ANN001
    def mover(node: str) -> str:
        return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mover", "namespace": NS,
                                                                           "labels": {"app": "mover"}},
                           "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0, "containers": [
                               {"name": "echo", "image": IMAGE, "args": ["netexec", "--http-port=8080"]}]}})
    knet_cluster.kubectl("apply", "-f", "-", input=mover("node02"))
    knet_cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "mover", "namespace": NS},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": {"app": "mover"},
                 "ports": [{"port": 80, "targetPort": 8080}]}}))
    ip = lb.external_ip("mover")
    lb.answers(f"http://{ip} (endpoint on node02) from the host", lambda: lb.from_host(f"http://{ip}/hostname"),
               "mover")
    # the endpoint moves to node01: node02 stops answering, node01 takes the address over (its
    # gratuitous ARP moves the host's entry) and the host reaches the new pod
    lb.kubectl("delete", "pod", "mover", "--wait=true")
    knet_cluster.kubectl("apply", "-f", "-", input=mover(BACKEND_NODE))
    lb.kubectl("wait", "--for=condition=Ready", "pod/mover", "--timeout=60s")
    lb.answers(f"http://{ip} (endpoint moved to {BACKEND_NODE}) from the host",
               lambda: lb.from_host(f"http://{ip}/clientip").rsplit(":", 1)[0], lb.host_ip, timeout=20)
    mac = knet_cluster.ssh(BACKEND_NODE, "cat", "/sys/class/net/eth0/address").stdout.strip()
    neigh = subprocess.run(["ip", "neigh", "show", ip, "dev", lb.bridge], capture_output=True, text=True).stdout
    assert f"lladdr {mac}" in neigh, (neigh, mac)
    agent = knet_cluster.kubectl("-n", "kube-system", "get", "pods", "-l", "k8s-app=knet-net", "-o",
                                 f"jsonpath={{.items[?(@.spec.nodeName=='{BACKEND_NODE}')].metadata.name}}").stdout
    log = knet_cluster.kubectl("-n", "kube-system", "logs", agent, "-c", "cni").stdout
    assert f"announcing {ip} ({NS}/mover) from node {BACKEND_NODE}" in log, log[-2000:]


def test_source_ranges_admit_the_host_and_refuse_a_pod(knet_cluster, lb):  # noqa: ANN001
    ip = lb.external_ip("web-ranges")
    lb.answers(f"http://{ip} from the host (allowed)", lambda: lb.from_host(f"http://{ip}/hostname"), "backend")
    # the pod is not in loadBalancerSourceRanges: kube-proxy drops it (curl times out)
    assert lb.from_pod(f"http://{ip}/hostname") == "CURL-EXIT-28"


def check_trace(c, lb: Lb) -> None:  # noqa: ANN001
    """`knet trace` agrees with curl on web-ranges (after check_reachable/answers): from the host
    through the node that answered the host's ARP to the backend; from the client pod dropped by
    the source ranges on its own node."""
    ip = lb.external_ip("web-ranges")
    p = c.knet("trace", "--name", c.name, "host", f"lb/{NS}/web-ranges", "-o", "json")
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert (got["verdict"], got["paths"][0]["endpoint_pod"]) == ("delivered", f"{NS}/backend"), got["reason"]
    assert got["target"]["ip"] == ip and got["source"]["kind"] == "host"
    announcer = got["paths"][0]["hops"][0]["node"]
    assert f"answered by node {announcer} " in got["notes"][1], got["notes"]
    # the node the trace names is the one whose MAC the host learned for the address
    neigh = subprocess.run(["ip", "neigh", "show", ip, "dev", lb.bridge], capture_output=True, text=True).stdout
    mac = c.ssh(announcer, "cat", "/sys/class/net/eth0/address").stdout.strip()
    assert mac and f"lladdr {mac}" in neigh, (announcer, neigh, mac)
    p = c.knet("trace", "--name", c.name, f"{NS}/client", ip)
    assert p.returncode == 0, p.stderr
    assert "stays on the pod's node node02" in p.stdout and p.stdout.splitlines()[-1].startswith(
        "verdict: dropped by kube-proxy: the source is not in the Service's loadBalancerSourceRanges"), p.stdout


def test_trace_from_the_host_and_a_pod_through_the_address(knet_cluster, lb):  # noqa: ANN001
    ip = lb.external_ip("web-ranges")
    lb.answers(f"http://{ip} from the host (allowed)", lambda: lb.from_host(f"http://{ip}/hostname"), "backend")
    check_trace(knet_cluster, lb)


def test_an_address_it_may_not_have_leaves_the_service_pending_with_an_event(knet_cluster, lb):  # noqa: ANN001
    taken = lb.external_ip("web")
    node_ip = knet_cluster.config["nodes"][1]["ip"]
    for name, asked in (("copycat", taken), ("hijack", node_ip)):
        lb.kubectl("create", "service", "loadbalancer", name, "--tcp=80:8080")
        lb.kubectl("patch", "svc", name, "-p", json.dumps({"spec": {"loadBalancerIP": asked}}))
    knet_cluster.wait_for("AllocationFailed events", lambda: all(
        any(r == "AllocationFailed" for _, r, _ in lb.events(n)) for n in ("copycat", "hijack")), timeout=20)
    assert any(m.endswith(f"{taken} is already in use by {NS}/web") for _, _, m in lb.events("copycat"))
    assert any(f"{node_ip} is not allowed in config" in m for _, _, m in lb.events("hijack"))
    for name in ("copycat", "hijack"):
        assert lb.kubectl("get", "svc", name, "--no-headers").stdout.split()[3] == "<pending>"


def test_status_needs_services_status_rights(knet_cluster, lb):  # noqa: ANN001
    # an editor of the namespace (the `edit` ClusterRole: services yes, services/status no)
    lb.kubectl("create", "serviceaccount", "editor")
    lb.kubectl("create", "rolebinding", "editor", "--clusterrole=edit", f"--serviceaccount={NS}:editor")
    who = f"--as=system:serviceaccount:{NS}:editor"
    # a Service of another class: knet's controller never writes its status (so nothing undoes a write)
    knet_cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "foreign", "namespace": NS},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/other", "selector": {"app": "backend"},
                 "ports": [{"port": 80, "targetPort": 8080}]}}))
    forged = {"status": {"loadBalancer": {"ingress": [{"ip": knet_cluster.config["nodes"][0]["ip"]}]}}}
    denied = lb.kubectl(who, "patch", "svc", "foreign", "--subresource=status", "-p", json.dumps(forged), check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr
    # through the Service itself, status is not written (the apiserver keeps the old status)
    stored = lb.kubectl(who, "patch", "svc", "foreign", "-p", json.dumps(forged), "-o", "json").stdout
    assert json.loads(stored)["status"].get("loadBalancer") in (None, {}), stored
    assert lb.kubectl("get", "svc", "foreign", "--no-headers").stdout.split()[3] == "<pending>"
    # the admin, who has services/status, can (as another implementation's controller would;
    # a documentation address nothing sends to)
    theirs = {"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7", "ipMode": "VIP"}]}}}
    lb.kubectl("patch", "svc", "foreign", "--subresource=status", "-p", json.dumps(theirs))
    assert lb.kubectl("get", "svc", "foreign", "--no-headers").stdout.split()[3] == "203.0.113.7"


def test_the_address_is_released_on_delete_and_reused(knet_cluster, lb):  # noqa: ANN001
    lb.kubectl("create", "service", "loadbalancer", "short-lived", "--tcp=80:8080")
    ip = lb.external_ip("short-lived")
    lb.kubectl("delete", "svc", "short-lived")
    again = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reuse", "namespace": NS},
             "spec": {"type": "LoadBalancer", "loadBalancerIP": ip, "selector": {"app": "backend"},
                      "ports": [{"port": 80, "targetPort": 8080}]}}
    knet_cluster.kubectl("apply", "-f", "-", input=json.dumps(again))
    assert lb.external_ip("reuse") == ip
    lb.answers(f"http://{ip} (reused) from the host", lambda: lb.from_host(f"http://{ip}/hostname"), "backend")


def test_in_the_other_proxy_mode_too(knet_cluster, lb):  # noqa: ANN001
    original = written_mode(knet_cluster)
    other = "nftables" if current_mode(knet_cluster) == "iptables" else "iptables"
    set_mode(knet_cluster, other)
    try:
        check_reachable(lb, "web")
        ip = lb.external_ip("web-ranges")
        lb.answers(f"http://{ip} from the host in {other} mode", lambda: lb.from_host(f"http://{ip}/hostname"),
                   "backend")
        assert lb.from_pod(f"http://{ip}/hostname") == "CURL-EXIT-28"
        check_trace(knet_cluster, lb)
    finally:
        set_mode(knet_cluster, original)
