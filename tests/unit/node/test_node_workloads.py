import sys

import pytest

from knet.node.workloads import (
    AGNHOST_MAIN,
    agnhost_argv,
    container_argv,
    effective_argv,
    exec_argv,
    image_repository,
    workload_kind,
)

KNET = ["knet"]
AG = ["agnhost"]
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"


@pytest.mark.parametrize("image,repo,kind", [
    pytest.param("registry.k8s.io/kube-proxy:v1.29.0", "kube-proxy", "kube-proxy", id="kube-proxy"),
    pytest.param("registry.k8s.io/coredns/coredns:v1.11.1", "coredns", "coredns", id="coredns"),
    pytest.param("registry.k8s.io/e2e-test-images/agnhost:2.45", "agnhost", "agnhost", id="agnhost"),
    pytest.param("gcr.io/kubernetes-e2e-test-images/netexec:1.1", "netexec", "agnhost", id="legacy-netexec"),
    pytest.param("nginx", "nginx", "netexec", id="nginx"),
    pytest.param("httpd@sha256:abc", "httpd", "netexec", id="digest"),
    pytest.param("busybox:1.36", "busybox", "program", id="busybox"),
    pytest.param("curlimages/curl", "curl", "program", id="curl"),
])
def test_images_map_to_workloads(image, repo, kind):
    assert image_repository(image) == repo
    assert workload_kind(image) == kind


# The table of "Define a Command and Arguments for a Container" (kubernetes.io tasks docs):
# image ENTRYPOINT [/ep-1], CMD [foo bar]; the container's command and args.
@pytest.mark.parametrize("command,args,runs", [
    ([], [], ["/ep-1", "foo", "bar"]),
    (["/ep-2"], [], ["/ep-2"]),
    ([], ["zoo", "boo"], ["/ep-1", "zoo", "boo"]),
    (["/ep-2"], ["zoo", "boo"], ["/ep-2", "zoo", "boo"]),
])
def test_command_and_args_combine_with_the_image_as_kubernetes_does(command, args, runs):
    assert effective_argv(["/ep-1"], ["foo", "bar"], command, args) == runs


@pytest.mark.parametrize("command,args,runs", [
    # args with the image's ENTRYPOINT /agnhost (the usual e2e form)
    ([], ["netexec", "--http-port=8080", "--udp-port=8081"], ["netexec", "--http-port=8080", "--udp-port=8081"]),
    # space-separated flag values pass through untouched: pflag parses them
    ([], ["netexec", "--http-port", "8080", "--udp-port", "-1"], ["netexec", "--http-port", "8080", "--udp-port", "-1"]),
    # command naming the binary, with or without args
    (["/agnhost", "netexec", "--http-port=9000"], [], ["netexec", "--http-port=9000"]),
    (["/agnhost"], ["serve-hostname", "--udp", "--http=false"], ["serve-hostname", "--udp", "--http=false"]),
    (["agnhost", "porter"], [], ["porter"]),
    # neither: the image's CMD, `pause`
    ([], [], ["pause"]),
    # no defaults are injected: agnhost netexec listens on 8080 whatever containerPort says
    ([], ["netexec"], ["netexec"]),
])
def test_agnhost_image_runs_the_subcommand_it_is_given(command, args, runs):
    c = {"image": AGNHOST, "ports": [{"containerPort": 80}]}
    assert container_argv(c, command, args, KNET, AG) == ["agnhost", *runs]


def test_agnhost_image_with_another_program_runs_that_program():
    c = {"image": AGNHOST}
    assert container_argv(c, ["sh", "-c", "sleep 10"], [], KNET, AG) == ["sh", "-c", "sleep 10"]
    assert container_argv(c, ["/bin/sleep"], ["3600"], KNET, AG) == ["/bin/sleep", "3600"]


def test_legacy_single_purpose_images():
    assert container_argv({"image": "gcr.io/kubernetes-e2e-test-images/netexec:1.1"}, [], ["--http-port=8080"],
                          KNET, AG) == ["agnhost", "netexec", "--http-port=8080"]
    assert container_argv({"image": "gcr.io/google_containers/serve_hostname:v1.4"}, [], [], KNET, AG) == \
        ["agnhost", "serve-hostname"]


def test_agnhost_runs_by_path_without_site_packages():
    argv = agnhost_argv()
    assert argv == [sys.executable, "-I", "-S", str(AGNHOST_MAIN)] and AGNHOST_MAIN.exists()


def test_exec_of_agnhost_in_an_agnhost_container():
    c = {"image": AGNHOST}
    assert exec_argv(c, ["/agnhost", "connect", "s-x:80", "--timeout=1s"], AG) == \
        ["agnhost", "connect", "s-x:80", "--timeout=1s"]
    assert exec_argv(c, ["curl", "-s", "x"], AG) == ["curl", "-s", "x"]
    assert exec_argv({"image": "busybox"}, ["/agnhost", "connect"], AG) == ["/agnhost", "connect"]


def test_kube_proxy_runs_as_its_binary():
    c = {"image": "registry.k8s.io/kube-proxy:v1.29.0"}
    argv = container_argv(c, ["/usr/local/bin/kube-proxy", "--config=/x", "--hostname-override=n1"], [], KNET)
    # the image's tag is the version kube-proxy is (it picks the nftables rule shape)
    assert argv == ["knet", "as-binary", "--image=registry.k8s.io/kube-proxy:v1.29.0", "/usr/local/bin/kube-proxy",
                    "--config=/x", "--hostname-override=n1"]
    # a command without the image's binary: the image's binary runs it
    assert container_argv(c, [], ["--config=/x"], KNET) == [
        "knet", "as-binary", "--image=registry.k8s.io/kube-proxy:v1.29.0", "/usr/local/bin/kube-proxy", "--config=/x"]


def test_coredns_args_follow_its_entrypoint():
    c = {"image": "registry.k8s.io/coredns/coredns:v1.11.1"}
    assert container_argv(c, [], ["-conf", "/etc/coredns/Corefile"], KNET) == \
        ["knet", "as-binary", "/coredns", "-conf", "/etc/coredns/Corefile"]


def test_control_plane_images_run_their_component():
    c = {"image": "registry.k8s.io/kube-apiserver:v1.29.0"}
    assert workload_kind(c["image"]) == "control-plane"
    assert container_argv(c, ["kube-apiserver", "--secure-port=6443"], [], KNET) == \
        ["knet", "as-binary", "--image=registry.k8s.io/kube-apiserver:v1.29.0", "kube-apiserver", "--secure-port=6443"]
    # another image's binary is not this image's: the image's own binary runs the words
    c = {"image": "registry.k8s.io/kube-scheduler:v1.29.0"}
    assert container_argv(c, ["kube-apiserver"], [], KNET) == [
        "knet", "as-binary", "--image=registry.k8s.io/kube-scheduler:v1.29.0", "kube-scheduler", "kube-apiserver"]


def test_nginx_serves_on_its_container_port_or_80():
    assert container_argv({"image": "nginx", "ports": [{"containerPort": 8000}]}, [], [], KNET, AG) == \
        ["agnhost", "netexec", "--http-port=8000", "--udp-port=0", "--index-page=nginx"]
    assert container_argv({"image": "nginx:1.25"}, [], [], KNET, AG) == \
        ["agnhost", "netexec", "--http-port=80", "--udp-port=0", "--index-page=nginx"]
    assert container_argv({"image": "httpd", "ports": [{"containerPort": 53, "protocol": "UDP"}]}, [], [], KNET,
                          AG) == ["agnhost", "netexec", "--http-port=80", "--udp-port=53", "--index-page=httpd"]
    # an echo server has no index page of its own: / stays netexec's NOW
    assert container_argv({"image": "registry.k8s.io/echoserver:1.10"}, [], [], KNET, AG) == \
        ["agnhost", "netexec", "--http-port=80", "--udp-port=0"]


def test_other_images_run_their_command():
    assert container_argv({"image": "busybox"}, ["sleep"], ["3600"], KNET) == ["sleep", "3600"]
    assert container_argv({"image": "unknown/thing"}, [], [], KNET) == ["sleep", "infinity"]
    # busybox's Dockerfile: CMD ["sh"] (no ENTRYPOINT), so args alone replace it.
    assert container_argv({"image": "docker.io/library/busybox:1.36"}, [], [], KNET) == ["sh"]
    assert container_argv({"image": "busybox"}, [], ["echo", "hi"], KNET) == ["echo", "hi"]
