"""Corefile parsing: the kubeadm default, other shapes CoreDNS accepts, and errors."""

from __future__ import annotations

import pytest

from knet.dns.corefile import (
    KUBEADM_COREFILE,
    CorefileError,
    parse_corefile,
    resolv_conf_nameservers,
    upstream_addresses,
)


def test_dns_corefile_kubeadm_default():
    config = parse_corefile(KUBEADM_COREFILE)
    [b] = config.blocks
    assert (b.zones, b.port) == (["."], 53)
    k = b.kubernetes
    assert k.zones == ["cluster.local.", "in-addr.arpa.", "ip6.arpa."]
    assert (k.pods, k.fallthrough, k.ttl) == ("insecure", ("in-addr.arpa.", "ip6.arpa."), 30)
    assert (b.health, b.ready, b.prometheus) == (":8080", ":8181", ":9153")
    assert b.forward.from_zone == "." and b.forward.to == ["/etc/resolv.conf"] and b.forward.max_concurrent == 1000
    assert b.cache.ttl == 30 and b.cache.denial_ttl == 30
    assert b.reload == (30.0, 15.0) and b.loadbalance and b.loop and b.errors and b.lameduck == 5.0
    assert config.ignored() == []


def test_dns_corefile_shapes_and_ignored():
    text = """
    # comment
    cluster.local:1053 example.org:1053 {
        kubernetes {
            namespaces a b   # only these
            endpoint_pod_names
            fallthrough
            noendpoints
        }
        whoami
        reload 5s 1s
    }
    dns://.:1054 {
        forward . 10.0.0.1:5353 [fd00::1]:53 10.0.0.2 {
            max_concurrent 10
            policy sequential
        }
        cache 10 {
            denial 100 5
            prefetch 10
        }
        prometheus localhost:9999
    }
    """
    config = parse_corefile(text)
    a, b = config.blocks
    assert (a.zones, a.port) == (["cluster.local.", "example.org."], 1053)
    assert a.kubernetes.zones == ["cluster.local.", "example.org."]
    assert a.kubernetes.namespaces == {"a", "b"} and a.kubernetes.endpoint_pod_names
    assert a.kubernetes.fallthrough == ()
    assert a.reload == (5.0, 1.0)
    assert (b.zones, b.port, b.prometheus) == (["."], 1054, "localhost:9999")
    assert upstream_addresses(b.forward.to) == [("10.0.0.1", 5353), ("fd00::1", 53), ("10.0.0.2", 53)]
    assert b.forward.max_concurrent == 10 and b.cache.ttl == 10 and b.cache.denial_ttl == 5
    assert config.ignored() == ["cluster.local.:1053 whoami", "cluster.local.:1053 kubernetes noendpoints",
                                ".:1054 forward policy", ".:1054 cache prefetch"]


def test_dns_corefile_env_and_resolv_conf(monkeypatch):
    monkeypatch.setenv("DNS_DOMAIN", "corp.internal")
    config = parse_corefile(".:53 {\n kubernetes {$DNS_DOMAIN}\n forward . /etc/resolv.conf\n}\n")
    assert config.blocks[0].kubernetes.zones == ["corp.internal."]
    resolv = "search a.svc b\nnameserver 10.255.255.53 # the host's\noptions ndots:5\nnameserver 127.0.0.53\n"
    assert resolv_conf_nameservers(resolv) == ["10.255.255.53", "127.0.0.53"]
    assert upstream_addresses(["/etc/resolv.conf"], read_file=lambda _p: resolv) == [
        ("10.255.255.53", 53), ("127.0.0.53", 53)]


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param(".:53 {\n errors\n", id="unclosed"),
    pytest.param(".:53 {\n kubernetes {\n pods sometimes\n }\n}\n", id="bad-pods"),
    pytest.param(".:53 {\n kubernetes {\n ttl 99999\n }\n}\n", id="bad-ttl"),
    pytest.param(".:53 {\n reload 1s\n}\n", id="reload-too-fast"),
    pytest.param(".:53 {\n forward .\n}\n", id="forward-without-to"),
    pytest.param(".:53 }\n", id="stray-brace"),
])
def test_dns_corefile_errors(text):
    with pytest.raises(CorefileError):
        parse_corefile(text)
