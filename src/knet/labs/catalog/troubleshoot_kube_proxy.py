"""Troubleshooting: kube-proxy's ConfigMap names a mode that does not exist (`iptable`, a typo),
and its pods, restarted, crash on it: Services made since are programmed on no node, so a new
Service does not answer. Passes when the ConfigMap is fixed, kube-proxy runs again on every
node and the client reaches the new Service. `reset` puts the ConfigMap back and restarts
kube-proxy's pods, waiting until they are ready on every node."""

from __future__ import annotations

from datetime import UTC, datetime

from knet.labs import kit
from knet.labs.access import ClusterAccess, LabClusterError, Setup
from knet.labs.facts import (
    KUBE_PROXY_MODES,
    controller_kind,
    kube_proxy_configured_mode,
    pod_ready,
    waiting_reason,
    with_kube_proxy_mode,
)
from knet.labs.model import Facts, Lab, Question, Verdict, judge_choice, right, wrong

NS = "lab-kube-proxy"
BAD_MODE = "iptable"


def _daemonset_selector(cluster: ClusterAccess) -> str:
    ds = cluster.get("daemonsets", "kube-proxy", kit.KUBE_SYSTEM)
    if ds is None:
        raise LabClusterError("no DaemonSet kube-system/kube-proxy")
    labels = ((ds.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def setup(s: Setup) -> None:
    s.namespace(NS)
    s.create("pods", kit.client_pod("client", NS))
    s.wait_ready(NS)
    cm = s.cluster.get("configmaps", "kube-proxy", kit.KUBE_SYSTEM)
    if cm is None:
        raise LabClusterError("no ConfigMap kube-system/kube-proxy")
    selector = _daemonset_selector(s.cluster)
    s.restart_on_undo(kit.KUBE_SYSTEM, selector, "kube-proxy")  # undone last: after the ConfigMap is back
    s.patch("configmaps", "kube-proxy", kit.KUBE_SYSTEM,
            {"data": {"config.conf": with_kube_proxy_mode(cm["data"]["config.conf"], BAD_MODE)}})
    s.restart_pods(kit.KUBE_SYSTEM, selector)
    # Made while no kube-proxy runs: no node has rules for it.
    s.create("deployments", kit.deployment("web", NS, kit.web_pod_template({"app": "web"})))
    s.create("services", kit.service("web", NS, {"app": "web"}, 80, 80))
    s.wait_ready(NS)


def crashed_lately(pod: dict, now: datetime, within: float = 60.0) -> bool:
    """A container that exited with an error in the last minute and was restarted: a crash-looping
    pod is Ready for the second after each restart (kubectl shows its RESTARTS climbing)."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        last = (cs.get("lastState") or {}).get("terminated") or {}
        if last.get("exitCode") and last.get("finishedAt"):
            finished = datetime.fromisoformat(str(last["finishedAt"]).replace("Z", "+00:00"))
            if (now - finished).total_seconds() < within:
                return True
    return False


def observe_failing(cluster: ClusterAccess, answer: str | None) -> Facts:
    failing = set()
    now = datetime.now(UTC)
    for pod in cluster.list("pods", kit.KUBE_SYSTEM):
        if not pod_ready(pod) or crashed_lately(pod, now):
            refs = pod["metadata"].get("ownerReferences") or []
            owner = next((r["name"] for r in refs if r.get("controller")), pod["metadata"]["name"])
            failing.add((controller_kind(pod) or "Pod", owner))
    for ds in cluster.list("daemonsets", kit.KUBE_SYSTEM):  # pods deleted and not made again yet
        status = ds.get("status") or {}
        if "numberReady" in status and status["numberReady"] < status.get("desiredNumberScheduled", 0):
            failing.add(("DaemonSet", ds["metadata"]["name"]))
    return {"failing": sorted(failing)}


def judge_failing(facts: Facts, answer: str | None) -> Verdict:
    if not facts["failing"]:
        return wrong("no kube-system pod is failing now (was it fixed already?)")
    for kind, name in facts["failing"]:
        verdict = judge_choice(name, answer, f"a {kind} whose pods fail", accepted=(f"{kind.lower()}/{name}",))
        if verdict.ok:
            return verdict
    return wrong(f'the pods of "{(answer or "").strip()}" are not the failing ones (kubectl -n kube-system get pods)')


def observe_proxy(cluster: ClusterAccess, answer: str | None) -> Facts:
    cm = cluster.get("configmaps", "kube-proxy", kit.KUBE_SYSTEM) or {}
    ds = cluster.get("daemonsets", "kube-proxy", kit.KUBE_SYSTEM) or {}
    pods = cluster.list("pods", kit.KUBE_SYSTEM, _daemonset_selector(cluster))
    probe = kit.http_get(cluster, NS, "client", "http://web/hostname")
    return {"mode": kube_proxy_configured_mode((cm.get("data") or {}).get("config.conf") or ""),
            "desired": (ds.get("status") or {}).get("desiredNumberScheduled") or 0,
            "pods": {p["metadata"]["name"]: (pod_ready(p), waiting_reason(p)) for p in pods},
            "reached": probe.rc == 0, "probe": probe.output}


def judge_proxy(facts: Facts, answer: str | None) -> Verdict:
    if facts["mode"] not in KUBE_PROXY_MODES:
        return wrong(f'kube-proxy\'s ConfigMap (config.conf) says mode: {facts["mode"]}, which kube-proxy refuses '
                     f'(its modes: {", ".join(m for m in KUBE_PROXY_MODES if m)}, or "" for the default)')
    ready = [n for n, (ok, _why) in facts["pods"].items() if ok]
    if len(ready) < facts["desired"]:
        failing = ", ".join(f"{n}: {why or 'not ready'}" for n, (ok, why) in sorted(facts["pods"].items()) if not ok)
        return wrong(f"the ConfigMap is fixed, but {len(ready)}/{facts['desired']} kube-proxy pods are ready "
                     f"({failing}): kube-proxy reads its configuration when it starts")
    if not facts["reached"]:
        return wrong(f"kube-proxy runs, but client still cannot reach http://web ({facts['probe'] or 'no answer'})")
    return right(f"kube-proxy runs on {len(ready)} nodes and client reaches Service web")


LAB = Lab(
    name="troubleshoot-kube-proxy",
    title="Troubleshooting: a new Service that does not answer",
    summary=f"""
Someone edited kube-proxy's configuration. Service web in namespace {NS}, made since, does not answer:
  kubectl -n {NS} exec client -- wget -qO- -T 3 http://web
Find out why and fix it with kubectl.""",
    setup=setup,
    questions=(
        Question("failing", "Which kube-system workload's pods are failing?", observe_failing, judge_failing,
                 hints=("kubectl -n kube-system get pods: look at STATUS.",)),
        Question("fix", "Make Service web answer again.", observe_proxy, judge_proxy, typed=False,
                 hints=("kubectl -n kube-system logs kube-proxy-… says why it stops.",
                        "kubectl -n kube-system edit configmap kube-proxy: fix mode in config.conf.",
                        "kube-proxy reads its configuration at start: "
                        "kubectl -n kube-system delete pod -l k8s-app=kube-proxy")),
    ),
)
