"""Images without containers: what process a container's image and command turn into. Pure.

Known images map to built-in workloads (ARCHITECTURE "Workloads"); any other image runs the
container's command/args as a host program inside the pod's namespaces.
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

NETEXEC_IMAGES = ("agnhost", "netexec", "nginx", "httpd", "echo")
DEFAULT_HTTP_PORT = 80


def knet_argv() -> list[str]:
    """How to run `knet` itself (the installed script when there is one)."""
    found = shutil.which("knet")
    return [found] if found else [sys.executable, "-c", "from knet.cli.main import main; main()"]


def image_repository(image: str) -> str:
    """`registry.k8s.io/kube-proxy:v1.29.0` -> `kube-proxy` (last path part, no tag/digest)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def workload_kind(image: str) -> str:
    repo = image_repository(image)
    if "kube-proxy" in repo:
        return "kube-proxy"
    if "coredns" in repo:
        return "coredns"
    if any(known in repo for known in NETEXEC_IMAGES):
        return "netexec"
    return "program"


def _without_binary(argv: list[str], binary: str) -> list[str]:
    """Drop a leading `/usr/local/bin/kube-proxy`-style path to the image's own binary."""
    if argv and argv[0].rsplit("/", 1)[-1] == binary:
        return argv[1:]
    return argv


def _first_port(container: dict[str, Any], protocol: str) -> int | None:
    for port in container.get("ports") or []:
        if (port.get("protocol") or "TCP") == protocol:
            return int(port["containerPort"])
    return None


def container_argv(container: dict[str, Any], command: list[str], args: list[str],
                   knet: list[str] | None = None) -> list[str]:
    """The host argv a container runs, from its image and its (already expanded) command/args."""
    knet = knet if knet is not None else knet_argv()
    image = container.get("image") or ""
    kind = workload_kind(image)
    if kind == "kube-proxy":
        return [*knet, "kube-proxy", *_without_binary(command, "kube-proxy"), *args]
    if kind == "coredns":
        return [*knet, "dns", *_without_binary(command, "coredns"), *args]
    if kind == "netexec":
        return [*knet, "workload", "netexec", *netexec_flags(container, command, args)]
    if command or args:
        return [*command, *args]
    # An image we do not know, with no command: nothing sensible to run but an idle process.
    return ["sleep", "infinity"]


def netexec_flags(container: dict[str, Any], command: list[str], args: list[str]) -> list[str]:
    """agnhost's `netexec --http-port=8080 --udp-port=8081` keep their flags; nginx-like images
    serve HTTP on their first TCP containerPort (80 by default)."""
    words = [*command, *args]
    if "netexec" in words:
        passed = [w for w in words[words.index("netexec") + 1:] if w.startswith("--")]
        if any(w.startswith("--http-port") for w in passed):
            return passed
        return [f"--http-port={_first_port(container, 'TCP') or 8080}", *passed]
    flags = [f"--http-port={_first_port(container, 'TCP') or DEFAULT_HTTP_PORT}"]
    udp = _first_port(container, "UDP")
    if udp:
        flags.append(f"--udp-port={udp}")
    return flags
