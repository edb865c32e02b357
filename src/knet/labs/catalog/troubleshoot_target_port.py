"""Troubleshooting: a Service that sends its port to a targetPort nothing listens on. The
Service has endpoints (its selector is right) but connections are refused. Passes when a client
reaches the app through the Service."""

from __future__ import annotations

from knet.labs import kit
from knet.labs.access import ClusterAccess, LabClusterError, Setup
from knet.labs.facts import container_ports, selector_matches
from knet.labs.model import Facts, Lab, Question, Verdict, right, wrong

NS = "lab-svc-targetport"
APP_PORT = 80
WRONG_PORT = 8080


def setup(s: Setup) -> None:
    s.namespace(NS)
    s.create("deployments", kit.deployment("web", NS, kit.web_pod_template({"app": "web"}, APP_PORT)))
    s.create("services", kit.service("web", NS, {"app": "web"}, 80, WRONG_PORT))
    s.create("pods", kit.client_pod("client", NS))
    s.wait_ready(NS)


def observe_target(cluster: ClusterAccess, answer: str | None) -> Facts:
    svc = cluster.get("services", "web", NS)
    if svc is None:
        raise LabClusterError(f"Service {NS}/web is gone: fix it rather than delete it (knet lab reset starts over)")
    return {"ports": [{"port": p.get("port"), "targetPort": p.get("targetPort", p.get("port"))}
                      for p in (svc.get("spec") or {}).get("ports") or []]}


def judge_target(facts: Facts, answer: str | None) -> Verdict:
    got = (answer or "").strip()
    targets = [str(p["targetPort"]) for p in facts["ports"]]
    if got in targets:
        return right(f"Service web sends its traffic to port {got} of its pods")
    return wrong(f'"{got}" is not the targetPort of Service web (kubectl -n {NS} get svc web -o yaml)')


def observe_service(cluster: ClusterAccess, answer: str | None) -> Facts:
    facts = observe_target(cluster, answer)
    svc = cluster.get("services", "web", NS) or {}
    selector = (svc.get("spec") or {}).get("selector") or {}
    pods = [p for p in cluster.list("pods", NS) if selector_matches(selector, p["metadata"].get("labels"))]
    probe = kit.http_get(cluster, NS, "client", "http://web/hostname")
    return {**facts, "pod_ports": sorted({(name, port) for p in pods for name, port, proto in container_ports(p)
                                          if proto == "TCP"}, key=str),
            "pods": len(pods), "reached": probe.rc == 0, "probe": probe.output}


def judge_service(facts: Facts, answer: str | None) -> Verdict:
    if not facts["pods"]:
        return wrong("Service web selects no pod any more: put its selector back (app=web) and fix its targetPort")
    declared = {str(port) for _n, port in facts["pod_ports"]} | {n for n, _p in facts["pod_ports"] if n}
    listen = ", ".join(f"{port}/TCP" + (f" ({n})" if n else "") for n, port in facts["pod_ports"]) or "none declared"
    bad = [p for p in facts["ports"] if str(p["targetPort"]) not in declared]
    if bad:
        p = bad[0]
        return wrong(f"Service web sends port {p['port']} to targetPort {p['targetPort']}, but its pods listen on "
                     f"{listen}: connections to targetPort {p['targetPort']} are refused")
    if not facts["reached"]:
        return wrong(f"client still cannot reach http://web ({facts['probe'] or 'no answer'})")
    return right("client reaches web through the Service")


LAB = Lab(
    name="troubleshoot-target-port",
    title="Troubleshooting: a Service with endpoints that refuses connections",
    summary=f"""
In namespace {NS}, Deployment web serves HTTP behind Service web (port 80). The Service has
endpoints, yet
  kubectl -n {NS} exec client -- wget -qO- -T 3 http://web
is refused. Find out why and fix the Service with kubectl.""",
    setup=setup,
    questions=(
        Question("target-port", "To which port of its pods does Service web send traffic (its targetPort)?",
                 observe_target, judge_target,
                 hints=(f"kubectl -n {NS} describe svc web: TargetPort.",)),
        Question("fix", "Fix Service web so that client reaches the web pods through it.",
                 observe_service, judge_service, typed=False,
                 hints=(f"kubectl -n {NS} get pods -o yaml | grep containerPort: what do the pods listen on?",
                        f"kubectl -n {NS} edit svc web: set targetPort to the containerPort")),
    ),
)
