"""Troubleshooting: a default-deny egress NetworkPolicy (with an egress rule for the app's own
traffic) also blocks DNS, so clients cannot resolve the Service's name although the app is
reachable by address. Passes when the client reaches the Service by name again while
default-deny-egress is still in place (allow DNS, do not open everything)."""

from __future__ import annotations

from knet.labs import kit
from knet.labs.access import ClusterAccess, LabClusterError, Setup
from knet.labs.model import Facts, Lab, Question, Verdict, right, wrong

NS = "lab-dns-policy"


def _policy(name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


DEFAULT_DENY = {"podSelector": {}, "policyTypes": ["Egress"]}


def setup(s: Setup) -> None:
    s.namespace(NS)
    s.create("deployments", kit.deployment("web", NS, kit.web_pod_template({"app": "web"})))
    s.create("services", kit.service("web", NS, {"app": "web"}, 80, 80))
    s.create("pods", kit.client_pod("client", NS))
    s.wait_ready(NS)
    s.create("networkpolicies", _policy("default-deny-egress", DEFAULT_DENY))
    s.create("networkpolicies", _policy("client-to-web", {
        "podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                    "ports": [{"protocol": "TCP", "port": 80}]}]}))


def observe(cluster: ClusterAccess, answer: str | None) -> Facts:
    svc = cluster.get("services", "web", NS)
    if svc is None:
        raise LabClusterError(f"Service {NS}/web is gone: knet lab reset starts over")
    deny = cluster.get("networkpolicies", "default-deny-egress", NS)
    by_ip = kit.http_get(cluster, NS, "client", f"http://{svc['spec']['clusterIP']}/hostname")
    addrs, dns_output = kit.resolve(cluster, NS, "client", "web")
    by_name = kit.http_get(cluster, NS, "client", "http://web/hostname") if addrs else None
    return {"deny_spec": (deny or {}).get("spec"), "cluster_ip": svc["spec"]["clusterIP"],
            "by_ip": by_ip.rc == 0, "resolved": addrs, "dns_output": dns_output,
            "by_name": bool(by_name and by_name.rc == 0), "name_output": by_name.output if by_name else "",
            "policies": sorted(p["metadata"]["name"] for p in cluster.list("networkpolicies", NS))}


def _deny_intact(spec: dict | None) -> bool:
    return bool(spec) and spec.get("podSelector") in ({}, {"matchLabels": {}}) \
        and "Egress" in (spec.get("policyTypes") or []) and not spec.get("egress")


def judge(facts: Facts, answer: str | None) -> Verdict:
    if not _deny_intact(facts["deny_spec"]):
        return wrong("default-deny-egress is gone or changed: the team wants egress denied by default; "
                     "put it back and allow only what the client needs (DNS) in another policy")
    if not facts["resolved"]:
        last = facts["dns_output"].splitlines()[-1] if facts["dns_output"] else "no answer"
        reach = "reaches" if facts["by_ip"] else "does not even reach"
        return wrong(f"client cannot resolve web ({last}); it {reach} the Service by its ClusterIP "
                     f"{facts['cluster_ip']}: its egress is only what policies {', '.join(facts['policies'])} "
                     "allow, and none allows DNS (UDP and TCP 53 to the kube-dns pods in kube-system)")
    if not facts["by_name"]:
        return wrong(f"web resolves, but client cannot connect to http://web ({facts['name_output'] or 'no answer'})")
    return right("client resolves web and reaches it; default-deny-egress is still in place")


LAB = Lab(
    name="troubleshoot-dns-policy",
    title="Troubleshooting: a default-deny policy that also blocks DNS",
    summary=f"""
The team of namespace {NS} denied all egress by default (NetworkPolicy default-deny-egress) and
allowed client to reach web (client-to-web). Since then
  kubectl -n {NS} exec client -- wget -qO- -T 3 http://web
fails. Fix it with kubectl, keeping default-deny-egress.""",
    setup=setup,
    questions=(
        Question("fix", "Make client reach http://web by name again, without removing default-deny-egress.",
                 observe, judge, typed=False,
                 hints=(f"kubectl -n {NS} exec client -- nslookup web: does the name resolve?",
                        "A pod's DNS queries go to the kube-dns pods in kube-system on UDP (and TCP) port 53: "
                        "egress the policies must allow.",
                        "Add a policy selecting all pods (podSelector: {}) with egress to namespaceSelector "
                        "kubernetes.io/metadata.name: kube-system, ports UDP 53 and TCP 53.")),
    ),
)
