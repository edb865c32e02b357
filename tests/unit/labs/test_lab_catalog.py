"""Every lab of knet.labs.catalog played on the fake kubeadm-like cluster (kubeadm_fake): start,
wrong answers and unfixed states fail with a message saying what is wrong, the right answers and
the fixes (made as kubectl would, by patching the fake) pass, and reset leaves the cluster as
it was. The answers come from the fake's objects and node outputs, so a cluster with other
ranges gives other answers (test_answers_follow_the_cluster)."""

from __future__ import annotations

import copy

import pytest

from knet.labs.catalog import load_labs
from knet.labs.engine import Engine
from knet.labs.state import StateFile

from .kubeadm_fake import kubeadm_cluster

LABS = load_labs()


@pytest.fixture
def play(tmp_path):
    cluster = kubeadm_cluster()
    before = copy.deepcopy(cluster.objects)
    engine = Engine(cluster, StateFile(tmp_path / "state.json"), LABS)
    yield cluster, engine
    assert engine.reset().ok
    # reset put everything back (kube-proxy's pods restarted by a lab are new pods, all ready)
    assert without_proxy_pods(cluster.objects) == without_proxy_pods(before)
    proxies = cluster.list("pods", "kube-system", "k8s-app=kube-proxy")
    assert len(proxies) == 2 and all(p["status"]["conditions"][0]["status"] == "True" for p in proxies)


def without_proxy_pods(objects):
    return {k: v for k, v in objects.items() if not (k[0] == "pods" and k[2].startswith("kube-proxy-"))}


def answer(engine, value, ok, *says):
    out = engine.answer(value)
    text = "\n".join(out.lines)
    assert out.ok is ok, text
    for s in says:
        assert s in text, text


def check(engine, ok, *says):
    out = engine.check()
    text = "\n".join(out.lines)
    assert out.ok is ok, text
    for s in says:
        assert s in text, text
    return text


def test_catalog_has_the_issue_labs():
    assert {"service-networking", "explore-environment", "cni", "coredns", "network-policy"} <= set(LABS)
    assert len([n for n in LABS if n.startswith("troubleshoot-")]) >= 5


def test_service_networking(play):
    cluster, engine = play
    engine.start("service-networking")
    answer(engine, "172.30.0.2", False, "one address")
    answer(engine, "172.30.0.0/16", False, "wider than", "controlplane (172.30.0.2), node01 (172.30.0.3)")
    answer(engine, "172.30.0.0/24", True, "the nodes' network is 172.30.0.0/24")
    answer(engine, "10.244.1.0/24", False, "node node01's share of the pod range")
    answer(engine, "10.96.0.0/12", False, "the Service range")
    answer(engine, "10.244.0.0/16", True)
    answer(engine, "10.96.0.10", False, "one ClusterIP inside the Service range")
    answer(engine, "10.244.0.0/16", False, "the pod range")
    answer(engine, "10.96.0.0/12", True)
    answer(engine, "3", False, "count the kube-proxy pods again")
    answer(engine, "2", True)
    answer(engine, "ipvs", False, "kube-proxy's ConfigMap says mode")
    answer(engine, "iptables", True)
    answer(engine, "Deployment", False, "scheduler likes")
    answer(engine, "DaemonSet", True, "Lab service-networking complete")
    check(engine, True)


def test_answers_follow_the_cluster(tmp_path):
    cluster = kubeadm_cluster(proxy_mode="nftables")
    cluster.patch("pods", "kube-controller-manager-controlplane", "kube-system",
                  {"spec": {"containers": [{"name": "c", "command": ["kcm", "--cluster-cidr=10.32.0.0/12"]}]}})
    engine = Engine(cluster, StateFile(tmp_path / "s.json"), LABS)
    engine.start("service-networking")
    engine.answer("172.30.0.0/24")
    answer(engine, "10.244.0.0/16", False, "is not the pod range")
    answer(engine, "10.32.0.0/12", True)
    engine.answer("10.96.0.0/12")
    engine.answer("2")
    answer(engine, "iptables", False, "mode: nftables")
    answer(engine, "nftables", True)


def test_explore_environment(play):
    _, engine = play
    engine.start("explore-environment")
    answer(engine, "3", False)
    answer(engine, "2", True)
    answer(engine, "172.30.0.3", False, "node01's address")
    answer(engine, "172.30.0.2", True)
    answer(engine, "knet0", False, "not the node's InternalIP")
    answer(engine, "eth0", True)
    answer(engine, "172.30.0.2", False, "not the gateway")
    answer(engine, "172.30.0.1", True)
    answer(engine, "6443", False, "kube-apiserver's")
    answer(engine, "10259", True, "complete")


def test_cni(play):
    _, engine = play
    engine.start("cni")
    answer(engine, "/run/containerd/containerd.sock", False, "--container-runtime-endpoint")
    answer(engine, "unix:///var/run/containerd/containerd.sock", True)
    answer(engine, "/etc/cni/net.d", False, "no bridge plugin in /etc/cni/net.d")
    answer(engine, "/opt/cni/bin", True, "/opt/cni/bin/bridge")
    answer(engine, "portmap", False, "chained after bridge")
    answer(engine, "bridge", True)
    answer(engine, "kube-proxy", False, "does not mount /etc/cni/net.d")
    answer(engine, "knet-net", True)
    answer(engine, "10.244.0.0/24", False)
    answer(engine, "10.244.1.0/24", True, "complete")


def test_coredns(play):
    cluster, engine = play
    engine.start("coredns")
    answer(engine, "coredns", False, "Deployment")
    answer(engine, "kube-dns", True)
    answer(engine, "10.96.0.1", False)
    answer(engine, "10.96.0.10", True)
    answer(engine, "1", False)
    answer(engine, "2", True)
    answer(engine, "in-addr.arpa", False, "reverse zone")
    answer(engine, "cluster.local", True)
    answer(engine, "mysql", False, "looked up in the pod's own namespace (lab-coredns) first")
    answer(engine, "mysql.lab-coredns-payroll", True, "mysql's ClusterIP")
    check(engine, False, "✗ [fix-webapp] DB_HOST=mysql does not resolve to Service mysql")
    # kubectl -n lab-coredns set env deploy/webapp DB_HOST=mysql.lab-coredns-payroll
    deploy = cluster.get("deployments", "webapp", "lab-coredns")
    containers = deploy["spec"]["template"]["spec"]["containers"]
    containers[0]["env"] = [{"name": "DB_HOST", "value": "mysql.lab-coredns-payroll.svc.cluster.local"}]
    cluster.patch("deployments", "webapp", "lab-coredns", {"spec": {"template": {"spec": {"containers": containers}}}})
    check(engine, True, "webapp reaches mysql at mysql.lab-coredns-payroll.svc.cluster.local:3306", "complete")


def test_network_policy(play):
    cluster, engine = play
    engine.start("network-policy")
    answer(engine, "maybe", False, "yes or no")
    answer(engine, "no", False, "try it")
    answer(engine, "yes", True, "all traffic to it is allowed")
    check(engine, False, "no NetworkPolicy in lab-network-policy selects pod payroll")
    ns = "lab-network-policy"
    cluster.create({"kind": "NetworkPolicy", "metadata": {"name": "deny", "namespace": ns},
                    "spec": {"podSelector": {"matchLabels": {"name": "payroll"}}, "policyTypes": ["Ingress"]}})
    check(engine, False, "internal cannot reach payroll on port 8080 (the probe: timeout; dropped by NetworkPolicy",
          "policies selecting payroll: deny")
    cluster.delete("networkpolicies", "deny", ns)
    cluster.create({"kind": "NetworkPolicy", "metadata": {"name": "too-open", "namespace": ns},
                    "spec": {"podSelector": {"matchLabels": {"name": "payroll"}}, "policyTypes": ["Ingress"],
                             "ingress": [{"ports": [{"port": 8080}]}]}})
    check(engine, False, "external still reaches payroll on port 8080 (allowed by NetworkPolicy "
          "lab-network-policy/too-open ingress rule 1)")
    cluster.patch("networkpolicies", "too-open", ns, {"spec": {"ingress": [
        {"from": [{"podSelector": {"matchLabels": {"name": "internal"}}}], "ports": [{"protocol": "TCP", "port": 8080}]}]}})
    check(engine, True, "only internal reaches payroll:8080", "external: timeout, dropped by NetworkPolicy")
    # the check ran the probe (knet trace --probe) from each client, not a wget
    assert ("probe", "lab-network-policy/external", "lab-network-policy/payroll", "8080", "tcp") in cluster.calls


def test_troubleshoot_service_selector(play):
    cluster, engine = play
    engine.start("troubleshoot-service-selector")
    answer(engine, "1", False)
    answer(engine, "0", True)
    check(engine, False, "Service web selects app=webapp, tier=frontend, which matches no pod",
          "app=web, tier=frontend")
    cluster.patch("services", "web", "lab-svc-selector", {"spec": {"selector": {"app": "web"}}})
    text = check(engine, True, "Service web selects web-", "client reaches it")
    assert "✓ [endpoints] answered: 0" in text  # right when given, though there is 1 now


def test_troubleshoot_target_port(play):
    cluster, engine = play
    engine.start("troubleshoot-target-port")
    answer(engine, "80", False)
    answer(engine, "8080", True)
    check(engine, False, "Service web sends port 80 to targetPort 8080, but its pods listen on 80/TCP")
    cluster.patch("services", "web", "lab-svc-targetport",
                  {"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}]}})
    check(engine, True, "client reaches web through the Service")


def test_troubleshoot_coredns(play):
    cluster, engine = play
    engine.start("troubleshoot-coredns")
    assert cluster.get("deployments", "coredns", "kube-system")["spec"]["replicas"] == 0
    answer(engine, "kube-dns", False, "only the address")
    answer(engine, "coredns", True)
    check(engine, False, "Deployment kube-system/coredns is scaled to 0", "no endpoints")
    cluster.patch("deployments", "coredns", "kube-system", {"spec": {"replicas": 1}})
    check(engine, True, "client resolves kubernetes.default to 10.96.0.1", "1/1 ready")
    # reset (in the fixture) puts back the 2 replicas it found


def test_troubleshoot_dns_policy(play):
    cluster, engine = play
    ns = "lab-dns-policy"
    engine.start("troubleshoot-dns-policy")
    check(engine, False, "client cannot resolve web", "it reaches the Service by its ClusterIP",
          "none allows DNS (UDP and TCP 53")
    # deleting the default deny "works" but is not the fix
    deny = cluster.get("networkpolicies", "default-deny-egress", ns)
    cluster.delete("networkpolicies", "default-deny-egress", ns)
    check(engine, False, "default-deny-egress is gone or changed")
    cluster.create(deny)
    cluster.create({"kind": "NetworkPolicy", "metadata": {"name": "allow-dns", "namespace": ns},
                    "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
                        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}})
    check(engine, True, "client resolves web and reaches it")


def test_troubleshoot_kube_proxy(play):
    cluster, engine = play
    engine.start("troubleshoot-kube-proxy")
    conf = cluster.get("configmaps", "kube-proxy", "kube-system")["data"]["config.conf"]
    assert "mode: iptable\n" in conf and "clusterCIDR: 10.244.0.0/16" in conf
    answer(engine, "coredns", False, "not the failing ones")
    answer(engine, "kube-proxy", True)
    check(engine, False, "says mode: iptable, which kube-proxy refuses")
    # kubectl -n kube-system edit cm kube-proxy: the mode fixed, but the pods still run the old one
    cluster.patch("configmaps", "kube-proxy", "kube-system", {"data": {"config.conf": conf.replace("iptable", "iptables")}})
    check(engine, False, "0/2 kube-proxy pods are ready", "CrashLoopBackOff", "reads its configuration when it starts")
    for pod in cluster.list("pods", "kube-system", "k8s-app=kube-proxy"):
        cluster.delete("pods", pod["metadata"]["name"], "kube-system")
    check(engine, True, "kube-proxy runs on 2 nodes and client reaches Service web")


def test_answers_reach_the_cluster_as_one_word_never_through_a_shell(play):
    """An answer is data: a path or name with shell syntax is one argv word of the probe."""
    cluster, engine = play
    engine.start("cni")
    engine.answer("unix:///var/run/containerd/containerd.sock")
    answer(engine, "/opt/cni/bin; touch /tmp/pwned #", False, "no bridge plugin in /opt/cni/bin; touch /tmp/pwned #")
    assert ("node", "node01", "test", "-x", "/opt/cni/bin; touch /tmp/pwned #/bridge") in cluster.calls


def test_names_in_answers_are_one_word_for_nslookup(play):
    cluster, engine = play
    engine.start("coredns")
    for value in ("kube-dns", "10.96.0.10", "2", "cluster.local"):
        engine.answer(value)
    answer(engine, "mysql.lab-coredns-payroll; id", False, "does not resolve from pod hr")
    assert ("exec", "lab-coredns", "hr", "nslookup", "-timeout=2", "-retry=1", "mysql.lab-coredns-payroll; id") in cluster.calls


def test_labs_refuse_a_simulated_dataplane(tmp_path):
    from knet.labs.engine import LabError

    engine = Engine(kubeadm_cluster(), StateFile(tmp_path / "s.json"), LABS, real_dataplane=False)
    with pytest.raises(LabError, match="needs a cluster with --dataplane real"):
        engine.start("coredns")
    assert not (tmp_path / "s.json").exists()


def test_a_namespace_of_the_users_is_never_taken_nor_deleted(tmp_path):
    from knet.labs.engine import LabError

    cluster = kubeadm_cluster()
    cluster.create({"kind": "Namespace", "metadata": {"name": "lab-svc-selector"}})
    cluster.create({"kind": "ConfigMap", "metadata": {"name": "mine", "namespace": "lab-svc-selector"}})
    engine = Engine(cluster, StateFile(tmp_path / "s.json"), LABS)
    with pytest.raises(LabError, match="namespace lab-svc-selector already exists"):
        engine.start("troubleshoot-service-selector")
    assert engine.reset().ok
    assert cluster.get("configmaps", "mine", "lab-svc-selector") is not None


def test_a_crash_looping_pod_counts_as_failing_in_the_second_it_looks_ready():
    """kubelet restarts a crashing container and reports it Ready until it crashes again: the
    kube-proxy lab still sees the pod failing (its last exit was an error, a moment ago)."""
    from datetime import UTC, datetime

    from knet.labs.catalog.troubleshoot_kube_proxy import crashed_lately

    now = datetime(2026, 12, 5, 10, 0, 30, tzinfo=UTC)
    looping = {"status": {"containerStatuses": [{"ready": True, "restartCount": 2, "lastState": {
        "terminated": {"exitCode": 1, "finishedAt": "2026-12-05T10:00:20Z"}}}]}}
    assert crashed_lately(looping, now)
    assert not crashed_lately(looping, datetime(2026, 12, 5, 10, 5, tzinfo=UTC))  # long ago: it runs now
    clean = {"status": {"containerStatuses": [{"ready": True, "restartCount": 1, "lastState": {
        "terminated": {"exitCode": 0, "finishedAt": "2026-12-05T10:00:20Z"}}}]}}
    assert not crashed_lately(clean, now) and not crashed_lately({"status": {}}, now)
