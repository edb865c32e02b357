"""Troubleshooting: cluster DNS is down because the CoreDNS Deployment was scaled to 0 (the DNS
Service has no endpoints, every lookup times out). Passes when a pod resolves names again and
CoreDNS runs. `reset` restores the replicas CoreDNS had and waits until they are ready."""

from __future__ import annotations

from knet.labs import kit
from knet.labs.access import ClusterAccess, LabClusterError, Setup
from knet.labs.model import Facts, Lab, Question, Verdict, judge_choice, right, wrong

NS = "lab-dns-down"
NAME = "kubernetes.default"


def setup(s: Setup) -> None:
    s.namespace(NS)
    s.create("pods", kit.client_pod("client", NS))
    s.wait_ready(NS)
    dns = kit.dns_deployment(s.cluster)
    s.patch("deployments", dns["metadata"]["name"], kit.KUBE_SYSTEM, {"spec": {"replicas": 0}},
            wait_ready_on_undo=True)


def observe_dns(cluster: ClusterAccess, answer: str | None) -> Facts:
    svc = kit.dns_service(cluster)
    deploy = kit.dns_deployment(cluster)
    addrs, output = kit.resolve(cluster, NS, "client", NAME)
    return {"service": svc["metadata"]["name"], "deployment": deploy["metadata"]["name"],
            "replicas": (deploy.get("spec") or {}).get("replicas", 1),
            "ready": (deploy.get("status") or {}).get("readyReplicas") or 0,
            "endpoints": kit.ready_endpoints(cluster, kit.KUBE_SYSTEM, svc["metadata"]["name"]),
            "resolved": addrs, "output": output}


def judge_cause(facts: Facts, answer: str | None) -> Verdict:
    return judge_choice(facts["deployment"], answer, "the workload that should answer DNS queries",
                        accepted=(f"deployment/{facts['deployment']}", f"kube-system/{facts['deployment']}"),
                        near_misses={facts["service"]: f"Service {facts['service']} is only the address; "
                                     "which Deployment's pods should be behind it?"})


def judge_fixed(facts: Facts, answer: str | None) -> Verdict:
    name = f"kube-system/{facts['deployment']}"
    if facts["replicas"] == 0:
        return wrong(f"Deployment {name} is scaled to 0: Service {facts['service']} has no endpoints, "
                     "so every DNS query times out")
    if not facts["endpoints"]:
        return wrong(f"Deployment {name} wants {facts['replicas']} replicas, {facts['ready']} ready: "
                     f"Service {facts['service']} has no ready endpoint yet (try again in a moment)")
    if not facts["resolved"]:
        last = facts["output"].splitlines()[-1] if facts["output"] else "no answer"
        return wrong(f"client still cannot resolve {NAME} ({last})")
    return right(f"client resolves {NAME} to {', '.join(facts['resolved'])}; {name} has "
                 f"{facts['ready']}/{facts['replicas']} ready")


def observe_deployment(cluster: ClusterAccess, answer: str | None) -> Facts:
    svc = kit.dns_service(cluster)
    try:
        deploy = kit.dns_deployment(cluster)
    except LabClusterError:
        deploy = {"metadata": {"name": "coredns"}}
    return {"service": svc["metadata"]["name"], "deployment": deploy["metadata"]["name"]}


LAB = Lab(
    name="troubleshoot-coredns",
    title="Troubleshooting: names do not resolve",
    summary=f"""
Pods cannot resolve any name:
  kubectl -n {NS} exec client -- nslookup {NAME}
times out. Find out why and fix it with kubectl.""",
    setup=setup,
    questions=(
        Question("cause", "Which Deployment in kube-system should be answering the pods' DNS queries?",
                 observe_deployment, judge_cause,
                 hints=("kubectl -n kube-system get svc,deploy: which Deployment's pods should be behind kube-dns?",)),
        Question("fix", "Make DNS work again for the pods.", observe_dns, judge_fixed, typed=False,
                 hints=("kubectl -n kube-system get deploy: look at READY.",
                        "kubectl -n kube-system describe svc kube-dns: Endpoints.",
                        "kubectl -n kube-system scale deployment coredns --replicas=2")),
    ),
)
