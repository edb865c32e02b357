"""The kubelet's /metrics, /configz and /logs/ (what `kubectl get --raw
/api/v1/nodes/NODE/proxy/metrics` and friends read through the apiserver's nodes/proxy), as the
upstream kubelet serves them (pkg/kubelet/server/server.go):

- /metrics: its own Prometheus metrics (kubelet_node_name, kubelet_running_pods,
  kubelet_running_containers by container_state, process_start_time_seconds,
  kubernetes_build_info), text format 0.0.4;
- /configz: `{"kubeletconfig": {...}}`, the KubeletConfiguration (v1beta1 field names) the kubelet
  runs with;
- /logs/: the node's /var/log through Go's http.FileServer (enableSystemLogHandler, kubeadm's
  default; enableSystemLogQuery is off, so ?query= is not a node log query): a directory is an
  HTML listing, a file its content, never anything outside /var/log.

The builders (`metrics_text`, `configz`, `dir_listing`, `log_target`) are pure; the handlers read
the kubelet's state and the file system. The kubelet's authorizer (node/apiauth.py) asks the
apiserver for nodes/metrics, nodes/proxy and nodes/log respectively."""

from __future__ import annotations

import html
import mimetypes
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from knet.api.promexport import Gauge

if TYPE_CHECKING:
    from knet.node.agent import Kubelet
    from knet.node.config import KubeletConfig

LOG_DIR = "/var/log"  # the kubelet's logServer: http.Dir("/var/log/")
PROCESS_START = time.time()
_NOT_FOUND = "404 page not found\n"


# --- /metrics ------------------------------------------------------------------------------------
def container_state(record_state: str, container_id: str) -> str | None:
    """A container's CRI state as kubelet_running_containers labels it (running, exited), None
    for one that has no container yet (waiting for its first start)."""
    if record_state == "running":
        return "running"
    return "exited" if container_id else None


def metrics_text(node: str, version: str, pods: Iterable[tuple[bool, Iterable[tuple[str, str]]]],
                 started: float) -> str:
    """The kubelet's /metrics for NODE: PODS gives each pod as (its sandbox is running, its
    containers as (state, container id))."""
    build = Gauge("kubernetes_build_info", "[ALPHA] A metric with a constant '1' value labeled by major, minor, git "
                  "version, git commit, git tree state, build date, Go version, and compiler from which Kubernetes "
                  "was built, and platform on which it is running.")
    major, _, rest = version.lstrip("v").partition(".")
    minor = rest.partition(".")[0]
    build.set((("build_date", ""), ("compiler", "cpython"), ("git_commit", ""), ("git_tree_state", ""),
               ("git_version", version), ("go_version", ""), ("major", major), ("minor", minor),
               ("platform", "linux/amd64")), 1)
    node_name = Gauge("kubelet_node_name", "[ALPHA] The node's name. The count is always 1.")
    node_name.set((("node", node),), 1)
    running_pods = Gauge("kubelet_running_pods", "[ALPHA] Number of pods that have a running pod sandbox")
    containers = Gauge("kubelet_running_containers", "[ALPHA] Number of containers currently running")
    sandboxes = 0
    for sandbox_running, runs in pods:
        sandboxes += sandbox_running
        for state, container_id in runs:
            label = container_state(state, container_id)
            if label is not None:
                containers.inc((("container_state", label),))
    running_pods.set((), sandboxes)
    start = Gauge("process_start_time_seconds", "[ALPHA] Start time of the process since unix epoch in seconds.")
    start.set((), started)
    families = (build, node_name, containers, running_pods, start)
    return "\n".join(line for f in families for line in f.lines()) + "\n"


# --- /configz ------------------------------------------------------------------------------------
def go_duration(seconds: float) -> str:
    """time.Duration.String for whole milliseconds: 10s, 1m0s, 5m0s, 1h0m0s, 500ms."""
    ms = round(seconds * 1000)
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s = f"{rem / 1000:g}s"
    if h:
        return f"{h}h{m}m{s}"
    return f"{m}m{s}" if m else s


def configz(cfg: KubeletConfig) -> dict[str, Any]:
    """/configz: the kubelet's configuration as KubeletConfiguration (no kind or apiVersion)."""
    webhook = bool(cfg.client_ca_file)  # with a client CA: anonymous off, webhook authn/authz
    config: dict[str, Any] = {
        "enableServer": True,
        "staticPodPath": cfg.pod_manifest_path or "",
        "podLogsDir": "/var/log/pods",
        "syncFrequency": "1m0s",
        "fileCheckFrequency": "20s",
        "httpCheckFrequency": "20s",
        "address": cfg.address,
        "port": cfg.port,
        "tlsCertFile": cfg.tls_cert_file or "",
        "tlsPrivateKeyFile": cfg.tls_private_key_file or "",
        "authentication": {"x509": {"clientCAFile": cfg.client_ca_file or ""},
                           "webhook": {"enabled": webhook, "cacheTTL": "2m0s"},
                           "anonymous": {"enabled": not webhook}},
        "authorization": {"mode": "Webhook" if webhook else "AlwaysAllow",
                          "webhook": {"cacheAuthorizedTTL": "5m0s", "cacheUnauthorizedTTL": "30s"}},
        "clusterDomain": cfg.cluster_domain,
        "clusterDNS": list(cfg.cluster_dns),
        "nodeStatusUpdateFrequency": go_duration(cfg.node_status_update_frequency),
        "nodeLeaseDurationSeconds": cfg.node_lease_duration_seconds,
        "cgroupRoot": cfg.cgroup_root,
        "maxPods": cfg.max_pods,
        "podPidsLimit": cfg.pod_max_pids,
        "containerRuntimeEndpoint": cfg.container_runtime_endpoint,
        "enableSystemLogHandler": True,
        "enableSystemLogQuery": False,
    }
    if cfg.pod_cidr:
        config["podCIDR"] = cfg.pod_cidr
    if cfg.register_with_taints:
        config["registerWithTaints"] = list(cfg.register_with_taints)
    return {"kubeletconfig": config}


# --- /logs/ --------------------------------------------------------------------------------------
def clean(path: str) -> str:
    """Go's path.Clean of a rooted path: `..` never climbs above /."""
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(segment)
    return "/" + "/".join(out)


def log_target(root: str, subpath: str) -> Path:
    """The file /logs/SUBPATH names under ROOT (http.Dir.Open: cleaned, so never outside it)."""
    return Path(root + clean("/" + subpath))


def dir_listing(entries: Iterable[tuple[str, bool]]) -> str:
    """Go's http.FileServer directory listing of (name, is a directory) entries."""
    lines = ["<!doctype html>", '<meta name="viewport" content="width=device-width">', "<pre>"]
    for name, is_dir in sorted(entries):
        name += "/" if is_dir else ""
        href = quote(name, safe="/$&+,:;=@-._~")  # url.URL{Path: name}.String()
        if ":" in href.split("/", 1)[0]:
            href = "./" + href  # url.URL.String: a colon in the first segment is not a scheme
        lines.append(f'<a href="{href}">{html.escape(name)}</a>')
    lines.append("</pre>")
    return "\n".join(lines) + "\n"


def _content_type(path: Path) -> str:
    guessed = mimetypes.guess_type(path.name)[0]
    if guessed:
        return guessed + ("; charset=utf-8" if guessed.startswith("text/") else "")
    with open(path, "rb") as f:
        head = f.read(512)
    try:
        head.decode()
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def _not_found() -> web.Response:
    return _plain(404, _NOT_FOUND)


async def logs(request: web.Request) -> web.StreamResponse:
    root = request.app.get("log_dir", LOG_DIR)
    subpath = request.match_info.get("logpath", "")
    if "\x00" in subpath:
        return _not_found()
    target = log_target(root, subpath)
    try:
        if target.is_dir():
            if subpath and not subpath.endswith("/"):
                raise web.HTTPMovedPermanently(location=target.name + "/")
            with os.scandir(target) as it:
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            return web.Response(text=dir_listing(entries), content_type="text/html", charset="utf-8")
        if not target.is_file():
            return _not_found()
        if subpath.endswith("/"):
            raise web.HTTPMovedPermanently(location="../" + target.name)
        return web.FileResponse(target, headers={"Content-Type": _content_type(target)})
    except (FileNotFoundError, NotADirectoryError):  # net/http's toHTTPError
        return _not_found()
    except PermissionError:
        return _plain(403, "403 Forbidden\n")
    except OSError:
        return _plain(500, "500 Internal Server Error\n")


async def logs_without_slash(request: web.Request) -> web.Response:
    """/logs: the kubelet's handler is for /logs/ only."""
    return _not_found()


# --- wiring --------------------------------------------------------------------------------------
def add_routes(app: web.Application, node_of: Callable[[Kubelet, web.Request], str]) -> None:
    """/metrics, /configz and /logs/ on the kubelet's API app; NODE_OF names the node a request is
    about (one process may serve many simulated nodes)."""

    async def metrics(request: web.Request) -> web.Response:
        kubelet: Kubelet = request.app["kubelet"]
        name = node_of(kubelet, request)
        node = kubelet.nodes.get(name)
        workers = list(node.workers.values()) if node is not None else []
        pods = [(w.sandbox is not None and not w.stopped.is_set(),
                 [(run.record.state, run.record.container_id or "") for run in [*w.init_runs, *w.runs.values()]])
                for w in workers]
        text = metrics_text(name, kubelet.cfg.kubernetes_version, pods, PROCESS_START)
        return web.Response(body=text.encode(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def config(request: web.Request) -> web.Response:
        return web.json_response(configz(request.app["kubelet"].cfg))

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/configz", config)
    app.router.add_get("/logs", logs_without_slash)
    app.router.add_get("/logs/{logpath:.*}", logs)


__all__ = ["LOG_DIR", "add_routes", "clean", "configz", "container_state", "dir_listing", "go_duration",
           "log_target", "metrics_text"]
