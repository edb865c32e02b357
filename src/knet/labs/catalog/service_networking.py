"""The reference transcript's lab (CKA practice test "Service Networking" on kubeadm): the
node, pod and Service ranges, kube-proxy's pods, its mode, and how it runs on every node.
Every answer is read from the live cluster: the node range from the nodes' InternalIPs and the
prefix of the interface holding them, the pod range from kube-controller-manager's
--cluster-cidr, the Service range from kube-apiserver's --service-cluster-ip-range, the mode
from kube-proxy's ConfigMap."""

from __future__ import annotations

import ipaddress

from knet.labs import kit
from knet.labs.access import ClusterAccess, LabClusterError
from knet.labs.facts import controller_kind, kube_proxy_configured_mode, kube_proxy_mode, parse_ip_addr
from knet.labs.model import Facts, Lab, Question, Verdict, judge_choice, judge_count, judge_network, wrong


def observe_node_network(cluster: ClusterAccess, answer: str | None) -> Facts:
    """Each node's InternalIP and the network of the interface that holds it (`ip -o -4 addr`
    in the node, as the transcript's `ip addr` on eth0)."""
    addresses = kit.node_addresses(cluster)
    networks = {}
    for node, ip in addresses.items():
        out = cluster.node_run(node, ["ip", "-o", "-4", "addr", "show"])
        if out.rc != 0:
            raise LabClusterError(f"ip addr in node {node}: {out.output}")
        for _ifname, iface in parse_ip_addr(out.stdout):
            if str(iface.ip) == ip:
                networks[node] = str(iface.network)
    return {"addresses": addresses, "networks": networks}


def judge_node_network(facts: Facts, answer: str | None) -> Verdict:
    networks = set(facts["networks"].values())
    if len(networks) != 1 or set(facts["networks"]) != set(facts["addresses"]):
        return wrong(f"the nodes are not on one network ({facts['networks']}): this lab expects one")
    (network,) = networks
    verdict = judge_network(network, answer, "the nodes' network")
    if not verdict.ok:
        inside = [f"{n} ({ip})" for n, ip in sorted(facts["addresses"].items())]
        return wrong(f"{verdict.message}; the nodes are {', '.join(inside)}: look at their addresses and "
                     "the prefix of the interface that holds them")
    return verdict


def observe_pod_range(cluster: ClusterAccess, answer: str | None) -> Facts:
    return {"cluster_cidr": kit.control_plane_flag(cluster, "kube-controller-manager", "cluster-cidr"),
            "service_range": kit.control_plane_flag(cluster, "kube-apiserver", "service-cluster-ip-range"),
            "node_cidrs": {n["metadata"]["name"]: (n.get("spec") or {}).get("podCIDR")
                           for n in cluster.list("nodes")}}


def judge_pod_range(facts: Facts, answer: str | None) -> Verdict:
    if not facts["cluster_cidr"]:
        return wrong("kube-controller-manager has no --cluster-cidr: this cluster gives no pod range")
    misses = {cidr: f"node {node}'s share of the pod range (its spec.podCIDR); the cluster's range holds every node's"
              for node, cidr in facts["node_cidrs"].items() if cidr}
    if facts.get("service_range"):
        misses[facts["service_range"]] = "the Service range (kube-apiserver's --service-cluster-ip-range), not the pods'"
    return judge_network(facts["cluster_cidr"], answer, "the pod range", misses)


def judge_service_range(facts: Facts, answer: str | None) -> Verdict:
    if not facts["service_range"]:
        return wrong("kube-apiserver has no --service-cluster-ip-range")
    misses = {facts["cluster_cidr"]: "the pod range (kube-controller-manager's --cluster-cidr), not the Services'"} \
        if facts.get("cluster_cidr") else {}
    verdict = judge_network(facts["service_range"], answer, "the Service range", misses)
    if not verdict.ok and answer:
        try:
            ip = ipaddress.ip_address(answer.strip())
        except ValueError:
            return verdict
        if ip in ipaddress.ip_network(facts["service_range"]):
            return wrong(f"{ip} is one ClusterIP inside the Service range; the question asks for the range itself")
    return verdict


def observe_kube_proxy(cluster: ClusterAccess, answer: str | None) -> Facts:
    ds = cluster.get("daemonsets", "kube-proxy", kit.KUBE_SYSTEM)
    if ds is None:
        raise LabClusterError("no DaemonSet kube-system/kube-proxy")
    labels = ((ds.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    pods = cluster.list("pods", kit.KUBE_SYSTEM, ",".join(f"{k}={v}" for k, v in labels.items()))
    cm = cluster.get("configmaps", "kube-proxy", kit.KUBE_SYSTEM) or {}
    conf = (cm.get("data") or {}).get("config.conf") or ""
    return {"pods": sorted(p["metadata"]["name"] for p in pods),
            "owners": sorted({controller_kind(p) or "" for p in pods}),
            "nodes": len(cluster.list("nodes")),
            "mode": kube_proxy_mode(conf), "configured_mode": kube_proxy_configured_mode(conf)}


def judge_pod_count(facts: Facts, answer: str | None) -> Verdict:
    return judge_count(len(facts["pods"]), answer, "kube-proxy pods",
                       "kubectl get pods -A | grep proxy")


def judge_mode(facts: Facts, answer: str | None) -> Verdict:
    say = facts["configured_mode"] or '"" (empty: the default, which is iptables on Linux)'
    others = {m: f"kube-proxy's ConfigMap says mode: {say}" for m in ("iptables", "ipvs", "nftables", "userspace")
              if m != facts["mode"]}
    return judge_choice(facts["mode"], answer, "kube-proxy's mode", near_misses=others)


def judge_daemonset(facts: Facts, answer: str | None) -> Verdict:
    owners = [o for o in facts["owners"] if o]
    if len(owners) != 1:
        return wrong(f"kube-proxy's pods have controllers {owners or 'none'}: expected one")
    return judge_choice(owners[0], answer, "what runs kube-proxy on every node",
                        near_misses={"deployment": "a Deployment places its replicas wherever the scheduler likes; "
                                                   "see Controlled By in kubectl -n kube-system describe pod kube-proxy-…",
                                     "static pod": "static pods are the control plane's (kube-apiserver-controlplane …)",
                                     "replicaset": "look at Controlled By in kubectl describe pod kube-proxy-…"})


LAB = Lab(
    name="service-networking",
    title="Service networking: the cluster's ranges and kube-proxy",
    summary="""
The cluster is as kubeadm leaves it. Find each answer on the cluster (kubectl, knet ssh NODE,
ps -ef in the controlplane node, the kube-system ConfigMaps) and give it with knet lab answer.""",
    questions=(
        Question("node-range", "What network range are the nodes in the cluster part of? (CIDR)",
                 observe_node_network, judge_node_network,
                 hints=("kubectl get nodes -o wide shows each node's INTERNAL-IP.",
                        "The prefix length comes from the node's interface: knet ssh controlplane -- ip addr show eth0.")),
        Question("pod-range", "What is the range of IP addresses configured for pods on this cluster? (CIDR)",
                 observe_pod_range, judge_pod_range,
                 hints=("The controller-manager allocates each node a slice of it: knet ssh controlplane -- ps -ef | grep cluster-cidr.",
                        "kubectl -n kube-system get cm kubeadm-config -o yaml shows networking.podSubnet.")),
        Question("service-range", "What is the IP range configured for the Services within the cluster? (CIDR)",
                 observe_pod_range, judge_service_range,
                 hints=("kubectl get svc -A shows ClusterIPs from it, but not its size.",
                        "cat /etc/kubernetes/manifests/kube-apiserver.yaml | grep cluster-ip-range (in the controlplane node).")),
        Question("kube-proxy-pods", "How many kube-proxy pods are deployed in this cluster?",
                 observe_kube_proxy, judge_pod_count, hints=("kubectl get pods -A | grep proxy",)),
        Question("proxy-mode", "What type of proxy is kube-proxy configured to use?",
                 observe_kube_proxy, judge_mode,
                 hints=("kubectl -n kube-system get configmap kube-proxy -o yaml: look at mode.",
                        "An empty mode means the platform's default; kubectl -n kube-system logs kube-proxy-… says which it chose.")),
        Question("runs-on-every-node", "How does this cluster ensure that a kube-proxy pod runs on every node? "
                 "(the kind of object that runs them)",
                 observe_kube_proxy, judge_daemonset,
                 hints=("kubectl -n kube-system describe pod kube-proxy-…: look at Controlled By.",)),
    ),
)
