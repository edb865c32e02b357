"""Images without containers: what process a container's image and command turn into. Pure.

Known images map to built-in workloads (ARCHITECTURE "Workloads"); any other image runs the
container's command/args as a host program inside the pod's namespaces.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from knet.node.agnhost.webpages import INDEX_PAGES

# Images whose processes are knet's own (the image's binary -> what stands in for it).
NETEXEC_IMAGES = ("nginx", "httpd", "echo")
DEFAULT_HTTP_PORT = 80
AGNHOST_MAIN = Path(__file__).with_name("agnhost") / "main.py"

# The ENTRYPOINT and CMD of the test images knet knows (their Dockerfiles), which Kubernetes
# combines with a container's command/args (see `effective_argv`).
IMAGE_DEFAULTS: dict[str, tuple[list[str], list[str]]] = {
    "agnhost": (["/agnhost"], ["pause"]),            # test/images/agnhost/Dockerfile
    "netexec": (["/netexec"], []),                   # the pre-agnhost e2e images
    "serve_hostname": (["/serve_hostname"], []),
    "serve-hostname": (["/serve_hostname"], []),
    "porter": (["/porter"], []),
}
# Images of host programs whose Dockerfile has a CMD: what a container of one without command
# and args runs (busybox's `sh`, which reads its stdin: `kubectl run -it --image=busybox`).
PROGRAM_IMAGE_CMD: dict[str, list[str]] = {"busybox": ["sh"]}
# A binary of those images -> the agnhost subcommand it is (None: agnhost itself, whose first
# argument names the subcommand).
AGNHOST_BINARIES: dict[str, str | None] = {
    "agnhost": None, "agnhost-2": None,
    "netexec": "netexec", "serve_hostname": "serve-hostname", "serve-hostname": "serve-hostname",
    "porter": "porter",
}


# kubeadm's control-plane images: knet's own components, as kube-proxy's and CoreDNS's are.
CONTROL_PLANE_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
# The binaries of knet's component images (their basenames; the first one is what the image runs
# when the container's command names none of them: kubeadm's images' paths, CoreDNS's ENTRYPOINT).
COMPONENT_BINARIES = {"kube-proxy": ("/usr/local/bin/kube-proxy",), "coredns": ("/coredns",),
                      "knet-net": ("/usr/local/bin/knet-netpol", "/usr/local/bin/knet-cni-agent"),
                      "ingress-nginx": ("/nginx-ingress-controller",)}
# ingress-nginx's controller image (registry.k8s.io/ingress-nginx/controller): knet's ingress
# controller (knet.ingress), taking the same flags.
INGRESS_NGINX_IMAGE = "ingress-nginx/controller"


def knet_argv() -> list[str]:
    """How to run `knet` itself (the installed script when there is one)."""
    # The interpreter's own script first: a container sees the interpreter's prefix, not the
    # PATH's shims (pyenv's are shell scripts calling pyenv).
    beside = Path(sys.executable).with_name("knet")
    found = str(beside) if beside.is_file() else shutil.which("knet")
    return [found] if found else [sys.executable, "-c", "from knet.cli.main import main; main()"]


def agnhost_argv() -> list[str]:
    """How to run knet's agnhost: by path, isolated and without site-packages (stdlib only), so it
    starts in tens of milliseconds and runs the kubelet's own sources whatever the container's env."""
    return [sys.executable, "-I", "-S", str(AGNHOST_MAIN)]


def image_repository(image: str) -> str:
    """`registry.k8s.io/kube-proxy:v1.29.0` -> `kube-proxy` (last path part, no tag/digest)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def _image_defaults(image: str) -> tuple[list[str], list[str]] | None:
    repo = image_repository(image)
    if "agnhost" in repo:
        return IMAGE_DEFAULTS["agnhost"]
    return IMAGE_DEFAULTS.get(repo)


def workload_kind(image: str) -> str:
    repo = image_repository(image)
    if repo in CONTROL_PLANE_IMAGES:
        return "control-plane"
    if INGRESS_NGINX_IMAGE in image.split("@", 1)[0]:
        return "ingress-nginx"
    if "kube-proxy" in repo:
        return "kube-proxy"
    if "coredns" in repo:
        return "coredns"
    if repo == "knet-net":
        return "knet-net"
    if _image_defaults(image) is not None:
        return "agnhost"
    if any(known in repo for known in NETEXEC_IMAGES):
        return "netexec"
    return "program"


def effective_argv(entrypoint: list[str], cmd: list[str], command: list[str], args: list[str]) -> list[str]:
    """What a container runs, as Kubernetes combines its command/args with the image's
    ENTRYPOINT/CMD: command replaces the entrypoint (and drops CMD); args replace CMD."""
    if command:
        return [*command, *args]
    return [*entrypoint, *(args if args else cmd)]


def agnhost_words(argv: list[str]) -> list[str] | None:
    """`/agnhost netexec --http-port 8080` -> ["netexec", "--http-port", "8080"]; a legacy image's
    `/netexec --http-port=8080` -> ["netexec", "--http-port=8080"]; None: not agnhost (e.g. `sh -c`)."""
    if not argv:
        return None
    binary = argv[0].rsplit("/", 1)[-1]
    if binary not in AGNHOST_BINARIES:
        return None
    sub = AGNHOST_BINARIES[binary]
    return argv[1:] if sub is None else [sub, *argv[1:]]


def component_argv(kind: str, image: str, command: list[str], args: list[str]) -> list[str]:
    """The command line of a knet component's container as its image would run it: its command
    and args, after the image's binary unless the command starts with one of the image's
    binaries (CoreDNS's ENTRYPOINT `/coredns` before `-conf …`)."""
    binaries = (image_repository(image),) if kind == "control-plane" else COMPONENT_BINARIES[kind]
    argv = [*command, *args]
    if argv and os.path.basename(argv[0]) in {os.path.basename(b) for b in binaries}:
        return argv
    return [binaries[0], *argv]


def _first_port(container: dict[str, Any], protocol: str) -> int | None:
    for port in container.get("ports") or []:
        if (port.get("protocol") or "TCP") == protocol:
            return int(port["containerPort"])
    return None


def container_argv(container: dict[str, Any], command: list[str], args: list[str],
                   knet: list[str] | None = None, agnhost: list[str] | None = None) -> list[str]:
    """The host argv a container runs, from its image and its (already expanded) command/args."""
    image = container.get("image") or ""
    kind = workload_kind(image)
    if kind in ("control-plane", "kube-proxy", "coredns", "knet-net", "ingress-nginx"):
        # knet's own components, under the image's binary name: `ps` in the node shows the
        # container's command line (knet.cli.binary).
        knet = knet if knet is not None else knet_argv()
        # A control-plane image's tag is the version the binary is: kube-apiserver's /version
        # answers it (`kubectl version` shows the server at the cluster's kubernetesVersion, as
        # its nodes). kubectl 1.29, which version-matching dispatchers then run, speaks SPDY for
        # exec/attach/port-forward, which knet serves too (knet.api.spdyrelay).
        # kube-proxy's tag also picks the nftables rule shape it writes (knet.proxy.nftables.Shape).
        image_flag = [f"--image={image}"] if kind in ("control-plane", "kube-proxy") else []
        return [*knet, "as-binary", *image_flag, *component_argv(kind, image, command, args)]
    agnhost = agnhost if agnhost is not None else agnhost_argv()
    if kind == "agnhost":
        entrypoint, cmd = _image_defaults(image) or ([], [])
        argv = effective_argv(entrypoint, cmd, command, args)
        words = agnhost_words(argv)
        return [*agnhost, *words] if words is not None else argv
    if kind == "netexec":
        return [*agnhost, "netexec", *web_server_flags(container)]
    if command or args:
        return [*command, *args]
    if image_repository(image) in PROGRAM_IMAGE_CMD:
        return list(PROGRAM_IMAGE_CMD[image_repository(image)])
    # An image we do not know, with no command: nothing sensible to run but an idle process.
    return ["sleep", "infinity"]


def exec_argv(container: dict[str, Any], command: list[str], agnhost: list[str] | None = None) -> list[str]:
    """What `kubectl exec POD -- COMMAND` runs in a container: an agnhost image's `/agnhost connect
    ...` (how upstream's NetworkPolicy tests probe) is knet's agnhost; anything else as given."""
    if workload_kind(container.get("image") or "") == "agnhost":
        words = agnhost_words(command)
        if words is not None:
            return [*(agnhost if agnhost is not None else agnhost_argv()), *words]
    return command


def web_server_flags(container: dict[str, Any]) -> list[str]:
    """nginx/httpd/echoserver-like images: agnhost netexec on their first TCP containerPort (80 by
    default) and on a declared UDP port. Without one, UDP port 0: an ephemeral port nobody will
    call, which holds no fixed port (two such containers share a pod) yet makes netexec's
    /healthz and /readyz answer 200, as a web server's health paths do."""
    udp = _first_port(container, "UDP")
    flags = [f"--http-port={_first_port(container, 'TCP') or DEFAULT_HTTP_PORT}", f"--udp-port={udp or 0}"]
    server = next((name for name in INDEX_PAGES if name in image_repository(container.get("image") or "")), None)
    return [*flags, f"--index-page={server}"] if server else flags
