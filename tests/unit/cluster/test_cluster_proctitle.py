"""Process titles as a kubeadm node's `ps -ef` shows them (knet.proctitle, `knet as-binary`)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from knet import proctitle
from knet.cluster import addons, processes
from knet.cluster.config import resolve
from knet.cluster.down import processes_of
from knet.cluster.manifests import control_plane_manifests
from knet.cluster.paths import ClusterPaths
from knet.node import podenv
from knet.node.workloads import container_argv

KNET = [sys.executable, "-c", "from knet.cli.main import main; main()"]


def test_binaries_name_their_knet_command():
    assert proctitle.command_of("kube-apiserver") == "apiserver"
    assert proctitle.command_of("/usr/local/bin/kube-proxy") == "kube-proxy"
    assert proctitle.command_of("/usr/bin/kubelet") == "kubelet"
    assert proctitle.command_of("/coredns") == "dns"
    assert proctitle.command_of("/usr/local/bin/knet-netpol") == "netpol-controller"
    assert proctitle.command_of("kube-apiserver-extra") is None
    assert proctitle.command_of("/usr/bin/python3") is None


def test_title_and_thread_name_are_as_the_kernel_gives_an_execd_binary():
    argv = ["kube-controller-manager", "--allocate-node-cidrs=true", "--cluster-cidr=10.244.0.0/16"]
    assert proctitle.title(argv) == "kube-controller-manager --allocate-node-cidrs=true --cluster-cidr=10.244.0.0/16"
    assert proctitle.comm(argv) == "kube-controller"  # 15 bytes, as `ps -e` shows kubeadm's
    assert proctitle.comm(["/usr/local/bin/kube-proxy", "--config=x"]) == "kube-proxy"
    assert proctitle.comm([]) == ""


def test_a_retitled_command_line_reads_back_as_words():
    assert proctitle.cmdline_words(b"kube-apiserver --secure-port=6443 --v=2\0") == \
        ["kube-apiserver", "--secure-port=6443", "--v=2"]
    # an ordinary command line keeps its arguments, spaces and all
    assert proctitle.cmdline_words(b"sh\0-c\0echo a b\0") == ["sh", "-c", "echo a b"]
    assert proctitle.cmdline_words(b"/usr/bin/sleep\0") == ["/usr/bin/sleep"]
    assert proctitle.cmdline_words(b"") == []


def _pod_containers(config):
    """(name, container) of each knet component's pod spec that `knet up` creates."""
    paths = ClusterPaths(Path("/state/demo"))
    for name, pod in control_plane_manifests(config, paths).items():
        yield name, pod["spec"]["containers"][0]
    for obj in (addons.kube_proxy_daemonset(config), addons.network_addon_daemonset(config, "/state/demo/nodes"),
                addons.coredns_deployment(config)):
        for c in obj["spec"]["template"]["spec"]["containers"]:
            yield f"{obj['metadata']['name']}/{c['name']}", c


def test_each_component_is_titled_with_its_pod_specs_command_line():
    config, _ = resolve({"name": "demo"})
    titles = {}
    for name, container in _pod_containers(config):
        command, args = podenv.command_and_args(container, {"NODE_NAME": "node01"})
        argv = container_argv(container, command, args, knet=["knet"])
        assert argv[:2] == ["knet", "as-binary"], name
        binary_argv = argv[3:] if argv[2].startswith("--image=") else argv[2:]  # as-binary's own option
        titles[name] = proctitle.title(binary_argv)
        if container.get("command"):  # exactly what `kubectl get pod -o yaml` shows, $(NODE_NAME) expanded
            assert titles[name] == " ".join([*command, *args]), name
    assert titles["kube-apiserver.yaml"].startswith("kube-apiserver --advertise-address=172.30.0.2 ")
    assert titles["kube-controller-manager.yaml"].startswith("kube-controller-manager --allocate-node-cidrs=true ")
    assert "--cluster-cidr=10.244.0.0/16" in titles["kube-controller-manager.yaml"]
    assert titles["kube-scheduler.yaml"].startswith("kube-scheduler --authentication-kubeconfig=")
    # the reference transcript's kube-proxy line, word for word
    assert titles["kube-proxy/kube-proxy"] == \
        "/usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf --hostname-override=node01"
    assert titles["knet-net/cni"].startswith("/usr/local/bin/knet-cni-agent --ipalloc-range=10.244.0.0/16 ")
    assert titles["knet-net/netpol"].startswith("/usr/local/bin/knet-netpol ")
    assert titles["coredns/coredns"] == "/coredns -conf /etc/coredns/Corefile"  # the image's ENTRYPOINT, then args


@pytest.mark.parametrize("binary", sorted(proctitle.BINARIES))
def test_as_binary_runs_the_knet_command_under_the_binarys_name(binary):
    out = subprocess.run([*KNET, "as-binary", f"/usr/local/bin/{binary}", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith(f"Usage: {binary} [OPTIONS]")
    knet_help = subprocess.run([*KNET, proctitle.BINARIES[binary], "--help"], capture_output=True, text=True,
                               check=True).stdout
    assert out.split("\n", 1)[1] == knet_help.split("\n", 1)[1]  # the same options as `knet COMMAND`


def test_as_binary_refuses_what_it_does_not_stand_in_for():
    p = subprocess.run([*KNET, "as-binary", "/bin/sh", "-c", "id"], capture_output=True, text=True)
    assert p.returncode == 2 and "'/bin/sh' is none of the binaries knet stands in for" in p.stderr
    p = subprocess.run([*KNET, "as-binary", "kube-scheduler", "--no-such-flag"], capture_output=True, text=True)
    assert p.returncode == 2 and "No such option '--no-such-flag'" in p.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_running_component_shows_as_its_binary(tmp_path):
    """A real kube-apiserver (memory storage, plain HTTP) run from its image: `ps` shows its title
    (without as-binary's --image), its thread name (the main thread's, `pgrep -x`'s) is the
    binary's, /version is the image's tag, and knet down and component_of still find it by its
    command line."""
    paths = ClusterPaths(tmp_path / "demo")
    port = _free_port()
    argv = ["kube-apiserver", "--allow-insecure-http", "--bind-address=127.0.0.1", f"--secure-port={port}",
            "--storage=memory:", f"--data-dir={paths.data}"]
    proc = subprocess.Popen([*KNET, "as-binary", "--image=registry.k8s.io/kube-apiserver:v1.29.7", *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        cmdline = b""
        while time.monotonic() < deadline and not cmdline.startswith(b"kube-apiserver "):
            time.sleep(0.05)
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert cmdline.rstrip(b"\0") == " ".join(argv).encode()  # one string, NUL-padded to the old length
        ps = subprocess.run(["ps", "-ww", "-o", "comm=,args=", "-p", str(proc.pid)], capture_output=True,
                            text=True, check=True).stdout
        assert ps.split() == ["kube-apiserver", *argv]
        assert "python" not in ps
        while time.monotonic() < deadline:  # it serves: the title is the running component's
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("kube-apiserver did not listen")
        assert Path(f"/proc/{proc.pid}/comm").read_text() == "kube-apiserver\n"  # what pgrep -x matches
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=10) as resp:
            assert json.load(resp)["gitVersion"] == "v1.29.7"
        assert processes.proc_cmdline(proc.pid) == argv
        assert processes.component_of(processes.proc_cmdline(proc.pid)) == "apiserver"
        assert proc.pid in {r.pid for r in processes_of(paths)}  # knet down finds it by the state dir
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("storage", ["etcd", "sqlite"])
def test_every_flag_knet_up_passes_the_control_plane_is_one_its_component_takes(tmp_path, storage):
    """kubeadm's flags that knet's components do not take are not passed (they would refuse to
    start): each static pod's command parses as its component's command line, files and all."""
    import click

    from knet.cli.main import cli
    from knet.cluster import bootstrap

    config, _ = resolve({"name": "demo", "storage": storage}, allow_etcd=True)
    paths = ClusterPaths(tmp_path / "demo")
    bootstrap.write_config(config, paths)
    bootstrap.write_pki(config, paths)
    for name, pod in control_plane_manifests(config, paths).items():
        binary, *args = pod["spec"]["containers"][0]["command"]
        if binary == "etcd":
            continue  # the real etcd
        command = cli.commands[proctitle.command_of(binary)]
        try:
            command.make_context(binary, list(args))
        except click.UsageError as exc:
            pytest.fail(f"{name}: {exc.format_message()}")
    refused = cli.commands["apiserver"]
    with pytest.raises(click.NoSuchOption):  # a kubeadm flag knet does not implement
        refused.make_context("kube-apiserver", ["--allow-privileged=true"])
