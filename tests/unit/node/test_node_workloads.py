import pytest

from knet.node.workloads import container_argv, image_repository, workload_kind

KNET = ["knet"]


@pytest.mark.parametrize("image,repo,kind", [
    pytest.param("registry.k8s.io/kube-proxy:v1.29.0", "kube-proxy", "kube-proxy", id="kube-proxy"),
    pytest.param("registry.k8s.io/coredns/coredns:v1.11.1", "coredns", "coredns", id="coredns"),
    pytest.param("registry.k8s.io/e2e-test-images/agnhost:2.45", "agnhost", "netexec", id="agnhost"),
    pytest.param("nginx", "nginx", "netexec", id="nginx"),
    pytest.param("httpd@sha256:abc", "httpd", "netexec", id="digest"),
    pytest.param("busybox:1.36", "busybox", "program", id="busybox"),
    pytest.param("curlimages/curl", "curl", "program", id="curl"),
])
def test_images_map_to_workloads(image, repo, kind):
    assert image_repository(image) == repo
    assert workload_kind(image) == kind


def test_kube_proxy_drops_its_own_binary():
    c = {"image": "registry.k8s.io/kube-proxy:v1.29.0"}
    argv = container_argv(c, ["/usr/local/bin/kube-proxy", "--config=/x", "--hostname-override=n1"], [], KNET)
    assert argv == ["knet", "kube-proxy", "--config=/x", "--hostname-override=n1"]


def test_coredns_args_pass_through():
    c = {"image": "registry.k8s.io/coredns/coredns:v1.11.1"}
    assert container_argv(c, [], ["-conf", "/etc/coredns/Corefile"], KNET) == \
        ["knet", "dns", "-conf", "/etc/coredns/Corefile"]


def test_agnhost_netexec_keeps_flags():
    c = {"image": "agnhost:2.45"}
    assert container_argv(c, ["/agnhost"], ["netexec", "--http-port=8080", "--udp-port=8081"], KNET) == \
        ["knet", "workload", "netexec", "--http-port=8080", "--udp-port=8081"]


def test_nginx_serves_on_its_container_port_or_80():
    assert container_argv({"image": "nginx", "ports": [{"containerPort": 8000}]}, [], [], KNET) == \
        ["knet", "workload", "netexec", "--http-port=8000"]
    assert container_argv({"image": "nginx:1.25"}, [], [], KNET) == ["knet", "workload", "netexec", "--http-port=80"]


def test_other_images_run_their_command():
    assert container_argv({"image": "busybox"}, ["sleep"], ["3600"], KNET) == ["sleep", "3600"]
    assert container_argv({"image": "unknown/thing"}, [], [], KNET) == ["sleep", "infinity"]
