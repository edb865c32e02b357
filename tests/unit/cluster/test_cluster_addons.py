"""The kubeadm add-ons as knet creates them, checked against what an operator sees on a
kubeadm v1.29 cluster (the reference transcript in /work/shared/reference)."""

from __future__ import annotations

import yaml

from knet.cluster import addons
from knet.cluster.config import resolve


def reference_config(**flags):
    config, _ = resolve(None, **flags)
    return config


def test_kube_proxy_config_conf_is_a_full_kube_proxy_configuration():
    text = addons.kube_proxy_config_text(reference_config())
    conf = yaml.safe_load(text)
    assert conf["apiVersion"] == "kubeproxy.config.k8s.io/v1alpha1"
    assert conf["kind"] == "KubeProxyConfiguration"
    assert conf["mode"] == ""
    assert conf["clusterCIDR"] == "10.244.0.0/16"
    assert conf["bindAddress"] == "0.0.0.0"
    assert conf["metricsBindAddress"] == ""
    assert conf["clientConnection"]["kubeconfig"] == "/var/lib/kube-proxy/kubeconfig.conf"
    assert conf["iptables"] == {"localhostNodePorts": None, "masqueradeAll": False, "masqueradeBit": None,
                                "minSyncPeriod": "0s", "syncPeriod": "0s"}
    # kubeadm writes keys in sorted order, mode as the empty string literally
    assert 'mode: ""\n' in text
    top_keys = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith(" ")]
    assert top_keys == sorted(top_keys)
    assert not text.endswith("\n")  # shown as a |- block by kubectl, as on kubeadm


def test_proxy_mode_flag_lands_in_the_config():
    conf = yaml.safe_load(addons.kube_proxy_config_text(reference_config(proxy_mode="nftables")))
    assert conf["mode"] == "nftables"


def test_kube_proxy_kubeconfig_uses_the_service_account_files_and_controlplane_name():
    kc = yaml.safe_load(addons.kube_proxy_kubeconfig_text(reference_config()))
    cluster = kc["clusters"][0]["cluster"]
    assert cluster == {"certificate-authority": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
                       "server": "https://controlplane:6443"}
    assert kc["users"][0]["user"] == {"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}
    assert kc["current-context"] == "default"


def test_kube_proxy_configmap_metadata():
    cm = addons.kube_proxy_configmap(reference_config())
    assert {k: cm["metadata"][k] for k in ("name", "namespace", "labels")} == {
        "name": "kube-proxy", "namespace": "kube-system", "labels": {"app": "kube-proxy"}}
    assert sorted(cm["data"]) == ["config.conf", "kubeconfig.conf"]


def test_kube_proxy_daemonset_matches_kubeadm():
    ds = addons.kube_proxy_daemonset(reference_config())
    spec = ds["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"] == "registry.k8s.io/kube-proxy:v1.29.0"
    assert container["command"] == ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                                    "--hostname-override=$(NODE_NAME)"]
    assert container["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert container["securityContext"] == {"privileged": True}
    assert spec["hostNetwork"] is True
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["serviceAccountName"] == "kube-proxy"
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert {"name": "kube-proxy", "configMap": {"name": "kube-proxy"}} in spec["volumes"]
    assert {"mountPath": "/var/lib/kube-proxy", "name": "kube-proxy"} in container["volumeMounts"]
    assert ds["spec"]["selector"] == {"matchLabels": {"k8s-app": "kube-proxy"}}


def test_coredns_deployment_matches_kubeadm():
    dep = addons.coredns_deployment(reference_config())
    assert dep["spec"]["replicas"] == 2
    spec = dep["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"] == "registry.k8s.io/coredns/coredns:v1.11.1"
    assert container["args"] == ["-conf", "/etc/coredns/Corefile"]
    assert [(p["containerPort"], p["protocol"], p["name"]) for p in container["ports"]] == [
        (53, "UDP", "dns"), (53, "TCP", "dns-tcp"), (9153, "TCP", "metrics")]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": 8080, "scheme": "HTTP"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8181, "scheme": "HTTP"}
    assert dep["spec"]["template"]["metadata"]["labels"] == {"k8s-app": "kube-dns"}
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in spec["tolerations"]
    term = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["serviceAccountName"] == "coredns"
    assert spec["dnsPolicy"] == "Default"


def test_kube_dns_service_is_the_tenth_address_with_three_ports():
    svc = addons.kube_dns_service(reference_config())
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
    assert svc["metadata"]["labels"]["kubernetes.io/name"] == "CoreDNS"
    assert svc["spec"]["selector"] == {"k8s-app": "kube-dns"}


def test_corefile_is_kubeadms_default_for_the_dns_domain():
    corefile = addons.coredns_configmap(reference_config())["data"]["Corefile"]
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa {" in corefile
    for directive in ("errors", "ready", "prometheus :9153", "forward . /etc/resolv.conf", "cache 30",
                      "loop", "reload", "loadbalance", "pods insecure", "ttl 30"):
        assert directive in corefile


def test_addons_are_created_in_dependency_order():
    kinds = [(o["kind"], o["metadata"]["name"]) for _, _, o in addons.addon_objects(reference_config())]
    assert kinds.index(("ServiceAccount", "kube-proxy")) < kinds.index(("DaemonSet", "kube-proxy"))
    assert kinds.index(("ConfigMap", "coredns")) < kinds.index(("Deployment", "coredns"))
    assert ("Service", "kube-dns") in kinds


def test_kube_proxy_configmap_carries_kubeadms_component_config_hash():
    import hashlib

    cm = addons.kube_proxy_configmap(reference_config())
    digest = hashlib.sha256(cm["data"]["config.conf"].encode()).hexdigest()
    assert cm["metadata"]["annotations"] == {"kubeadm.kubernetes.io/component-config.hash": f"sha256:{digest}"}


def test_bootstrap_configmaps_as_kubeadm_uploads_them():
    objs = {(o["metadata"]["namespace"], o["metadata"]["name"]): o
            for _, _, o in addons.bootstrap_configmaps(reference_config(), "/state/pki", b"PEM")}
    assert sorted(objs) == [("kube-public", "cluster-info"), ("kube-system", "kubeadm-config"),
                            ("kube-system", "kubelet-config")]
    cc = yaml.safe_load(objs[("kube-system", "kubeadm-config")]["data"]["ClusterConfiguration"])
    assert cc["networking"] == {"dnsDomain": "cluster.local", "podSubnet": "10.244.0.0/16",
                                "serviceSubnet": "10.96.0.0/12"}
    assert cc["controlPlaneEndpoint"] == "controlplane:6443"
    kubelet = yaml.safe_load(objs[("kube-system", "kubelet-config")]["data"]["kubelet"])
    assert kubelet["clusterDNS"] == ["10.96.0.10"]
    info = yaml.safe_load(objs[("kube-public", "cluster-info")]["data"]["kubeconfig"])
    assert info["clusters"][0]["cluster"]["server"] == "https://controlplane:6443"
    assert info["clusters"][0]["cluster"]["certificate-authority-data"] == "UEVN"


def test_network_addon_daemonset_runs_the_cni_agent_and_policy_controller_everywhere():
    ds = addons.network_addon_daemonset(reference_config(), "/state/c1/nodes")
    spec = ds["spec"]["template"]["spec"]
    assert (ds["metadata"]["namespace"], ds["metadata"]["name"]) == ("kube-system", "knet-net")
    assert spec["hostNetwork"] and spec["tolerations"] == [{"operator": "Exists"}]
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["serviceAccountName"] == "knet-net"
    cni, netpol = spec["containers"]
    assert netpol["name"] == "netpol"
    assert "--kube-proxy-config=/var/lib/kube-proxy/config.conf" in netpol["command"]
    # The CNI agent shows the pod range in its flags (`ps -ef | grep alloc` on a node) and writes
    # its node's config at kubeadm's path, which a knet node binds to the dir its kubelet's
    # --cni-conf-dir names (knet.cluster.nodefs); only those dirs of the node, not the state dir.
    assert cni["name"] == "cni"
    assert "--ipalloc-range=10.244.0.0/16" in cni["command"]
    assert "--cni-conf-dir=/etc/cni/net.d" in cni["command"]
    assert "--ipam-data-dir=/var/lib/cni/networks" in cni["command"]
    assert {"mountPath": "/etc/cni/net.d", "name": "cni-conf"} in cni["volumeMounts"]
    assert {"name": "cni-conf", "hostPath": {"path": "/etc/cni/net.d", "type": "Directory"}} in spec["volumes"]
    assert not any("/state/" in str(v) for v in spec["volumes"])
    assert all(c["securityContext"] == {"privileged": True} for c in (cni, netpol))
    kinds = [(o["kind"], o["metadata"]["name"]) for _, _, o in addons.addon_objects(reference_config())]
    assert kinds.index(("ServiceAccount", "knet-net")) < kinds.index(("DaemonSet", "knet-net"))
    assert kinds.index(("ClusterRoleBinding", "knet:knet-net")) < kinds.index(("DaemonSet", "knet-net"))


def test_network_addon_may_only_read_what_it_enforces():
    (role, _binding) = addons.network_addon_rbac_objects()
    rules = role[2]["rules"]
    writes = {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]
              if set(rule["verbs"]) - {"get", "list", "watch"}}
    assert writes == {("", "events"), ("events.k8s.io", "events")}
    reads = {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    # services and endpointslices: which LoadBalancer addresses a node announces (l2announce)
    assert reads - writes == {("networking.k8s.io", "networkpolicies"), ("", "pods"), ("", "namespaces"),
                              ("", "nodes"), ("", "services"), ("discovery.k8s.io", "endpointslices")}
