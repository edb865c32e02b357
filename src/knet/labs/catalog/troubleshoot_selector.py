"""Troubleshooting: a Service whose selector matches no pod (a typo), so it has no endpoints and
connections to it are refused. Passes when a client reaches the app through the Service again."""

from __future__ import annotations

from knet.labs import kit
from knet.labs.access import ClusterAccess, LabClusterError, Setup
from knet.labs.facts import selector_matches
from knet.labs.model import Facts, Lab, Question, Verdict, judge_count, right, wrong

NS = "lab-svc-selector"


def setup(s: Setup) -> None:
    s.namespace(NS)
    s.create("deployments", kit.deployment("web", NS, kit.web_pod_template({"app": "web", "tier": "frontend"})))
    s.create("services", kit.service("web", NS, {"app": "webapp", "tier": "frontend"}, 80, 80))  # the typo
    s.create("pods", kit.client_pod("client", NS))
    s.wait_ready(NS)


def observe_endpoints(cluster: ClusterAccess, answer: str | None) -> Facts:
    return {"endpoints": kit.ready_endpoints(cluster, NS, "web")}


def judge_endpoints(facts: Facts, answer: str | None) -> Verdict:
    return judge_count(len(facts["endpoints"]), answer, "ready endpoints of Service web",
                       f"kubectl -n {NS} get endpointslices -l kubernetes.io/service-name=web")


def observe_service(cluster: ClusterAccess, answer: str | None) -> Facts:
    svc = cluster.get("services", "web", NS)
    if svc is None:
        raise LabClusterError(f"Service {NS}/web is gone: fix it rather than delete it (knet lab reset starts over)")
    pods = [p for p in cluster.list("pods", NS) if p["metadata"]["name"] != "client"]
    probe = kit.http_get(cluster, NS, "client", "http://web/hostname")
    return {"selector": (svc.get("spec") or {}).get("selector") or {},
            "pods": {p["metadata"]["name"]: p["metadata"].get("labels") or {} for p in pods},
            "endpoints": kit.ready_endpoints(cluster, NS, "web"),
            "reached": probe.rc == 0, "probe": probe.output}


def judge_service(facts: Facts, answer: str | None) -> Verdict:
    selector = ", ".join(f"{k}={v}" for k, v in facts["selector"].items()) or "nothing"
    matched = [n for n, labels in facts["pods"].items() if selector_matches(facts["selector"], labels)]
    if not matched:
        shown = "; ".join(f"{n}: {', '.join(f'{k}={v}' for k, v in sorted(labels.items()) if k != 'pod-template-hash')}"
                          for n, labels in sorted(facts["pods"].items()))
        return wrong(f"Service web selects {selector}, which matches no pod (the app's pods have {shown}): "
                     "it has no endpoints")
    if not facts["endpoints"]:
        return wrong(f"Service web selects {', '.join(matched)} but has no ready endpoint yet (try again in a moment)")
    if not facts["reached"]:
        return wrong(f"client still cannot reach http://web ({facts['probe'] or 'no answer'})")
    return right(f"Service web selects {', '.join(matched)} and client reaches it")


LAB = Lab(
    name="troubleshoot-service-selector",
    title="Troubleshooting: a Service that reaches nothing",
    summary=f"""
In namespace {NS}, Deployment web serves HTTP on port 80 behind Service web, but
  kubectl -n {NS} exec client -- wget -qO- -T 3 http://web
fails. Find out why and fix it with kubectl (keep the Deployment as it is).""",
    setup=setup,
    questions=(
        Question("endpoints", "How many ready endpoints does Service web have?", observe_endpoints, judge_endpoints,
                 hints=(f"kubectl -n {NS} describe svc web: the Endpoints line.",)),
        Question("fix", "Fix Service web so that client reaches the web pods through it.",
                 observe_service, judge_service, typed=False,
                 hints=(f"Compare kubectl -n {NS} get svc web -o wide (SELECTOR) with kubectl -n {NS} get pods --show-labels.",
                        f"kubectl -n {NS} edit svc web, or kubectl -n {NS} patch svc web -p "
                        "'{\"spec\":{\"selector\":{\"app\":\"web\",\"tier\":\"frontend\"}}}'")),
    ),
)
