"""KubeProxyConfiguration parsing (kubeadm's ConfigMap), `knet proxy render`, /healthz."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from knet.cli.main import cli
from knet.proxy.netfilter import FakeNetfilter
from knet.proxy.options import RenderOptions, parse_duration, parse_kube_proxy_config
from knet.proxy.proxier import Proxier
from knet.proxy.server import healthz_body

from .proxy_golden_helpers import GOLDEN

KUBEADM_CONFIG = """\
apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 0.0.0.0
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
clusterCIDR: 10.244.0.0/16
conntrack:
  maxPerCore: null
  tcpBeLiberal: false
  udpTimeout: 0s
healthzBindAddress: ""
iptables:
  localhostNodePorts: null
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
kind: KubeProxyConfiguration
metricsBindAddress: ""
mode: ""
nftables:
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
nodePortAddresses: null
"""


def test_kubeadm_configmap_means_upstream_defaults() -> None:
    cfg = parse_kube_proxy_config(KUBEADM_CONFIG)
    assert cfg.mode == "iptables" and cfg.cluster_cidr == "10.244.0.0/16"
    assert cfg.kubeconfig == "/var/lib/kube-proxy/kubeconfig.conf"
    assert (cfg.masquerade_bit, cfg.localhost_node_ports, cfg.sync_period, cfg.min_sync_period) == (14, True, 30.0, 1.0)
    assert cfg.metrics_bind_address == "127.0.0.1:10249" and cfg.healthz_bind_address == "0.0.0.0:10256"
    assert cfg.node_port_addresses == []


def test_nftables_mode_reads_its_own_section() -> None:
    text = KUBEADM_CONFIG.replace('mode: ""', "mode: nftables").replace(
        "nftables:\n  masqueradeAll: false\n  masqueradeBit: null\n  minSyncPeriod: 0s\n  syncPeriod: 0s",
        "nftables:\n  masqueradeAll: true\n  masqueradeBit: 5\n  minSyncPeriod: 500ms\n  syncPeriod: 1m30s")
    cfg = parse_kube_proxy_config(text)
    assert (cfg.mode, cfg.masquerade_all, cfg.masquerade_bit, cfg.min_sync_period, cfg.sync_period) == \
        ("nftables", True, 5, 0.5, 90.0)


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="ipvs"):
        parse_kube_proxy_config(KUBEADM_CONFIG.replace('mode: ""', "mode: ipvs"))


@pytest.mark.parametrize(("text", "seconds"), [("0s", 7.0), ("", 7.0), ("250ms", 0.25), ("1h2m3s", 3723.0)])
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, 7.0) == seconds


def test_render_command_prints_upstream_rules_without_root() -> None:
    result = CliRunner().invoke(cli, ["proxy", "render", "--mode", "iptables", "--node", "test-node",
                                      "--node-ip", "192.168.0.2", "--cluster-cidr", "10.0.0.0/8",
                                      "-f", str(GOLDEN / "overall.yaml")])
    assert result.exit_code == 0, result.output
    assert "-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 -> 10.180.0.1:80\" -j " \
           "KUBE-SEP-SXIVWICOYRO3J4NJ" in result.output
    assert "-j MASQUERADE --random-fully" in result.output  # a real iptables has --random-fully
    nft = CliRunner().invoke(cli, ["proxy", "render", "--mode", "nftables", "--node", "test-node",
                                   "-f", str(GOLDEN / "overall.yaml")])
    assert nft.exit_code == 0 and "add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80" in nft.output
    # a newer kube-proxy's rules: v1.37 DNATs a one-endpoint Service with no map and no endpoint chain
    new = CliRunner().invoke(cli, ["proxy", "render", "--mode", "nftables", "--node", "test-node",
                                   "--kubernetes-version", "v1.37.0", "-f", str(GOLDEN / "overall.yaml")])
    assert new.exit_code == 0, new.output
    assert "service-ULMVA6XW-ns1/svc1/tcp/p80 meta l4proto tcp dnat to 10.180.0.1:80" in new.output
    assert "endpoint-5OJB2KTY" not in new.output and "endpoint-5OJB2KTY" in nft.output


def test_render_accepts_kubectl_list_output(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "list.yaml").write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: Service, metadata: {namespace: a, name: b}, spec: {clusterIP: 10.96.0.9,"
        " ports: [{port: 53, protocol: UDP}]}}\n")
    result = CliRunner().invoke(cli, ["proxy", "render", "-f", str(tmp_path / "list.yaml")])
    assert result.exit_code == 0, result.output
    assert '"a/b has no endpoints" -m udp -p udp -d 10.96.0.9 --dport 53 -j REJECT' in result.output


def test_healthz_is_unhealthy_until_synced_and_when_changes_wait_too_long() -> None:
    p = Proxier("iptables", RenderOptions(), FakeNetfilter(), hostname="n", sync_period=30)
    assert healthz_body(p, now=1000.0)[0] == 503
    p.last_sync_ok = 990.0
    assert healthz_body(p, now=1000.0)[0] == 200
    p.queued_since = 930.0  # a change queued 70 s ago, more than 2 x syncPeriod
    status, body = healthz_body(p, now=1000.0)
    assert status == 503 and body["lastUpdated"].endswith("Z") and body["nodeEligible"] is True


def test_health_check_node_ports_report_local_endpoints() -> None:
    import json

    from knet.proxy.healthcheck import desired_health_checks, health_response
    from knet.proxy.model import state_from_objects

    from .proxy_golden_helpers import load_objects
    state = state_from_objects(load_objects("etp_local.yaml"), "test-node")
    assert desired_health_checks(state.services, state.endpoints) == {30000: ("ns1", "svc1", 1)}
    elsewhere = state_from_objects(load_objects("etp_local.yaml"), "other-node")
    assert desired_health_checks(elsewhere.services, elsewhere.endpoints) == {30000: ("ns1", "svc1", 0)}
    status, body = health_response("ns1", "svc1", 0)
    assert status == 503 and json.loads(body)["localEndpoints"] == 0
    assert health_response("ns1", "svc1", 2)[0] == 200


async def test_health_check_server_answers_on_the_node_port() -> None:
    import socket

    import aiohttp

    from knet.proxy.healthcheck import HealthCheckServers
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    servers = HealthCheckServers(bind="127.0.0.1")
    try:
        await servers.update({port: ("ns1", "svc1", 0)})
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/") as r:
                assert r.status == 503
            await servers.update({port: ("ns1", "svc1", 3)})
            async with session.get(f"http://127.0.0.1:{port}/") as r:
                assert r.status == 200 and (await r.json())["localEndpoints"] == 3
    finally:
        await servers.close()
