import pytest

from knet.node.dnsconfig import hosts_file, resolv_conf

HOST = "nameserver 1.1.1.1\nsearch corp.example\noptions edns0\n"


def _pod(**spec):
    return {"metadata": {"name": "web-0", "namespace": "shop"}, "spec": spec}


@pytest.mark.parametrize("spec,want", [
    pytest.param({}, "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
                     "nameserver 10.96.0.10\noptions ndots:5\n", id="ClusterFirst"),
    pytest.param({"dnsPolicy": "Default"}, "search corp.example\nnameserver 1.1.1.1\noptions edns0\n", id="Default"),
    pytest.param({"hostNetwork": True}, "search corp.example\nnameserver 1.1.1.1\noptions edns0\n",
                 id="hostNetwork-ClusterFirst-falls-back"),
    pytest.param({"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"},
                 "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
                 "nameserver 10.96.0.10\noptions ndots:5\n", id="ClusterFirstWithHostNet"),
    pytest.param({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["9.9.9.9"], "searches": ["a.b"],
                                                     "options": [{"name": "ndots", "value": "2"}]}},
                 "search a.b\nnameserver 9.9.9.9\noptions ndots:2\n", id="None+dnsConfig"),
    pytest.param({"dnsConfig": {"options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]}},
                 "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
                 "nameserver 10.96.0.10\noptions ndots:1 single-request\n", id="dnsConfig-overrides-option"),
])
def test_resolv_conf(spec, want):
    assert resolv_conf(_pod(**spec), cluster_dns=["10.96.0.10"], cluster_domain="cluster.local",
                       host_resolv=HOST) == want


def test_hosts_file_has_pod_ip_hostname_and_controlplane():
    text = hosts_file(_pod(), "10.244.1.5", cluster_domain="cluster.local",
                      extra={"controlplane": "172.30.0.2"})
    assert text.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert "10.244.1.5\tweb-0\n" in text and "172.30.0.2\tcontrolplane\n" in text


def test_hosts_file_with_subdomain_and_aliases():
    pod = _pod(hostname="h", subdomain="sub", hostAliases=[{"ip": "1.2.3.4", "hostnames": ["a", "b"]}])
    text = hosts_file(pod, "10.244.1.5", cluster_domain="cluster.local", extra={})
    assert "10.244.1.5\th.sub.shop.svc.cluster.local\th\n" in text
    assert "1.2.3.4\ta\tb\n" in text
