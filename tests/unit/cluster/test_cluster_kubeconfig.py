"""Merging a cluster's context into the user's kubeconfig and removing it again, as kind does."""

from __future__ import annotations

from knet.cluster import kubeconfig

ADMIN = {
    "apiVersion": "v1", "kind": "Config",
    "clusters": [{"name": "kubernetes", "cluster": {"server": "https://172.30.0.2:6443",
                                                    "certificate-authority-data": "Q0E="}}],
    "users": [{"name": "kubernetes-admin", "user": {"client-certificate-data": "Qw==", "client-key-data": "Sw=="}}],
    "contexts": [{"name": "kubernetes-admin@kubernetes",
                  "context": {"cluster": "kubernetes", "user": "kubernetes-admin"}}],
    "current-context": "kubernetes-admin@kubernetes",
}
OTHER = {
    "apiVersion": "v1", "kind": "Config",
    "clusters": [{"name": "prod", "cluster": {"server": "https://prod:6443"}}],
    "users": [{"name": "prod", "user": {"token": "t"}}],
    "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod"}}],
    "current-context": "prod",
}


def names(cfg, section):
    return [e["name"] for e in cfg.get(section, [])]


def test_user_kubeconfig_path_prefers_the_first_kubeconfig_entry():
    assert str(kubeconfig.user_kubeconfig_path({"KUBECONFIG": "/a/one:/b/two", "HOME": "/h"})) == "/a/one"
    assert str(kubeconfig.user_kubeconfig_path({"KUBECONFIG": "", "HOME": "/h"})) == "/h/.kube/config"


def test_merge_keeps_other_entries_and_switches_context():
    merged = kubeconfig.merge_entries(OTHER, kubeconfig.rename_entries(ADMIN, "knet-demo"))
    for section in ("clusters", "users", "contexts"):
        assert names(merged, section) == ["prod", "knet-demo"]
    assert merged["current-context"] == "knet-demo"
    ctx = merged["contexts"][1]["context"]
    assert ctx == {"cluster": "knet-demo", "user": "knet-demo"}
    assert merged["clusters"][1]["cluster"]["server"] == "https://172.30.0.2:6443"


def test_merge_twice_replaces_instead_of_duplicating():
    once = kubeconfig.merge_entries(OTHER, kubeconfig.rename_entries(ADMIN, "knet-demo"))
    twice = kubeconfig.merge_entries(once, kubeconfig.rename_entries(ADMIN, "knet-demo"))
    assert names(twice, "clusters") == ["prod", "knet-demo"]


def test_remove_restores_the_other_entries_and_clears_current_context():
    merged = kubeconfig.merge_entries(OTHER, kubeconfig.rename_entries(ADMIN, "knet-demo"))
    pruned = kubeconfig.remove_entries(merged, "knet-demo")
    for section in ("clusters", "users", "contexts"):
        assert names(pruned, section) == ["prod"]
    assert pruned["current-context"] == ""


def test_install_and_uninstall_a_file(tmp_path):
    path = tmp_path / "kube" / "config"
    kubeconfig.install(path, ADMIN, "knet-a")
    kubeconfig.install(path, ADMIN, "knet-b")
    cfg = kubeconfig.read(path)
    assert names(cfg, "contexts") == ["knet-a", "knet-b"]
    assert cfg["current-context"] == "knet-b"
    assert (path.stat().st_mode & 0o777) == 0o600
    assert kubeconfig.uninstall(path, "knet-b")
    cfg = kubeconfig.read(path)
    assert names(cfg, "contexts") == ["knet-a"]
    assert not kubeconfig.uninstall(tmp_path / "missing", "knet-a")
