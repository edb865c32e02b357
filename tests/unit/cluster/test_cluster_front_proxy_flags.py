"""The front-proxy flags of the control-plane static pods, as kubeadm v1.29 writes them (the
reference lab's `ps -ef | grep proxy`), with knet's state directory for /etc/kubernetes."""

from __future__ import annotations

from pathlib import Path

from knet.cluster.config import resolve
from knet.cluster.manifests import control_plane_manifests
from knet.cluster.paths import ClusterPaths

PATHS = ClusterPaths(Path("/state/demo"))

# kubeadm's, from the lab's kube-apiserver and kube-controller-manager command lines
KUBEADM_APISERVER = [
    "--proxy-client-cert-file=/etc/kubernetes/pki/front-proxy-client.crt",
    "--proxy-client-key-file=/etc/kubernetes/pki/front-proxy-client.key",
    "--requestheader-allowed-names=front-proxy-client",
    "--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt",
    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
    "--requestheader-group-headers=X-Remote-Group",
    "--requestheader-username-headers=X-Remote-User",
]
KUBEADM_CONTROLLER_MANAGER = ["--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt"]


def commands():
    config, _ = resolve({"name": "demo"})
    return {name: m["spec"]["containers"][0]["command"] for name, m in control_plane_manifests(config, PATHS).items()}


def knet_paths(flags):
    return [f.replace("/etc/kubernetes/pki", "/state/demo/pki") for f in flags]


def test_apiserver_carries_kubeadms_front_proxy_flags_in_kubeadms_order():
    api = commands()["kube-apiserver.yaml"]
    ours = [f for f in api if f.startswith(("--proxy-client", "--requestheader"))]
    assert ours == knet_paths(KUBEADM_APISERVER)
    assert api[1:] == sorted(api[1:])


def test_controller_manager_carries_the_front_proxy_ca():
    kcm = commands()["kube-controller-manager.yaml"]
    assert [f for f in kcm if f.startswith("--requestheader")] == knet_paths(KUBEADM_CONTROLLER_MANAGER)
    # kubeadm's scheduler reads the front-proxy CA from extension-apiserver-authentication: no flag
    assert not [f for f in commands()["kube-scheduler.yaml"] if "proxy" in f]
