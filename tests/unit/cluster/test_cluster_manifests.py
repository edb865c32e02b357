"""Static pod manifests and node agent command lines (what `ps -ef` shows on the control plane)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from knet.cluster import addons, agents, bootstrap
from knet.cluster.config import resolve
from knet.cluster.manifests import control_plane_manifests
from knet.cluster.paths import ClusterPaths

PATHS = ClusterPaths(Path("/state/demo"))


def config(**flags):
    c, _ = resolve({"name": "demo"}, **flags)
    return c


def command_of(manifest):
    return manifest["spec"]["containers"][0]["command"]


def test_control_plane_static_pods_carry_kubeadms_flags():
    manifests = control_plane_manifests(config(), PATHS)
    assert sorted(manifests) == ["kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"]
    api = command_of(manifests["kube-apiserver.yaml"])
    assert api[0] == "kube-apiserver"  # kubeadm's command: the process's title (ps -ef | grep kube-apiserver)
    for flag in ("--service-cluster-ip-range=10.96.0.0/12", "--advertise-address=172.30.0.2",
                 "--secure-port=6443", "--data-dir=/state/demo/data",
                 "--client-ca-file=/state/demo/pki/ca.crt"):
        assert flag in api
    kcm = command_of(manifests["kube-controller-manager.yaml"])
    for flag in ("--allocate-node-cidrs=true", "--cluster-cidr=10.244.0.0/16", "--node-cidr-mask-size=24",
                 "--service-cluster-ip-range=10.96.0.0/12", "--controllers=*,bootstrapsigner,tokencleaner",
                 "--kubeconfig=/state/demo/kubeconfig/controller-manager.conf"):
        assert flag in kcm
    # flags sorted by name, as kubeadm writes them
    assert kcm[0] == "kube-controller-manager"
    assert kcm[1:] == sorted(kcm[1:])
    sched = command_of(manifests["kube-scheduler.yaml"])
    assert sched[0] == "kube-scheduler"
    assert "--kubeconfig=/state/demo/kubeconfig/scheduler.conf" in sched


def test_static_pods_look_like_kubeadms():
    pod = control_plane_manifests(config(), PATHS)["kube-apiserver.yaml"]
    assert pod["metadata"]["labels"] == {"component": "kube-apiserver", "tier": "control-plane"}
    assert pod["metadata"]["namespace"] == "kube-system"
    assert pod["spec"]["hostNetwork"] is True
    assert pod["spec"]["priorityClassName"] == "system-node-critical"
    assert pod["spec"]["containers"][0]["image"] == "registry.k8s.io/kube-apiserver:v1.29.0"


def test_etcd_storage_adds_an_etcd_static_pod():
    c, _ = resolve({"name": "demo", "storage": "etcd"}, allow_etcd=True)
    manifests = control_plane_manifests(c, PATHS)
    etcd = command_of(manifests["etcd.yaml"])
    # kubeadm's etcd.yaml for a node at 172.30.0.2 (its `command`, flags sorted by name).
    assert etcd == [
        "etcd",
        "--advertise-client-urls=https://172.30.0.2:2379",
        "--cert-file=/state/demo/pki/etcd/server.crt",
        "--client-cert-auth=true",
        "--data-dir=/state/demo/data/etcd",
        "--experimental-initial-corrupt-check=true",
        "--experimental-watch-progress-notify-interval=5s",
        "--initial-advertise-peer-urls=https://172.30.0.2:2380",
        "--initial-cluster=controlplane=https://172.30.0.2:2380",
        "--key-file=/state/demo/pki/etcd/server.key",
        "--listen-client-urls=https://127.0.0.1:2379,https://172.30.0.2:2379",
        "--listen-metrics-urls=http://127.0.0.1:2381",
        "--listen-peer-urls=https://172.30.0.2:2380",
        "--name=controlplane",
        "--peer-cert-file=/state/demo/pki/etcd/peer.crt",
        "--peer-client-cert-auth=true",
        "--peer-key-file=/state/demo/pki/etcd/peer.key",
        "--peer-trusted-ca-file=/state/demo/pki/etcd/ca.crt",
        "--snapshot-count=10000",
        "--trusted-ca-file=/state/demo/pki/etcd/ca.crt",
    ]
    assert manifests["etcd.yaml"]["metadata"]["annotations"] == {
        "kubeadm.kubernetes.io/etcd.advertise-client-urls": "https://172.30.0.2:2379"}
    apiserver = command_of(manifests["kube-apiserver.yaml"])
    for flag in ("--etcd-cafile=/state/demo/pki/etcd/ca.crt",
                 "--etcd-certfile=/state/demo/pki/apiserver-etcd-client.crt",
                 "--etcd-keyfile=/state/demo/pki/apiserver-etcd-client.key",
                 "--etcd-servers=https://127.0.0.1:2379"):
        assert flag in apiserver
    assert not any(a.startswith(("--storage", "--data-dir")) for a in apiserver)


def test_a_simulated_clusters_etcd_serves_on_loopback_only():
    c, _ = resolve({"name": "demo", "storage": "etcd", "dataplane": "sim"}, allow_etcd=True)
    c = replace(c, api_server_bind_address="127.0.0.1")  # as `knet up` sets it for sim
    etcd = command_of(control_plane_manifests(c, PATHS)["etcd.yaml"])
    assert "--listen-client-urls=https://127.0.0.1:2379" in etcd
    assert "--listen-peer-urls=https://127.0.0.1:2380" in etcd


def test_kubelet_flags_for_control_plane_and_worker():
    c = config()
    cp = agents.kubelet_argv(c, PATHS, c.control_plane, ["knet"])
    # titled as kubeadm's kubelet.service runs it; the version goes to as-binary, not the title
    assert cp[:4] == ["knet", "as-binary", "--image=registry.k8s.io/kubelet:v1.29.0", "/usr/bin/kubelet"]
    # kubeadm v1.29's command line, first and in its order
    assert cp[4:9] == ["--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
                       "--kubeconfig=/etc/kubernetes/kubelet.conf", "--config=/var/lib/kubelet/config.yaml",
                       "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
                       "--pod-infra-container-image=registry.k8s.io/pause:3.9"]
    # the rest comes from config.yaml (clusterDNS, staticPodPath...) and the node (its hostname)
    assert "--register-with-taints=node-role.kubernetes.io/control-plane:NoSchedule" in cp
    assert not any(a.startswith(("--hostname-override", "--cluster-dns", "--pod-manifest-path", "--node-labels",
                                 "--tls-cert-file", "--dataplane")) for a in cp)
    assert "--root-dir=/state/demo/nodes/controlplane" in cp
    # The control-plane label is knet up's to set (kubeadm's mark-control-plane), not the kubelet's:
    # NodeRestriction refuses node-role labels from a node.
    worker = agents.kubelet_argv(c, PATHS, c.workers[0], ["knet"])
    assert "--root-dir=/state/demo/nodes/node01" in worker
    assert not any(a.startswith(("--node-labels", "--register-with-taints")) for a in worker)


def test_sim_node_list():
    c, _ = resolve(None, nodes=3)
    assert agents.sim_node_list(c.workers) == "node01 172.30.0.3\nnode02 172.30.0.4\n"


def test_sim_agents_control_plane_alone_carries_label_taint_and_static_pods():
    c, _ = resolve(None, nodes=3, dataplane="sim")
    cp = agents.sim_kubelet_argv(c, PATHS, "controlplane", (c.control_plane,), "/l", ["knet"], port=1)
    assert "--hostname-override=controlplane" in cp and "--sim-node-list=/l" in cp
    assert "--pod-manifest-path=/state/demo/nodes/controlplane/manifests" in cp
    assert "--register-with-taints=node-role.kubernetes.io/control-plane:NoSchedule" in cp
    assert not any(a.startswith("--node-labels") for a in cp)
    workers = agents.sim_kubelet_argv(c, PATHS, "sim-workers", c.workers, "/w", ["knet"], port=2)
    assert "--kubeconfig=/state/demo/kubeconfig/kubelet-sim-workers.conf" in workers
    assert not any(a.startswith(("--pod-manifest-path", "--register-with-taints", "--node-labels"))
                   for a in workers)


def test_service_account_token_test_setting_caps_tokens():
    """serviceAccountTokenMaxExpiration: the apiserver caps tokens and extends none; below 1h
    only with knet's own allowance flag."""
    import pytest

    from knet.cluster.config import ConfigError, from_dict

    api = command_of(control_plane_manifests(config(), PATHS)["kube-apiserver.yaml"])
    assert not [f for f in api if "token-expiration" in f]
    short, _ = resolve({"name": "demo", "serviceAccountTokenMaxExpiration": "20s"})
    api = command_of(control_plane_manifests(short, PATHS)["kube-apiserver.yaml"])
    for flag in ("--service-account-max-token-expiration=20s", "--service-account-extend-token-expiration=false",
                 "--allow-short-service-account-max-token-expiration=true"):
        assert flag in api
    assert from_dict(short.to_dict()) == short
    long, _ = resolve({"name": "demo", "serviceAccountTokenMaxExpiration": "2h"})
    api = command_of(control_plane_manifests(long, PATHS)["kube-apiserver.yaml"])
    assert "--service-account-max-token-expiration=2h" in api
    assert not [f for f in api if f.startswith("--allow-short")]
    for bad in ("20", "soon", "0s"):
        with pytest.raises(ConfigError):
            resolve({"name": "demo", "serviceAccountTokenMaxExpiration": bad})


def test_extra_args_reach_the_controller_manager_and_the_scheduler_as_kubeadms():
    """controllerManagerExtraArgs / schedulerExtraArgs (kubeadm's controllerManager.extraArgs,
    scheduler.extraArgs): added to the static pod's flags, overriding knet's own; kubeadm-config
    shows them; anything but a mapping of flag names to plain values is refused."""
    import pytest
    import yaml

    from knet.cluster.config import ConfigError, from_dict

    plain = control_plane_manifests(config(), PATHS)
    assert "--leader-elect=true" in command_of(plain["kube-controller-manager.yaml"])
    assert not [f for f in command_of(plain["kube-scheduler.yaml"]) if f.startswith("--leader-elect-lease")]
    tuned, _ = resolve({"name": "demo",
                        "controllerManagerExtraArgs": {"leader-elect-lease-duration": "6s", "leader-elect": False},
                        "schedulerExtraArgs": {"leader-elect-retry-period": "1s"}})
    manifests = control_plane_manifests(tuned, PATHS)
    kcm = command_of(manifests["kube-controller-manager.yaml"])
    assert "--leader-elect-lease-duration=6s" in kcm and "--leader-elect=false" in kcm
    assert "--leader-elect=true" not in kcm
    names = [f.split("=", 1)[0] for f in kcm[1:]]
    assert names == sorted(names)  # still sorted by flag name, as kubeadm writes them
    sched = command_of(manifests["kube-scheduler.yaml"])
    assert "--leader-elect-retry-period=1s" in sched and "--leader-elect=true" in sched
    assert not [f for f in command_of(manifests["kube-apiserver.yaml"]) if "leader-elect" in f]
    shown = yaml.safe_load(addons.kubeadm_config_configmap(tuned, "/etc/kubernetes/pki")["data"]["ClusterConfiguration"])
    assert shown["controllerManager"] == {"extraArgs": {"leader-elect-lease-duration": "6s", "leader-elect": "false"}}
    assert shown["scheduler"] == {"extraArgs": {"leader-elect-retry-period": "1s"}}
    assert from_dict(tuned.to_dict()) == tuned
    for bad in ({"controllerManagerExtraArgs": ["leader-elect=false"]},
                {"controllerManagerExtraArgs": {"--leader-elect": "false"}},
                {"schedulerExtraArgs": {"leader elect": "false"}},
                {"schedulerExtraArgs": {"leader-elect": {"nested": 1}}}):
        with pytest.raises(ConfigError):
            resolve({"name": "demo", **bad})


def test_static_pods_see_their_files_through_hostpath_volumes_as_kubeadms():
    """Pods do not see the cluster's directory (a runc container has only its binds): each
    control-plane pod mounts what it reads, at its own path, as kubeadm's mount /etc/kubernetes."""
    c, _ = resolve({"name": "demo", "storage": "etcd"}, allow_etcd=True)
    manifests = control_plane_manifests(c, PATHS)

    def mounts(file: str) -> dict[str, tuple[str, bool]]:
        spec = manifests[file]["spec"]
        by_name = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
        container = spec["containers"][0]
        assert all(m["mountPath"] == by_name[m["name"]] for m in container["volumeMounts"])
        return {m["mountPath"]: bool(m.get("readOnly")) for m in container["volumeMounts"]}

    assert mounts("etcd.yaml") == {"/state/demo/pki/etcd": True, "/state/demo/data/etcd": False}
    assert mounts("kube-apiserver.yaml") == {"/state/demo/pki": True}
    assert mounts("kube-controller-manager.yaml") == {
        "/state/demo/pki": True, "/state/demo/kubeconfig/controller-manager.conf": True}
    assert mounts("kube-scheduler.yaml") == {"/state/demo/kubeconfig/scheduler.conf": True}
    sqlite = control_plane_manifests(config(), PATHS)["kube-apiserver.yaml"]["spec"]["containers"][0]
    assert {"name": "knet-data", "mountPath": "/state/demo/data"} in sqlite["volumeMounts"]
def test_agent_identities_for_the_node_authorizer():
    """A real node's agent is `system:node:NODE` in `system:nodes` (Node authorizer and
    NodeRestriction apply); the agent of all simulated workers is no single node: its own user,
    bound to the `system:node` ClusterRole by knet up."""
    assert bootstrap.node_agent_identity("node01") == ("system:node:node01", ["system:nodes"])
    assert bootstrap.node_agent_identity("controlplane") == ("system:node:controlplane", ["system:nodes"])
    assert bootstrap.node_agent_identity("sim-workers") == ("kubelet-sim-workers", [])
    sim, _ = resolve(None, nodes=3, dataplane="sim")
    assert addons.sim_kubelet_binding(sim, "kubelet-sim-workers") == {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "knet:kubelet-sim-workers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "kubelet-sim-workers"}]}
    assert addons.sim_kubelet_binding(config(), "kubelet-sim-workers") is None  # real: one identity per node
    assert addons.sim_kubelet_binding(resolve(None, nodes=1, dataplane="sim")[0], "x") is None  # no workers
