import pytest

from knet.node import static
from knet.node.config import parse_labels, parse_node_list, parse_taints, sim_node_names
from knet.node.nodeobject import node_object, node_status, os_image
from knet.node.runtime import PodCidrAllocator, SandboxError
from knet.node.server import exec_status
from knet.node.volumes import SA_MOUNT_PATH, bind_mounts, with_service_account_volume

MANIFEST = """
apiVersion: v1
kind: Pod
metadata: {name: kube-apiserver, namespace: kube-system}
spec:
  hostNetwork: true
  containers: [{name: kube-apiserver, image: registry.k8s.io/kube-apiserver:v1.29.0, command: [knet, apiserver]}]
"""
FACTS = {"osImage": "Debian", "kernelVersion": "6.1", "machineID": "m", "cpu": "2", "memoryKi": "1000",
         "arch": "amd64"}


def test_static_pod_naming_and_stable_uid():
    pod = static.static_pod(MANIFEST, "controlplane")
    assert pod["metadata"]["name"] == "kube-apiserver-controlplane"
    assert pod["spec"]["nodeName"] == "controlplane"
    assert pod["metadata"]["uid"] == static.static_pod(MANIFEST, "controlplane")["metadata"]["uid"]
    assert pod["metadata"]["uid"] != static.static_pod(MANIFEST.replace("v1.29.0", "v1.30.0"),
                                                       "controlplane")["metadata"]["uid"]


def test_mirror_pod_annotation_and_owner():
    mirror = static.mirror_pod(static.static_pod(MANIFEST, "cp"), "node-uid")
    assert static.is_mirror(mirror) and "uid" not in mirror["metadata"]
    # As the kubelet's mirror client writes it: the Node as controller (NodeRestriction requires it).
    assert mirror["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": "cp",
                                                      "uid": "node-uid", "controller": True}]


def test_read_manifests_skips_dotfiles_and_other_suffixes(tmp_path):
    (tmp_path / "a.yaml").write_text(MANIFEST)
    (tmp_path / ".hidden.yaml").write_text(MANIFEST)
    (tmp_path / "notes.txt").write_text("x")
    assert list(static.read_manifests(str(tmp_path))) == ["a.yaml"]


def test_taints_and_labels_flags():
    assert parse_taints("node-role.kubernetes.io/control-plane:NoSchedule,k=v:NoExecute") == [
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
        {"key": "k", "value": "v", "effect": "NoExecute"}]
    with pytest.raises(ValueError):
        parse_taints("k=v:Sometimes")
    assert parse_labels("node-role.kubernetes.io/control-plane=,a=b") == {
        "node-role.kubernetes.io/control-plane": "", "a": "b"}


def test_sim_node_names_and_list():
    assert sim_node_names(2, "sim-node-", "172.31.0.0/16") == [("sim-node-0001", "172.31.0.2"),
                                                                ("sim-node-0002", "172.31.0.3")]
    assert parse_node_list("a 10.0.0.9\nb\n# c\n", "172.31.0.0/16") == [("a", "10.0.0.9"), ("b", "172.31.0.3")]


def test_node_object_and_status():
    node = node_object("n1", labels={"x": "y"}, taints=[], pod_cidr=None, facts=FACTS)
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "n1" and node["metadata"]["labels"]["x"] == "y"
    status = node_status(node_ip="172.30.0.3", hostname="n1", facts=FACTS, kubelet_version="v1.29.0", port=10250,
                         max_pods=110, network_ready=False, now="t")
    ready = status["conditions"][-1]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "KubeletNotReady")
    assert status["nodeInfo"]["containerRuntimeVersion"] == "knet://0.1.0"
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert status["addresses"] == [{"type": "InternalIP", "address": "172.30.0.3"},
                                   {"type": "Hostname", "address": "n1"}]


def test_os_image():
    assert os_image('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n') == "Debian GNU/Linux 12 (bookworm)"


def test_exec_status_shapes():
    assert exec_status(0) == {"metadata": {}, "status": "Success"}
    failure = exec_status(3)
    assert failure["reason"] == "NonZeroExitCode"
    assert failure["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


def test_sim_ip_allocator_never_reuses_an_ip_in_use():
    alloc = PodCidrAllocator()
    with pytest.raises(SandboxError):
        alloc.allocate()
    alloc.set_cidr("10.244.1.0/29")  # .2 .. .6 usable
    ips = [alloc.allocate() for _ in range(5)]
    assert len(set(ips)) == 5 and ips[0] == "10.244.1.2"
    with pytest.raises(SandboxError):
        alloc.allocate()
    alloc.release("10.244.1.4")
    assert alloc.allocate() == "10.244.1.4"


def test_service_account_volume_added_once_and_respects_opt_out():
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    with_sa = with_service_account_volume(pod)
    assert with_sa["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] == SA_MOUNT_PATH
    assert with_service_account_volume(with_sa) is with_sa
    assert "volumes" not in pod["spec"]
    opted_out = {"metadata": {}, "spec": {"automountServiceAccountToken": False, "containers": [{"name": "c"}]}}
    assert with_service_account_volume(opted_out) is opted_out


def test_bind_mounts_parents_first_and_subpath(tmp_path):
    pod = {"spec": {"containers": [{"name": "c", "volumeMounts": [
        {"name": "cfg", "mountPath": "/etc/app/conf.d/file", "subPath": "f"},
        {"name": "cfg", "mountPath": "/etc/app", "readOnly": True}]}]}}
    mounts = bind_mounts(pod, {"cfg": tmp_path})
    assert mounts == [(str(tmp_path), "/etc/app", True), (str(tmp_path / "f"), "/etc/app/conf.d/file", False)]


def test_a_hostpath_at_its_own_path_is_bound_only_into_a_container_of_its_own(tmp_path):
    """A runc container's root filesystem has nothing of the host but its binds, so a static
    pod's pki (a hostPath at its own path) is bound in; a host process sees it anyway."""
    pod = {"spec": {"containers": [{"name": "c", "volumeMounts": [
        {"name": "certs", "mountPath": str(tmp_path / "pki"), "readOnly": True}]}]}}
    paths = {"certs": tmp_path / "pki"}
    assert bind_mounts(pod, paths) == []
    assert bind_mounts(pod, paths, bind_all=True) == [(str(tmp_path / "pki"), str(tmp_path / "pki"), True)]


