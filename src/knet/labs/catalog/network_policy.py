"""Network policies: write the NetworkPolicy that lets only one pod in. The first question is
answered (yes/no) and checked with a wget; the second is observed: the check runs `knet trace
--probe` from each client (a real connection, the kernel's own trace of it, and the walk that says
which policy rule allowed or dropped it): pod internal must reach payroll on its port, pod
external must not."""

from __future__ import annotations

from knet.labs import kit
from knet.labs.access import ClusterAccess, LabClusterError, Setup
from knet.labs.facts import pod_ip
from knet.labs.model import Facts, Lab, Question, Verdict, normalise_word, right, wrong

NS = "lab-network-policy"
PORT = 8080


def setup(s: Setup) -> None:
    s.namespace(NS)
    s.create("pods", kit.web_pod("payroll", NS, {"name": "payroll"}, port=PORT))
    s.create("services", kit.service("payroll-service", NS, {"name": "payroll"}, PORT, PORT))
    s.create("pods", kit.client_pod("internal", NS, {"name": "internal"}))
    s.create("pods", kit.client_pod("external", NS, {"name": "external"}))
    s.wait_ready(NS)


def observe_external(cluster: ClusterAccess, answer: str | None) -> Facts:
    payroll = cluster.get("pods", "payroll", NS)
    if payroll is None or not pod_ip(payroll):
        raise LabClusterError(f"pod {NS}/payroll is gone or has no IP: knet lab reset, then start the lab again")
    probe = kit.http_get(cluster, NS, "external", f"http://{pod_ip(payroll)}:{PORT}/hostname")
    return {"reached": probe.rc == 0, "policies": len(cluster.list("networkpolicies", NS))}


def judge_external(facts: Facts, answer: str | None) -> Verdict:
    said = normalise_word(answer)
    if said not in ("yes", "no"):
        return wrong('answer yes or no')
    if (said == "yes") == facts["reached"]:
        why = ("with no NetworkPolicy selecting a pod, all traffic to it is allowed" if facts["reached"]
               else "a NetworkPolicy already isolates payroll")
        return right(f"{'yes' if facts['reached'] else 'no'}: {why}")
    return wrong(f"try it: kubectl -n {NS} exec external -- wget -qO- -T 3 payroll-service:{PORT}/hostname")


def _selects(policy: dict, labels: dict[str, str]) -> bool:
    sel = (policy.get("spec") or {}).get("podSelector") or {}
    match = sel.get("matchLabels") or {}
    if sel.get("matchExpressions"):
        return True  # not judged here: the probes say what the policy does
    return all(labels.get(k) == v for k, v in match.items())


def observe_access(cluster: ClusterAccess, answer: str | None) -> Facts:
    """Observed, not typed: `knet trace --probe` from each client sends a real connection to payroll,
    and says why it went where it went (the policy rule that allowed it, or the isolation that
    dropped it) and whether the kernel agrees."""
    payroll = cluster.get("pods", "payroll", NS)
    if payroll is None or not pod_ip(payroll):
        raise LabClusterError(f"pod {NS}/payroll is gone or has no IP: knet lab reset, then start the lab again")
    facts: Facts = {"selecting": sorted(p["metadata"]["name"] for p in cluster.list("networkpolicies", NS)
                                        if _selects(p, payroll["metadata"].get("labels") or {}))}
    for client in ("internal", "external"):
        got = cluster.probe(f"{NS}/{client}", f"{NS}/payroll", PORT)
        facts[client] = got["outcome"] == "connected"
        facts[f"{client}_outcome"] = got["outcome"]
        facts[f"{client}_why"] = "; ".join(got.get("policy") or []) if facts[client] and got.get("policy") \
            else got.get("reason", "")
        if not got.get("agrees", True):
            facts.setdefault("disagreements", []).append(f"{client}: {got.get('message', '')}")
    return facts


def judge_access(facts: Facts, answer: str | None) -> Verdict:
    selecting = ", ".join(facts["selecting"]) or "none"
    note = ("" if not facts.get("disagreements") else
            " (knet trace and the kernel disagree, please report it: " + "; ".join(facts["disagreements"]) + ")")
    if not facts["selecting"] and facts["external"]:
        return wrong(f"no NetworkPolicy in {NS} selects pod payroll, so every pod may reach it "
                     "(external did): write one that selects payroll (podSelector) with an ingress rule" + note)
    if not facts["internal"]:
        return wrong(f"internal cannot reach payroll on port {PORT} (the probe: {facts['internal_outcome']}; "
                     f"{facts['internal_why']}): the policy must allow ingress from pods labelled name=internal "
                     f"on TCP {PORT} (policies selecting payroll: {selecting})" + note)
    if facts["external"]:
        return wrong(f"external still reaches payroll on port {PORT} ({facts['external_why'] or 'allowed'}): "
                     f"allow only pods labelled name=internal (policies selecting payroll: {selecting})" + note)
    return right(f"only internal reaches payroll:{PORT} (policies: {selecting}); internal: {facts['internal_why']}; "
                 f"external: {facts['external_outcome']}, {facts['external_why']}" + note)


LAB = Lab(
    name="network-policy",
    title="NetworkPolicy: let only one pod in",
    summary=f"""
Namespace {NS} runs pod payroll (label name=payroll, TCP {PORT}, Service payroll-service) and two
clients, pods internal (name=internal) and external (name=external). Try:
  kubectl -n {NS} exec external -- wget -qO- -T 3 payroll-service:{PORT}/hostname""",
    setup=setup,
    questions=(
        Question("default-allow", f"Before you write any policy: can pod external reach payroll on port {PORT}? "
                 "(yes/no)", observe_external, judge_external,
                 hints=(f"kubectl -n {NS} get networkpolicy; kubectl -n {NS} exec external -- "
                        f"wget -qO- -T 3 payroll-service:{PORT}/hostname",)),
        Question("only-internal", f"Create a NetworkPolicy so that only pod internal can reach pod payroll "
                 f"(TCP {PORT}); external must be refused.", observe_access, judge_access, typed=False,
                 hints=("podSelector picks the pods the policy protects (payroll); policyTypes: [Ingress].",
                        "ingress: - from: - podSelector: {matchLabels: {name: internal}}  ports: - protocol: TCP, "
                        f"port: {PORT}",
                        f"kubectl -n {NS} exec internal -- wget -qO- -T 3 payroll-service:{PORT}/hostname should work, "
                        "the same from external should time out",
                        f"the check runs knet trace {NS}/external {NS}/payroll --port {PORT} --probe (and the same "
                        "from internal): run it to see which policy rule lets a connection in or drops it")),
    ),
)
