"""A kubeadm node's filesystem plan and its sshd config (knet.cluster.nodefs; issue 15 item 2)."""

from __future__ import annotations

from pathlib import Path

import yaml

from knet.cluster import addons, nodefs
from knet.cluster.config import resolve
from knet.cluster.paths import ClusterPaths

PATHS = ClusterPaths(Path("/state/demo"))


def config(**flags):
    storage = flags.pop("storage", None)
    c, _ = resolve({"name": "demo", **({"storage": storage} if storage else {})}, nodes=3, dataplane="real", **flags)
    return c


def binds(plan):
    return {target: (source, ro) for source, target, ro in plan["binds"]}


def test_control_plane_shows_kubeadms_paths_from_the_state_dir():
    c = config(storage="etcd")
    plan = nodefs.view_plan(c, PATHS, c.control_plane)
    assert plan["overlays"] == ["/etc", "/var/lib", "/var/log", "/opt", "/root"]
    assert plan["keep"] == ["/state"]  # the state dir stays the host's own under an overlay
    b = binds(plan)
    assert b["/etc/kubernetes/admin.conf"] == ("/state/demo/kubeconfig/admin.conf", True)
    assert b["/etc/kubernetes/kubelet.conf"] == ("/state/demo/kubeconfig/kubelet-controlplane.conf", True)
    assert b["/etc/kubernetes/manifests"] == ("/state/demo/nodes/controlplane/manifests", False)
    assert b["/etc/kubernetes/pki"] == ("/state/demo/pki", False)
    assert b["/etc/cni/net.d"] == ("/state/demo/nodes/controlplane/cni/net.d", False)
    assert b["/opt/cni/bin"] == ("/usr/lib/cni", True)
    assert b["/var/lib/kubelet"] == ("/state/demo/nodes/controlplane", False)
    assert b["/var/lib/cni/networks"] == ("/state/demo/nodes/controlplane/cni/ipam", False)
    assert b["/var/lib/etcd"] == ("/state/demo/data/etcd", False)
    assert b["/var/log/pods"][0] == "/state/demo/nodes/controlplane/log/pods"
    assert b["/var/log/containers"][0] == "/state/demo/nodes/controlplane/log/containers"
    assert b["/root/.ssh"][0] == "/state/demo/nodes/controlplane/ssh/root"
    assert b["/root/.kube/config"] == ("/state/demo/kubeconfig/admin.conf", True)
    # the node's runtime endpoint dir (containerd.sock) and crictl's config, as a kubeadm node has them
    assert b["/run/containerd"] == ("/state/demo/nodes/controlplane/run/containerd", False)
    assert b["/etc/crictl.yaml"] == ("/state/demo/nodes/controlplane/crictl.yaml", True)
    # every target is under an overlaid dir (PID 1 creates no mount point on the host's disk), but
    # /run/containerd, whose mount point knet up makes on the host's /run (a tmpfs)
    assert all(any(t.startswith(o + "/") for o in plan["overlays"]) for t in b if t != nodefs.RUNTIME_DIR)
    # parents are bound before what is below them
    targets = [t for _, t, _ in plan["binds"]]
    for i, t in enumerate(targets):
        assert not any(t.startswith(later + "/") for later in targets[i + 1:])


def test_a_worker_has_no_admin_credentials_and_only_the_cas_certificate():
    c = config(storage="etcd")
    b = binds(nodefs.view_plan(c, PATHS, c.workers[0]))
    for secret in ("/etc/kubernetes/admin.conf", "/etc/kubernetes/pki", "/root/.kube/config", "/var/lib/etcd",
                   "/etc/kubernetes/controller-manager.conf"):
        assert secret not in b
    assert b["/etc/kubernetes/pki/ca.crt"] == ("/state/demo/pki/ca.crt", True)
    # what the host may have at kubeadm's paths is not the node's: hidden (an opaque dir where
    # the node binds its own below it)
    assert "/var/lib/etcd" in nodefs.view_plan(c, PATHS, c.workers[0])["hide"]
    assert "/etc/kubernetes" in nodefs.view_plan(c, PATHS, c.workers[0])["hide"]
    assert "/var/lib/etcd" not in nodefs.view_plan(c, PATHS, c.control_plane)["hide"]
    assert b["/etc/kubernetes/kubelet.conf"] == ("/state/demo/kubeconfig/kubelet-node01.conf", True)


def test_no_etcd_dir_without_etcd():
    c = config(storage="sqlite")
    assert "/var/lib/etcd" not in binds(nodefs.view_plan(c, PATHS, c.control_plane))


def test_kubelet_config_file_is_the_kubelet_config_configmaps_configuration():
    c = config()
    text = nodefs.kubelet_config_file(addons.kubelet_configuration(c))
    doc = yaml.safe_load(text)
    assert doc["kind"] == "KubeletConfiguration" and doc["apiVersion"] == "kubelet.config.k8s.io/v1beta1"
    assert doc["staticPodPath"] == "/etc/kubernetes/manifests"
    assert doc["clusterDNS"] == [c.dns_service_ip]
    assert text == addons.kubelet_config_configmap(c)["data"]["kubelet"]


def test_sshd_listens_on_the_node_address_only_and_takes_keys_only():
    c = config()
    text = nodefs.sshd_config(c.workers[0], Path("/k/host_key"))
    lines = set(text.splitlines())
    assert f"ListenAddress {c.workers[0].ip}:22" in lines
    assert not any(line.startswith("ListenAddress") and line != f"ListenAddress {c.workers[0].ip}:22"
                   for line in lines)
    for line in ("HostKey /k/host_key", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
                 "PermitRootLogin prohibit-password"):
        assert line in lines


def test_known_hosts_names_each_node_by_name_and_address():
    c = config()
    keys = {n: f"ssh-ed25519 KEY{n.name} root@{n.name}" for n in c.nodes}
    lines = nodefs.known_hosts(keys).splitlines()
    assert f"node01,{c.workers[0].ip} ssh-ed25519 KEYnode01" in lines
    assert len(lines) == 3


def test_write_node_files_makes_keys_only_the_controlplane_root_holds(tmp_path):
    import json
    import stat

    c = config()
    paths = ClusterPaths(tmp_path / "demo")
    nodefs.write_node_files(c, paths, addons.kubelet_configuration(c))
    client_pub = (tmp_path / "demo/ssh/id_ed25519.pub").read_text().strip()
    assert client_pub.startswith("ssh-ed25519 ")
    for node in c.nodes:
        ndir = paths.node_dir(node.name)
        home = ndir / "ssh/root"
        assert stat.S_IMODE(home.stat().st_mode) == 0o700  # sshd's StrictModes
        assert (home / "authorized_keys").read_text().strip() == client_pub
        assert stat.S_IMODE((home / "authorized_keys").stat().st_mode) == 0o600
        assert (home / "id_ed25519").exists() == node.is_control_plane
        assert len((home / "known_hosts").read_text().splitlines()) == 3
        assert (ndir / "ssh/ssh_host_ed25519_key").exists()
        assert f"ListenAddress {node.ip}:22" in (ndir / "ssh/sshd_config").read_text()
        assert json.loads((ndir / "view.json").read_text()) == json.loads(json.dumps(nodefs.view_plan(c, paths, node)))
        assert yaml.safe_load((ndir / "config.yaml").read_text())["kind"] == "KubeletConfiguration"
    # host keys differ per node; a second run keeps every key
    keys = {n.name: (paths.node_dir(n.name) / "ssh/ssh_host_ed25519_key.pub").read_text() for n in c.nodes}
    assert len(set(keys.values())) == 3
    nodefs.write_node_files(c, paths, addons.kubelet_configuration(c))
    assert (tmp_path / "demo/ssh/id_ed25519.pub").read_text().strip() == client_pub
    assert {n.name: (paths.node_dir(n.name) / "ssh/ssh_host_ed25519_key.pub").read_text() for n in c.nodes} == keys
