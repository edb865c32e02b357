"""The kubelet's --config (a KubeletConfiguration) and its precedence under the command line, as
upstream's kubelet: defaults < the file < flags given (knet.node.kubeletconfig, knet.cli.kubelet)."""

from __future__ import annotations

import click
import pytest

from knet.cli.kubelet import kubelet_cmd, settings
from knet.cluster import addons, nodefs
from knet.cluster.config import resolve
from knet.node import kubeletconfig

KUBEADM_STYLE = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true, cacheTTL: 0s}
  x509: {clientCAFile: /etc/kubernetes/pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
clusterDNS: [10.96.0.10]
clusterDomain: cluster.local
staticPodPath: /etc/kubernetes/manifests
nodeStatusUpdateFrequency: 1m30s
maxPods: 50
podPidsLimit: 1024
registerWithTaints: [{key: dedicated, value: infra, effect: NoSchedule}]
healthzPort: 10248
"""


def kubelet_settings(tmp_path, text: str | None, *argv: str):
    args = ["--hostname-override=node01", "--node-ip=172.30.0.3", "--cert-dir", str(tmp_path / "pki"), *argv]
    if text is not None:
        (tmp_path / "config.yaml").write_text(text)
        args.append(f"--config={tmp_path / 'config.yaml'}")
    ctx = kubelet_cmd.make_context("kubelet", args)
    return settings(ctx, ctx.params)


@pytest.mark.parametrize(("text", "seconds"), [("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0),
                                               ("0", 0.0), ("2h45m0.5s", 9900.5)])
def test_durations_as_go(text, seconds):
    assert kubeletconfig.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10", "s", "1x", "10s5"])
def test_bad_durations(text):
    with pytest.raises(kubeletconfig.KubeletConfigError, match="invalid duration"):
        kubeletconfig.parse_duration(text)


def test_the_file_sets_what_no_flag_gives(tmp_path):
    cfg = kubelet_settings(tmp_path, KUBEADM_STYLE)
    assert cfg.cluster_dns == ["10.96.0.10"] and cfg.cluster_domain == "cluster.local"
    assert cfg.pod_manifest_path == "/etc/kubernetes/manifests"
    assert cfg.client_ca_file == "/etc/kubernetes/pki/ca.crt"
    assert (cfg.max_pods, cfg.pod_max_pids, cfg.node_status_update_frequency) == (50, 1024, 90.0)
    assert cfg.register_with_taints == [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]
    assert cfg.port == 10250 and cfg.address == "0.0.0.0"  # the defaults where neither says


def test_flags_given_override_the_file(tmp_path):
    cfg = kubelet_settings(tmp_path, KUBEADM_STYLE, "--cluster-dns=10.0.0.10,10.0.0.11", "--max-pods=7",
                           "--pod-manifest-path=/srv/manifests", "--register-with-taints=a=b:NoExecute")
    assert cfg.cluster_dns == ["10.0.0.10", "10.0.0.11"] and cfg.max_pods == 7
    assert cfg.pod_manifest_path == "/srv/manifests"
    assert cfg.register_with_taints == [{"key": "a", "value": "b", "effect": "NoExecute"}]
    assert cfg.cluster_domain == "cluster.local"  # not given: the file's


def test_a_flag_equal_to_the_default_still_wins(tmp_path):
    text = KUBEADM_STYLE.replace("maxPods: 50", "maxPods: 50\nport: 11250")
    assert kubelet_settings(tmp_path, text).port == 11250
    assert kubelet_settings(tmp_path, text, "--port=10250").port == 10250


def test_without_config_the_defaults(tmp_path):
    cfg = kubelet_settings(tmp_path, None)
    assert cfg.cluster_dns == [] and cfg.pod_manifest_path is None and cfg.container_runtime_endpoint == ""
    assert cfg.pod_infra_container_image == "registry.k8s.io/pause:3.9"


def test_serving_certificate_from_cert_dir(tmp_path):
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "kubelet.crt").write_text("c")
    (tmp_path / "pki" / "kubelet.key").write_text("k")
    cfg = kubelet_settings(tmp_path, KUBEADM_STYLE)
    assert (cfg.tls_cert_file, cfg.tls_private_key_file) == (str(tmp_path / "pki" / "kubelet.crt"),
                                                             str(tmp_path / "pki" / "kubelet.key"))
    cfg = kubelet_settings(tmp_path, KUBEADM_STYLE + "tlsCertFile: /x.crt\ntlsPrivateKeyFile: /x.key\n")
    assert cfg.tls_cert_file == "/x.crt"


@pytest.mark.parametrize(("line", "why"), [
    ("cgroupDriver: systemd", "cgroupDriver"),
    ("authorization: {mode: AlwaysAllow}", "authorization.mode"),
    ("authentication: {anonymous: {enabled: true}}", "anonymous"),
    ("clusterDNS: 10.96.0.10", "clusterDNS"),
    ("maxPods: many", "maxPods"),
    ("registerWithTaints: [{key: a, effect: Sometimes}]", "registerWithTaints"),
])
def test_what_knet_cannot_do_is_refused(tmp_path, line, why):
    text = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n" + line + "\n"
    with pytest.raises(click.ClickException, match=why):
        kubelet_settings(tmp_path, text)


def test_not_a_kubelet_configuration(tmp_path):
    with pytest.raises(click.ClickException, match="want kind KubeletConfiguration"):
        kubelet_settings(tmp_path, "apiVersion: v1\nkind: ConfigMap\n")
    with pytest.raises(click.ClickException, match="no such file"):
        ctx = kubelet_cmd.make_context("kubelet", ["--config", str(tmp_path / "missing.yaml")])
        settings(ctx, ctx.params)


def test_no_tls_bootstrap(tmp_path):
    with pytest.raises(click.ClickException, match="no TLS bootstrap"):
        kubelet_settings(tmp_path, None, f"--kubeconfig={tmp_path / 'missing.conf'}",
                         "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf")


def test_knet_ups_config_yaml_is_one_the_kubelet_takes(tmp_path):
    c, _ = resolve({"name": "demo"}, nodes=2, dataplane="real")
    text = nodefs.kubelet_config_file(addons.kubelet_configuration(c))
    cfg = kubelet_settings(tmp_path, text)
    assert cfg.cluster_dns == [c.dns_service_ip] and cfg.cluster_domain == c.dns_domain
    assert cfg.pod_manifest_path == "/etc/kubernetes/manifests"
    assert cfg.client_ca_file == "/etc/kubernetes/pki/ca.crt"
