"""The node's container runtime endpoint: the unix socket that the kubelet's
--container-runtime-endpoint names (unix:///var/run/containerd/containerd.sock on a knet node, as
on a kubeadm node), served by the kubelet itself, which is knet's container runtime.

knet's protocol: HTTP/1.1 with JSON bodies (knet.node.cri's objects), read-only:
  GET /v1/version  /v1/info  /v1/containers  /v1/containers/ID  /v1/containers/ID/logs?tail=N
      (&follow=1: the records stream on as the container writes them, until it stops running)
  GET /v1/pods  /v1/pods/ID  /v1/images
An unknown ID answers 404 {"code": "NotFound", "message": ...}. IDs may be unique prefixes.

Who may connect: as containerd's socket, the file is root's with mode 0660 in a 0711 directory, in
the node's own mount namespace (the node shows the state dir's NODE/run/containerd there): root in
the node (crictl) and the host (`knet crictl`) can; a non-root user of the node cannot, and a pod
cannot see the path at all (a container's root filesystem has no /run of the node's).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from aiohttp import web

from knet.node import cri, crilog, logpaths

if TYPE_CHECKING:
    from knet.node.agent import Kubelet, NodeAgent
    from knet.node.podworker import ContainerRun, PodWorker

log = logging.getLogger(__name__)
SOCKET_MODE = 0o660
DIR_MODE = 0o711
FOLLOW_POLL = 0.1  # seconds between looks at a followed log file's end (kubectl logs -f's too)


def socket_path(endpoint: str) -> str:
    """unix:///run/containerd/containerd.sock -> /run/containerd/containerd.sock."""
    url = urlparse(endpoint)
    if url.scheme != "unix" or not url.path:
        raise ValueError(f"container runtime endpoint {endpoint!r}: knet serves unix:///PATH only")
    return url.path


def _init_pid(node: NodeAgent, container_id: str, run: ContainerRun) -> int | None:
    """The container's init process as runc recorded it, else the process the kubelet started."""
    state_dir = getattr(getattr(node.runtime, "runc", None), "state_dir", None)
    if state_dir:
        with contextlib.suppress(OSError, ValueError, KeyError):
            return int(json.loads((Path(state_dir) / container_id / "state.json").read_text())["init_process_pid"])
    return run.process.pid if run.process is not None else None


def _containers(node: NodeAgent, worker: PodWorker) -> list[cri.ContainerView]:
    out = []
    spec = worker.pod.get("spec") or {}
    log_dir = f"{logpaths.PODS_LOG_DIR}/{logpaths.pod_log_dir_name(worker.namespace, worker.name, worker.uid)}"
    sandbox_id = worker.sandbox.id if worker.sandbox else ""
    common = {"sandbox_id": sandbox_id, "pod": worker.name, "namespace": worker.namespace, "uid": worker.uid,
              "termination_grace_period": int(spec.get("terminationGracePeriodSeconds", 30))}
    for run in [*worker.init_runs, *worker.runs.values(), *worker.ephemeral_runs.values()]:
        rec = run.record
        files = {"termination_message_path": run.spec.get("terminationMessagePath") or "/dev/termination-log",
                 "termination_message_policy": run.spec.get("terminationMessagePolicy") or "File"}
        prev = run.previous
        if prev is not None and prev.container_id != rec.container_id:
            out.append(cri.ContainerView(
                id=prev.container_id, name=rec.name, attempt=prev.attempt, image=rec.image, state="terminated",
                created=prev.created_at or worker.created_at, started_at=prev.started_at, finished_at=prev.finished_at,
                exit_code=prev.exit_code, reason=prev.reason, message="", log_path=f"{log_dir}/{rec.name}/"
                f"{prev.log_index}.log", pid=None, restart_count=prev.attempt, **files, **common))
        if not rec.container_id:
            continue
        # between restarts (CrashLoopBackOff) the kubelet waits, and the last instance is an exited container
        state = "terminated" if rec.state == "waiting" and rec.ran else rec.state
        reason = ((rec.last_state.get("terminated") or {}).get("reason") or rec.reason) if state != rec.state \
            else rec.reason
        out.append(cri.ContainerView(
            id=rec.container_id, name=rec.name, attempt=rec.restart_count, image=rec.image, state=state,
            created=run.created_at or worker.created_at, started_at=rec.started_at, finished_at=rec.finished_at,
            exit_code=rec.exit_code, reason=reason, message=rec.message,
            log_path=f"{log_dir}/{rec.name}/{run.log_index}.log",
            pid=_init_pid(node, rec.container_id, run) if state == "running" else None,
            restart_count=rec.restart_count, **files, **common))
    return out


def _sandbox(worker: PodWorker) -> cri.SandboxView | None:
    sb = worker.sandbox
    if sb is None:
        return None
    meta = worker.pod["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()}
    annotations.setdefault("kubernetes.io/config.source", "file" if worker.static else "api")
    return cri.SandboxView(
        id=sb.id, pod=worker.name, namespace=worker.namespace, uid=worker.uid,
        ready=not worker.stopping.is_set() and not worker.stopped.is_set(), created=worker.created_at, ip=sb.ip,
        pid=sb.pid, host_network=bool((worker.pod.get("spec") or {}).get("hostNetwork")),
        labels=dict(meta.get("labels") or {}), annotations=annotations)


class RuntimeView:
    """What the endpoint answers from: the kubelet's pod workers, read at each request."""

    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet

    def _workers(self) -> list[tuple[NodeAgent, PodWorker]]:
        return [(n, w) for n in self.kubelet.nodes.values() for w in list(n.workers.values())]

    def containers(self) -> list[tuple[cri.ContainerView, PodWorker, ContainerRun]]:
        out = []
        for node, w in self._workers():
            runs = {}
            for r in [*w.init_runs, *w.runs.values(), *w.ephemeral_runs.values()]:
                runs[r.record.container_id] = r
                if r.previous is not None:
                    runs[r.previous.container_id] = r
            out += [(c, w, runs[c.id]) for c in _containers(node, w)]
        return out

    def sandboxes(self) -> list[tuple[cri.SandboxView, PodWorker]]:
        return [(s, w) for _, w in self._workers() if (s := _sandbox(w)) is not None]

    def network_ready(self) -> bool:
        return all(n.network_ready() for n in self.kubelet.nodes.values())


async def follow_log(path: Path, tail: int, running: Callable[[], bool],
                     write: Callable[[bytes], Awaitable[None]], poll: float = FOLLOW_POLL) -> None:
    """`crictl logs -f`: the log file's last `tail` records (tail < 0: all), then each record the
    container appends, whole records only, until it is no longer running; then what it wrote last
    (as the kubelet's ReadLogs with Follow, which crictl runs: at the end of the file it looks
    whether the container still runs, and once it does not, reads to the end and stops)."""
    f = None
    pending = b""
    try:
        while True:
            alive = running()  # before the read: whatever it wrote before it stopped is read below
            if f is None:
                with contextlib.suppress(FileNotFoundError):
                    f = open(path, "rb")  # noqa: SIM115 -- held across awaits, closed below
                    f.seek(crilog.tail_start(f, tail))
            data = f.read() if f is not None else b""
            if data:
                pending += data
                cut = pending.rfind(b"\n") + 1
                if cut:
                    await write(pending[:cut])
                    pending = pending[cut:]
            if not alive:
                if pending:
                    await write(pending)
                return
            if not data:
                await asyncio.sleep(poll)
    finally:
        if f is not None:
            f.close()


def _json(obj: object, status: int = 200) -> web.Response:
    return web.json_response(obj, status=status)


def make_app(kubelet: Kubelet) -> web.Application:
    view = RuntimeView(kubelet)
    pause_image = kubelet.cfg.pod_infra_container_image

    async def version(request: web.Request) -> web.Response:
        return _json(cri.version(kubelet.cfg.kubernetes_version))

    async def info(request: web.Request) -> web.Response:
        cfg = kubelet.cfg
        config = {"sandboxImage": pause_image, "rootDir": cfg.root_dir,
                  "cni": {"binDir": cfg.cni_bin_dir, "confDir": cfg.cni_conf_dir},
                  "containerdEndpoint": cfg.container_runtime_endpoint}
        return _json(cri.runtime_status(view.network_ready(), config))

    async def containers(request: web.Request) -> web.Response:
        return _json({"containers": [cri.container(c) for c, _, _ in view.containers()]})

    def _container(request: web.Request):
        ref = request.match_info["id"]
        found = {c.id: (c, w, run) for c, w, run in view.containers()}
        cid = cri.find(list(found), ref)
        if cid is None:
            raise web.HTTPNotFound(text=json.dumps(cri.not_found("container", ref)), content_type="application/json")
        return found[cid]

    async def container(request: web.Request) -> web.Response:
        c, w, _ = _container(request)
        return _json(cri.container_status(c, _sandbox(w)))

    async def logs(request: web.Request) -> web.Response:
        c, w, run = _container(request)
        tail = request.query.get("tail")
        try:
            lines = int(tail) if tail not in (None, "") else None
        except ValueError:
            raise web.HTTPBadRequest(text=json.dumps({"code": "InvalidArgument", "message": f"invalid tail {tail!r}"}),
                                     content_type="application/json") from None
        index = run.previous.log_index if run.previous is not None and run.previous.container_id == c.id \
            else run.log_index
        if request.query.get("previous") in ("1", "true"):  # crictl logs -p: the attempt before this one
            index = c.attempt - 1
            if index < 0:
                raise web.HTTPNotFound(text=json.dumps({"code": "NotFound", "message": f"previous terminated container "
                                                        f"{c.name} not found"}), content_type="application/json")
        if request.query.get("follow") in ("1", "true"):  # crictl logs -f
            def running() -> bool:  # this very instance, still running, and the endpoint still served
                proc = run.process
                return (run.record.container_id == c.id and index == run.log_index and proc is not None
                        and proc.returncode is None and not closing.is_set())

            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            with contextlib.suppress(ConnectionError):
                await follow_log(w.log_path(c.name, index), -1 if lines is None else lines, running, resp.write)
                await resp.write_eof()
            return resp
        try:
            data = w.log_path(c.name, index).read_bytes()
        except OSError:
            data = b""
        return web.Response(body=cri.tail(data, lines), content_type="text/plain")

    async def pods(request: web.Request) -> web.Response:
        return _json({"items": [cri.sandbox(s) for s, _ in view.sandboxes()]})

    async def pod(request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        found = {s.id: s for s, _ in view.sandboxes()}
        sid = cri.find(list(found), ref)
        if sid is None:
            raise web.HTTPNotFound(text=json.dumps(cri.not_found("sandbox", ref)), content_type="application/json")
        return _json(cri.sandbox_status(found[sid], pause_image))

    async def images(request: web.Request) -> web.Response:
        used = [c.image for c, _, _ in view.containers()]
        used += [c.get("image", "") for _, w in view._workers()
                 for c in [*(w.pod["spec"].get("initContainers") or []), *(w.pod["spec"].get("containers") or [])]]
        return _json({"images": cri.images(used, pause_image)})

    app = web.Application()
    # A kubelet going away (its containers may run on, to be re-adopted) ends the followers,
    # rather than the server waiting on them.
    closing = asyncio.Event()

    async def on_shutdown(_app: web.Application) -> None:
        closing.set()

    app.on_shutdown.append(on_shutdown)
    app.router.add_get("/v1/version", version)
    app.router.add_get("/v1/info", info)
    app.router.add_get("/v1/containers", containers)
    app.router.add_get("/v1/containers/{id}", container)
    app.router.add_get("/v1/containers/{id}/logs", logs)
    app.router.add_get("/v1/pods", pods)
    app.router.add_get("/v1/pods/{id}", pod)
    app.router.add_get("/v1/images", images)
    return app


def _live(path: str) -> bool:
    """Whether something answers on the socket at path (then it is not ours to remove)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def listen(path: str) -> socket.socket:
    """The endpoint's listening socket: root's, mode 0660, its directory 0711 (containerd's). A
    stale socket of a previous kubelet is replaced; a live one (another runtime) is an error."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
    os.chmod(directory, DIR_MODE)
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(f"{path} exists and is not a socket")
        if _live(path):
            raise OSError(f"{path}: another runtime listens there")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # never world-accessible, not even between bind and chmod
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, SOCKET_MODE)
    sock.listen(64)
    return sock


async def start(kubelet: Kubelet) -> web.AppRunner | None:
    """Serve --container-runtime-endpoint (none: nothing to serve)."""
    endpoint = kubelet.cfg.container_runtime_endpoint
    if not endpoint:
        return None
    path = socket_path(endpoint)
    runner = web.AppRunner(make_app(kubelet), access_log=None)
    await runner.setup()
    sock = listen(path)
    await web.SockSite(runner, sock).start()
    log.info("container runtime endpoint on %s", endpoint)
    return runner
