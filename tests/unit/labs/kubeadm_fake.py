"""A kubeadm-like cluster for the labs' unit tests, on knet.labs.fake.FakeCluster: the objects
`knet up` makes (nodes, control-plane mirror pods, kube-proxy, CoreDNS, the network add-on), the
nodes' `ip`/`ss`/`ps`/`ls`/`cat` answers, and a small model of what a probe from a pod sees
(DNS through the DNS Service's endpoints, HTTP to a Service's selected pods on its targetPort,
NetworkPolicy ingress/egress with podSelector/namespaceSelector and ports) computed from the
fake's objects, so a fix made with "kubectl" (a patch of the fake) changes the probe's answer."""

from __future__ import annotations

import ipaddress
import itertools
import json
import re

from knet.labs.access import ExecResult
from knet.labs.facts import container_ports, selector_matches
from knet.labs.fake import FakeCluster

ZONE = "cluster.local"
DNS_IP = "10.96.0.10"
NODES = {"controlplane": ("172.30.0.2", "10.244.0.0/24"), "node01": ("172.30.0.3", "10.244.1.0/24")}
CONFLIST = {"cniVersion": "1.0.0", "name": "knet",
            "plugins": [{"type": "bridge", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]]}},
                        {"type": "portmap"}]}
COREFILE = (".:53 {\n    errors\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n    }\n"
            "    forward . /etc/resolv.conf\n}\n")


def _pod(name, ns, labels, *, command=None, owner=None, volumes=None, ip=None, node="node01"):
    meta = {"name": name, "namespace": ns, "labels": labels}
    if owner:
        kind, _, owner_name = owner.partition("/")
        meta["ownerReferences"] = [{"kind": kind, "name": owner_name, "controller": True}]
    return {"kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "c", "command": command or []}], "volumes": volumes or []},
            "status": {"podIP": ip}}


def kubeadm_objects(proxy_mode: str = "") -> list[dict]:
    objs: list[dict] = [{"kind": "Namespace", "metadata": {"name": n}} for n in ("default", "kube-system")]
    for name, (ip, cidr) in NODES.items():
        labels = {"node-role.kubernetes.io/control-plane": ""} if name == "controlplane" else {}
        objs.append({"kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": {"podCIDR": cidr},
                     "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}})
    ks = "kube-system"
    objs += [
        _pod("kube-apiserver-controlplane", ks, {"component": "kube-apiserver"}, node="controlplane",
             command=["kube-apiserver", "--advertise-address=172.30.0.2", "--service-cluster-ip-range=10.96.0.0/12"]),
        _pod("kube-controller-manager-controlplane", ks, {"component": "kube-controller-manager"}, node="controlplane",
             command=["kube-controller-manager", "--allocate-node-cidrs=true", "--cluster-cidr", "10.244.0.0/16"]),
        _pod("kube-proxy-aaaaa", ks, {"k8s-app": "kube-proxy"}, owner="DaemonSet/kube-proxy", node="controlplane"),
        _pod("kube-proxy-bbbbb", ks, {"k8s-app": "kube-proxy"}, owner="DaemonSet/kube-proxy"),
        {"kind": "DaemonSet", "metadata": {"name": "kube-proxy", "namespace": ks},
         "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                  "template": {"spec": {"volumes": [{"name": "lib-modules", "hostPath": {"path": "/lib/modules"}}]}}}},
        {"kind": "DaemonSet", "metadata": {"name": "knet-net", "namespace": ks},
         "spec": {"selector": {"matchLabels": {"k8s-app": "knet-net"}},
                  "template": {"spec": {"volumes": [{"name": "cni-conf", "hostPath": {"path": "/etc/cni/net.d"}}]}}}},
        {"kind": "ConfigMap", "metadata": {"name": "kube-proxy", "namespace": ks},
         "data": {"config.conf": f"apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
                                 f"mode: {json.dumps(proxy_mode)}\nclusterCIDR: 10.244.0.0/16\n"}},
        {"kind": "ConfigMap", "metadata": {"name": "kubelet-config", "namespace": ks},
         "data": {"kubelet": f"clusterDNS:\n- {DNS_IP}\nclusterDomain: {ZONE}\n"}},
        {"kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": ks}, "data": {"Corefile": COREFILE}},
        {"kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default"},
         "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 443, "targetPort": 6443}]}},
        {"kind": "Service", "metadata": {"name": "kube-dns", "namespace": ks},
         "spec": {"clusterIP": DNS_IP, "selector": {"k8s-app": "kube-dns"},
                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}]}},
        {"kind": "Deployment", "metadata": {"name": "coredns", "namespace": ks},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                  "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}}}}},
    ]
    for i, node in enumerate(NODES):
        objs.append(_pod(f"coredns-abc-{i}", ks, {"k8s-app": "kube-dns"}, owner="ReplicaSet/coredns-abc", node=node,
                         ip=f"10.244.{i}.2", volumes=[{"name": "config-volume", "configMap": {"name": "coredns"}}]))
    return objs


# ------------------------------------------------------------------- what the nodes answer

def node_fn(cluster: FakeCluster, node: str, argv: list[str]) -> ExecResult:
    ip = NODES[node][0]
    cmd = " ".join(argv)
    if cmd == "ip -o -4 addr show":
        return ExecResult(0, f"1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n"
                             f"2: eth0    inet {ip}/24 brd 172.30.0.255 scope global eth0\\       valid_lft forever\n"
                             f"3: knet0    inet 10.244.1.1/24 brd 10.244.1.255 scope global knet0\n")
    if cmd == "ip route show default":
        return ExecResult(0, "default via 172.30.0.1 dev eth0 \n")
    if cmd == "ss -lntp":
        return ExecResult(0, "State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
                             'LISTEN 0 4096 127.0.0.1:10259 0.0.0.0:* users:(("kube-scheduler",pid=90,fd=7))\n'
                             'LISTEN 0 4096 172.30.0.2:6443 0.0.0.0:* users:(("kube-apiserver",pid=80,fd=7))\n'
                             'LISTEN 0 4096 *:10250 *:* users:(("kubelet",pid=70,fd=9))\n')
    if cmd == "ps -eo args":
        return ExecResult(0, "ARGS\n/sbin/init\n/usr/bin/kubelet --kubeconfig=/etc/kubernetes/kubelet.conf "
                             "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock\n")
    if cmd == "ls /etc/cni/net.d":
        return ExecResult(0, "10-knet.conflist\n")
    if cmd == "cat /etc/cni/net.d/10-knet.conflist":
        return ExecResult(0, json.dumps(CONFLIST))
    if argv[:2] == ["test", "-x"]:
        return ExecResult(0 if argv[2] in ("/opt/cni/bin/bridge", "/usr/lib/cni/bridge") else 1, "")
    return ExecResult(127, "", f"{argv[0]}: not found")


# ------------------------------------------------------------- what a probe from a pod sees

_ips = itertools.count(10)


def _kube_proxy_daemonset(cluster: FakeCluster) -> None:
    """One kube-proxy pod per node; a pod reads the ConfigMap's mode when it starts and crashes
    (CrashLoopBackOff, not Ready) on a mode it does not know, as knet's and upstream's do."""
    ds = cluster.objects.get(("daemonsets", "kube-system", "kube-proxy"))
    if ds is None:
        return
    ds["status"] = {"desiredNumberScheduled": len(NODES)}
    conf = cluster.objects[("configmaps", "kube-system", "kube-proxy")]["data"]["config.conf"]
    mode = re.search(r"^mode:\s*(.*)$", conf, re.M).group(1).strip().strip('"')
    have = {p["spec"]["nodeName"] for (k, ns, _), p in cluster.objects.items()
            if k == "pods" and ns == "kube-system" and _labels(p).get("k8s-app") == "kube-proxy"}
    for node in NODES:
        if node not in have:
            ok = mode in ("", "iptables", "nftables")
            pod = _pod(f"kube-proxy-{node}-{next(_ips)}", "kube-system", {"k8s-app": "kube-proxy"},
                       owner="DaemonSet/kube-proxy", node=node)
            pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": str(ok)}]}
            if not ok:
                pod["status"]["containerStatuses"] = [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
            cluster.objects[("pods", "kube-system", pod["metadata"]["name"])] = pod


def _proxies_up(cluster: FakeCluster) -> bool:
    return all(p["status"]["conditions"][0]["status"] == "True" for p in cluster.list("pods", "kube-system", "k8s-app=kube-proxy"))


def controllers(cluster: FakeCluster) -> None:
    """What the controllers do after a write: a lab Deployment runs one pod of its current
    template (a changed template is a new pod: the rollout), pods and Services get addresses."""
    for (kind, ns, name), obj in list(cluster.objects.items()):
        if kind != "deployments" or ns == "kube-system":
            continue
        template = obj["spec"]["template"]
        digest = str(abs(hash(json.dumps(template, sort_keys=True))) % 10**6)
        mine = [k for k in cluster.objects if k[0] == "pods" and k[1] == ns and k[2].startswith(f"{name}-")]
        if (("pods", ns, f"{name}-{digest}") not in mine) or len(mine) > 1:
            for k in mine:
                del cluster.objects[k]
            if obj["spec"].get("replicas", 1) > 0:
                pod = {"kind": "Pod", "metadata": {"name": f"{name}-{digest}", "namespace": ns,
                                                   "labels": dict(template["metadata"]["labels"])},
                       "spec": json.loads(json.dumps(template["spec"])),
                       "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
                cluster.objects[("pods", ns, pod["metadata"]["name"])] = pod
    _kube_proxy_daemonset(cluster)
    for (kind, _ns, _name), obj in cluster.objects.items():
        if kind == "pods" and not (obj.get("status") or {}).get("podIP"):
            obj.setdefault("status", {})["podIP"] = f"10.244.1.{next(_ips)}"
        if kind == "services" and not obj["spec"].get("clusterIP"):
            obj["spec"]["clusterIP"] = f"10.96.0.{next(_ips)}"
    # The EndpointSlice controller: one slice per Service, the selected pods' addresses.
    for key in [k for k in cluster.objects if k[0] == "endpointslices"]:
        del cluster.objects[key]
    for (kind, ns, name), svc in list(cluster.objects.items()):
        if kind == "services" and svc["spec"].get("selector"):
            pods = [p for (k, pns, _), p in cluster.objects.items()
                    if k == "pods" and pns == ns and selector_matches(svc["spec"]["selector"], _labels(p))]
            cluster.objects[("endpointslices", ns, f"{name}-x")] = {
                "kind": "EndpointSlice",
                "metadata": {"name": f"{name}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
                "endpoints": [{"addresses": [p["status"]["podIP"]], "conditions": {"ready": True}} for p in pods]}


def _labels(obj):
    return obj["metadata"].get("labels") or {}


def _peer_matches(cluster, peer: dict, pod: dict, policy_ns: str) -> bool:
    if "ipBlock" in peer:
        return ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(peer["ipBlock"]["cidr"])
    ns_sel = peer.get("namespaceSelector")
    pod_ns = pod["metadata"]["namespace"]
    if ns_sel is None:
        if pod_ns != policy_ns:
            return False
    else:
        ns_labels = {"kubernetes.io/metadata.name": pod_ns, **_labels(cluster.get("namespaces", pod_ns) or {"metadata": {}})}
        if not all(ns_labels.get(k) == v for k, v in (ns_sel.get("matchLabels") or {}).items()):
            return False
    pod_sel = peer.get("podSelector") or {}
    return all(_labels(pod).get(k) == v for k, v in (pod_sel.get("matchLabels") or {}).items())


def _ports_match(rule: dict, port: int, proto: str) -> bool:
    ports = rule.get("ports")
    return not ports or any((p.get("protocol") or "TCP") == proto and p.get("port") in (None, port) for p in ports)


def _allowed(cluster, src: dict, dst: dict, port: int, proto: str) -> bool:
    """NetworkPolicy semantics: a direction is isolated for a pod once a policy of that type
    selects it, and then allowed only by a rule of one of them."""
    for direction, subject, peer, key in (("Egress", src, dst, "to"), ("Ingress", dst, src, "from")):
        ns = subject["metadata"]["namespace"]
        selecting = [p for p in cluster.list("networkpolicies", ns)
                     if direction in (p["spec"].get("policyTypes") or ["Ingress"])
                     and all(_labels(subject).get(k) == v
                             for k, v in ((p["spec"].get("podSelector") or {}).get("matchLabels") or {}).items())]
        if not selecting:
            continue
        rules = [r for p in selecting for r in p["spec"].get(direction.lower()) or []]
        if not any(_ports_match(r, port, proto) and (not r.get(key) or any(_peer_matches(cluster, x, peer, ns)
                                                                              for x in r[key])) for r in rules):
            return False
    return True


def _service_backends(cluster, svc: dict) -> list[tuple[dict, int]]:
    port = svc["spec"]["ports"][0]
    target = port.get("targetPort", port["port"])
    out = []
    for pod in cluster.list("pods", svc["metadata"]["namespace"]):
        if selector_matches(svc["spec"].get("selector"), _labels(pod)):
            declared = {p for _n, p, _proto in container_ports(pod)} | {n for n, _p, _ in container_ports(pod) if n}
            out.append((pod, target if target in declared else -1))
    return out


def _resolve(cluster, src: dict, name: str) -> str | None:
    """The ClusterIP NAME resolves to from SRC, or None (NXDOMAIN or no DNS)."""
    dns = cluster.get("services", "kube-dns", "kube-system")
    backends = [p for p, _port in _service_backends(cluster, dns)] if dns else []
    deploy = cluster.get("deployments", "coredns", "kube-system")
    if not deploy or deploy["spec"].get("replicas", 1) == 0:
        backends = []
    if not any(_allowed(cluster, src, b, 53, "UDP") for b in backends):
        return "timeout"
    parts = name.rstrip(".").removesuffix(f".svc.{ZONE}").removesuffix(".svc").split(".")
    ns = parts[1] if len(parts) > 1 else src["metadata"]["namespace"]
    svc = cluster.get("services", parts[0], ns) if len(parts) <= 2 else None
    return svc["spec"]["clusterIP"] if svc else None


def exec_fn(cluster: FakeCluster, ns: str, pod_name: str, argv: list[str]) -> ExecResult:
    src = cluster.get("pods", pod_name, ns)
    env = {e["name"]: e["value"] for c in src["spec"]["containers"] for e in c.get("env") or []}
    if argv[:2] == ["sh", "-c"]:
        argv = [w.strip('"') for w in re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), ""), argv[2]).split()]
    if argv == ["cat", "/etc/resolv.conf"]:
        return ExecResult(0, f"search {ns}.svc.{ZONE} svc.{ZONE} {ZONE}\nnameserver {DNS_IP}\noptions ndots:5\n")
    if argv[0] == "nslookup":
        ip = _resolve(cluster, src, argv[-1])
        if ip == "timeout":
            return ExecResult(1, ";; connection timed out; no servers could be reached\n")
        if ip is None:
            return ExecResult(1, f"Server:\t\t{DNS_IP}\nAddress:\t{DNS_IP}#53\n\n** server can't find {argv[-1]}: NXDOMAIN\n")
        return ExecResult(0, f"Server:\t\t{DNS_IP}\nAddress:\t{DNS_IP}#53\n\nName:\t{argv[-1]}\nAddress: {ip}\n")
    if argv[0] == "wget":
        m = re.match(r"http://([^/:]+)(?::(\d+))?", argv[-1])
        host, port = m.group(1), int(m.group(2) or 80)
        try:
            ipaddress.ip_address(host)
            ip = host
        except ValueError:
            ip = _resolve(cluster, src, host)
            if ip in (None, "timeout"):
                return ExecResult(4, "", f"wget: unable to resolve host address '{host}'")
        targets = []
        for svc in cluster.list("services"):
            if svc["spec"].get("clusterIP") == ip and svc["spec"]["ports"][0]["port"] == port:
                if not _proxies_up(cluster):  # a Service made while kube-proxy is down has no rules
                    return ExecResult(4, "", f"wget: can't connect to remote host ({ip}): No route to host")
                targets = _service_backends(cluster, svc)
        for pod in cluster.list("pods"):
            if pod["status"].get("podIP") == ip:
                targets = [(pod, port if port in {p for _n, p, _ in container_ports(pod)} else -1)]
        if not targets:
            return ExecResult(4, "", f"wget: can't connect to remote host ({ip}): Connection refused")
        dst, dport = targets[0]
        if not _allowed(cluster, src, dst, dport if dport > 0 else port, "TCP"):
            return ExecResult(4, "", "wget: download timed out")
        if dport < 0:
            return ExecResult(4, "", f"wget: can't connect to remote host ({ip}): Connection refused")
        return ExecResult(0, dst["metadata"]["name"])
    return ExecResult(127, "", f"{argv[0]}: not found")


def probe_fn(cluster: FakeCluster, source: str, destination: str, port: int, protocol: str) -> dict:
    """`knet trace ns/pod ns/pod --probe` between two pods: NetworkPolicy semantics decide, and the
    walk's words say why (the allowing rule of the first selecting policy that has one)."""
    src, dst = (cluster.get("pods", ref.split("/")[1], ref.split("/")[0]) for ref in (source, destination))
    if port not in {p for _n, p, _ in container_ports(dst)}:
        return {"outcome": "refused", "agrees": True, "policy": [], "message": "refused",
                "reason": f"delivered to pod {destination}, where nothing listens on {port}"}
    if not _allowed(cluster, src, dst, port, protocol.upper()):
        return {"outcome": "timeout", "agrees": True, "policy": [], "message": "timeout",
                "reason": f"dropped by NetworkPolicy: pod {destination} is selected by policies for ingress "
                          "and none of their rules allows this connection"}
    ns = dst["metadata"]["namespace"]
    selecting = [p["metadata"]["name"] for p in cluster.list("networkpolicies", ns)
                 if all(_labels(dst).get(k) == v
                        for k, v in ((p["spec"].get("podSelector") or {}).get("matchLabels") or {}).items())]
    return {"outcome": "connected", "agrees": True, "message": "connected",
            "policy": [f"allowed by NetworkPolicy {ns}/{selecting[0]} ingress rule 1"] if selecting else [],
            "reason": f"delivered to pod {destination}"}


def kubeadm_cluster(proxy_mode: str = "") -> FakeCluster:
    return FakeCluster(kubeadm_objects(proxy_mode), exec_fn=exec_fn, node_fn=node_fn, after_write=controllers,
                       probe_fn=probe_fn)
