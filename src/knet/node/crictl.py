"""`crictl` of a knet node: talks to the node's container runtime endpoint (knet.node.criserver)
and prints what cri-tools v1.29's crictl prints (cmd/crictl: container.go, sandbox.go, image.go,
info.go, version.go, util.go; tabwriter(minwidth 20, padding 3); docker/go-units HumanDuration).

The endpoint comes as crictl's does: --runtime-endpoint/-r, else CONTAINER_RUNTIME_ENDPOINT, else
`runtime-endpoint` of the config file (--config/-c, CRI_CONFIG_FILE, /etc/crictl.yaml), else the
default endpoints with crictl's deprecation warning. The formatting is pure; `Endpoint` is the one
side effect (HTTP over the unix socket). `knet crictl NODE ...` on the host runs the same with the
node's socket in the cluster's state dir.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlparse

from knet.node import crilog

Obj = dict[str, Any]

DEFAULT_CONFIG = "/etc/crictl.yaml"
DEFAULT_ENDPOINTS = ("unix:///var/run/dockershim.sock", "unix:///run/containerd/containerd.sock",
                     "unix:///run/crio/crio.sock", "unix:///var/run/cri-dockerd.sock")
TRUNCATED_ID_LEN = 13
CONTAINER_STATE = {"CONTAINER_CREATED": "Created", "CONTAINER_RUNNING": "Running", "CONTAINER_EXITED": "Exited",
                   "CONTAINER_UNKNOWN": "Unknown"}
POD_STATE = {"SANDBOX_READY": "Ready", "SANDBOX_NOTREADY": "NotReady"}


class CrictlError(Exception):
    """What crictl would report with logrus.Fatal (exit 1)."""


# -- formatting (pure) ----------------------------------------------------------------------------

def human_duration(seconds: float) -> str:
    """docker/go-units HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def ago(seconds: float) -> str:
    """crictl's CREATED column."""
    return human_duration(max(seconds, 0)) + " ago"


def human_size(size: float) -> str:
    """docker/go-units HumanSizeWithPrecision(size, 3): decimal units."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{float(f'{size:.3g}'):g}{units[i]}"


def table(rows: Sequence[Sequence[str]], minwidth: int = 20, padding: int = 3) -> str:
    """Go's text/tabwriter as crictl sets it up: every cell but a line's last is padded to the
    column's width (its widest cell plus padding, at least minwidth)."""
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell) + padding, minwidth)
    return "".join("".join(c.ljust(widths[i]) for i, c in enumerate(row[:-1])) + (row[-1] if row else "") + "\n"
                   for row in rows)


def truncated_id(ident: str, prefix: str = "") -> str:
    ident = ident.removeprefix(prefix)
    return ident[:TRUNCATED_ID_LEN]


def _regex(pattern: str | None, text: str) -> bool:
    if not pattern:
        return True
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def select_containers(containers: list[Obj], *, all_states: bool = False, name: str | None = None,
                      pod: str | None = None, state: str | None = None, ident: str | None = None,
                      latest: bool = False, last: int = 0) -> list[Obj]:
    """ListContainers' filters and getContainersList: newest first."""
    want = None if all_states or latest or last else "CONTAINER_RUNNING"
    if state:
        want = f"CONTAINER_{state.upper()}"
    out = [c for c in containers
           if (want is None or c["state"] == want) and _regex(name, c["metadata"]["name"])
           and (not pod or c["podSandboxId"].startswith(pod)) and (not ident or c["id"].startswith(ident))]
    out.sort(key=lambda c: -int(c["createdAt"]))
    n = 1 if latest else last if last > 0 else len(out)
    return out[:n]


def format_ps(containers: list[Obj], *, now: float | None = None, no_trunc: bool = False, quiet: bool = False) -> str:
    if quiet:
        return "".join(c["id"] + "\n" for c in containers)
    now = time.time() if now is None else now
    rows = [["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"]]
    for c in containers:
        ident, image, pod_id = c["id"], c["image"]["image"], c["podSandboxId"]
        if not no_trunc:
            ident, pod_id = truncated_id(ident), truncated_id(pod_id)
            if image.startswith("sha256:"):  # the image ID, as the kubelet gives containerd
                image = truncated_id(image, "sha256:")
        rows.append([ident, image, ago(now - int(c["createdAt"]) / 1e9), CONTAINER_STATE.get(c["state"], "Unknown"),
                     c["metadata"]["name"], str(c["metadata"].get("attempt", 0)), pod_id,
                     (c.get("labels") or {}).get("io.kubernetes.pod.name", "")])
    return table(rows)


def select_pods(items: list[Obj], *, name: str | None = None, namespace: str | None = None,
                state: str | None = None, ident: str | None = None, latest: bool = False, last: int = 0) -> list[Obj]:
    want = {"ready": "SANDBOX_READY", "notready": "SANDBOX_NOTREADY"}.get((state or "").lower())
    if state and want is None:
        raise CrictlError("--state should be ready or notready")
    out = [p for p in items
           if (want is None or p["state"] == want) and _regex(name, p["metadata"]["name"])
           and _regex(namespace, p["metadata"]["namespace"]) and (not ident or p["id"].startswith(ident))]
    out.sort(key=lambda p: -int(p["createdAt"]))
    n = 1 if latest else last if last > 0 else len(out)
    return out[:n]


def format_pods(items: list[Obj], *, now: float | None = None, no_trunc: bool = False, quiet: bool = False) -> str:
    if quiet:
        return "".join(p["id"] + "\n" for p in items)
    now = time.time() if now is None else now
    rows = [["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"]]
    for p in items:
        rows.append([p["id"] if no_trunc else truncated_id(p["id"]), ago(now - int(p["createdAt"]) / 1e9),
                     POD_STATE.get(p["state"], p["state"]), p["metadata"]["name"], p["metadata"]["namespace"],
                     str(p["metadata"].get("attempt", 0)), p.get("runtimeHandler") or "(default)"])
    return table(rows)


def format_images(images: list[Obj], *, quiet: bool = False, digests: bool = False, no_trunc: bool = False) -> str:
    if quiet:
        return "".join(i["id"] + "\n" for i in images)
    header = ["IMAGE", "TAG", *(["DIGEST"] if digests else []), "IMAGE ID", "SIZE"]
    rows = [header]
    for image in sorted(images, key=lambda i: (i.get("repoTags") or [""])[0]):
        ident = image["id"] if no_trunc else truncated_id(image["id"], "sha256:")
        repo_digest = (image.get("repoDigests") or ["<none>@<none>"])[0]
        digest = repo_digest.split("@", 1)[1] if "@" in repo_digest else "<none>"
        if not no_trunc:
            digest = truncated_id(digest, "sha256:")
        pairs = [[t.rsplit(":", 1)[0], t.rsplit(":", 1)[1]] if ":" in t.rsplit("/", 1)[-1] else ["errorRepoTag"] * 2
                 for t in image.get("repoTags") or []] or [[repo_digest.split("@", 1)[0], "<none>"]]
        for repo, tag in pairs:
            rows.append([repo, tag, *([digest] if digests else []), ident, human_size(float(image.get("size") or 0))])
    return table(rows)


def format_status(answer: Obj, *, flatten_info: bool) -> str:
    """outputStatusInfo's JSON (json.Indent, two spaces): "status", then the info keys, sorted.
    ContainerStatus/PodSandboxStatus carry their info under the one key "info"."""
    out: Obj = {"status": answer["status"]}
    info = answer.get("info") or {}
    if flatten_info:
        out.update({k: info[k] for k in sorted(info)})
    else:
        out["info"] = info
    return json.dumps(out, indent=2, ensure_ascii=False) + "\n"


def format_version(v: Obj) -> str:
    return (f"Version:  {v['version']}\nRuntimeName:  {v['runtimeName']}\n"
            f"RuntimeVersion:  {v['runtimeVersion']}\nRuntimeApiVersion:  {v['runtimeApiVersion']}\n")


def fatal_line(message: str, tty: bool, now: float | None = None) -> str:
    """logrus.Fatal's line (its TextFormatter: colored FATA[0000] on a terminal, key=value else)."""
    if tty:
        return f"FATA[0000] {message}\n"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
    return f'time="{stamp}" level=fatal msg={json.dumps(message)}\n'


def warning_line(message: str, tty: bool) -> str:
    if tty:
        return f"WARN[0000] {message}\n"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return f'time="{stamp}" level=warning msg={json.dumps(message)}\n'


# -- the endpoint ---------------------------------------------------------------------------------

class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        target, dir_fd = self.path, None
        if len(self.path.encode()) > 100:  # sun_path holds 108 bytes: go through the directory's fd
            dir_fd = os.open(os.path.dirname(self.path), os.O_PATH | os.O_CLOEXEC)
            target = f"/proc/self/fd/{dir_fd}/{os.path.basename(self.path)}"
        try:
            sock.connect(target)
        except OSError:
            sock.close()
            raise
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        self.sock = sock


class Endpoint:
    """The runtime endpoint: GET a path, JSON (or text) back; errors as crictl words them."""

    def __init__(self, endpoint: str, timeout: float = 2.0) -> None:
        url = urlparse(endpoint if "://" in endpoint else f"unix://{endpoint}")
        if url.scheme != "unix":
            raise CrictlError(f'validate service connection: endpoint "{endpoint}": protocol "{url.scheme}" '
                              "not supported (knet's runtime serves unix sockets)")
        self.endpoint, self.path, self.timeout = endpoint, url.path, timeout

    def _get(self, path: str) -> tuple[int, bytes]:
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise CrictlError(
                f'validate service connection: validate CRI v1 runtime API for endpoint "{self.endpoint}": '
                f'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: '
                f'dial unix {self.path}: connect: {reason}"') from exc
        finally:
            conn.close()

    def get(self, path: str) -> Obj:
        status, body = self._get(path)
        if status != 200:
            try:
                err = json.loads(body)
                raise CrictlError(f"rpc error: code = {err['code']} desc = {err['message']}")
            except (ValueError, KeyError):
                raise CrictlError(f"rpc error: code = Unknown desc = {body.decode(errors='replace')}") from None
        return json.loads(body)

    def stream(self, path: str) -> http.client.HTTPResponse:
        """GET a path whose answer goes on (crictl logs -f): the response to read as it comes,
        with no timeout once connected (it may be quiet for long)."""
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request("GET", path)
            conn.sock.settimeout(None)
            resp = conn.getresponse()
        except OSError as exc:
            conn.close()
            reason = (exc.strerror or str(exc)).lower()
            raise CrictlError(
                f'validate service connection: validate CRI v1 runtime API for endpoint "{self.endpoint}": '
                f'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: '
                f'dial unix {self.path}: connect: {reason}"') from exc
        if resp.status != 200:
            body = resp.read()
            conn.close()
            try:
                err = json.loads(body)
                raise CrictlError(f"rpc error: code = {err['code']} desc = {err['message']}")
            except (ValueError, KeyError):
                raise CrictlError(f"rpc error: code = Unknown desc = {body.decode(errors='replace')}") from None
        return resp

    def text(self, path: str) -> bytes:
        status, body = self._get(path)
        if status != 200:
            try:
                err = json.loads(body)
                raise CrictlError(f"rpc error: code = {err['code']} desc = {err['message']}")
            except (ValueError, KeyError):
                raise CrictlError(f"rpc error: code = Unknown desc = {body.decode(errors='replace')}") from None
        return body


_DURATION = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_since(value: str, now: crilog.Stamp) -> crilog.Stamp:
    """`crictl logs --since`: a Go duration back from now (42m, 1h30m), an RFC3339 time, or Unix
    seconds (docker's timetypes.GetTimestamp, as crictl's parseTimestamp uses it)."""
    text = value.strip()
    if text and _DURATION.sub("", text) == "" and _DURATION.search(text):
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))
        return crilog.Stamp(now.ns - int(seconds * 1e9))
    try:
        return crilog.parse_time(text)
    except ValueError:
        pass
    if re.fullmatch(r"[0-9]+(\.[0-9]{1,9})?", text):
        whole, _, frac = text.partition(".")
        return crilog.Stamp(int(whole) * 1_000_000_000 + int(frac.ljust(9, "0") or 0))
    raise CrictlError(f"failed to parse value {value!r} as a timestamp or a duration")


# -- the command line -----------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # urfave/cli's usage errors end crictl with exit 1, as others
        raise CrictlError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="crictl", description="client for CRI", add_help=True)
    p.add_argument("-c", "--config", default=None)
    p.add_argument("-r", "--runtime-endpoint", default=None)
    p.add_argument("-i", "--image-endpoint", default=None)
    p.add_argument("-t", "--timeout", default=None)
    p.add_argument("-D", "--debug", action="store_true")
    p.add_argument("command", nargs="?")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return p


def _sub(name: str) -> argparse.ArgumentParser:
    return _Parser(prog=f"crictl {name}", add_help=True)


def _output(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("-o", "--output", default=default)


def read_config(path: str) -> Obj:
    import yaml

    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    if not isinstance(doc, dict):
        raise CrictlError(f"load config file: {path}: not a mapping")
    return doc


def config_file(env: dict[str, str], config_path: str | None) -> Obj:
    """The client config (--config, CRI_CONFIG_FILE, /etc/crictl.yaml); {} when the default is missing."""
    path = config_path or env.get("CRI_CONFIG_FILE") or DEFAULT_CONFIG
    try:
        return read_config(path)
    except OSError as exc:
        if config_path or env.get("CRI_CONFIG_FILE"):
            raise CrictlError(f"load config file: {exc}") from exc
        return {}


def resolve_endpoint(flag: str | None, env: dict[str, str], config_path: str | None) -> tuple[str | None, str | None]:
    """(endpoint, warning): crictl's order (main.go Before): --runtime-endpoint or
    CONTAINER_RUNTIME_ENDPOINT, else the config file's runtime-endpoint, else none (defaults)."""
    if flag:
        return flag, None
    if env.get("CONTAINER_RUNTIME_ENDPOINT"):
        return env["CONTAINER_RUNTIME_ENDPOINT"], None
    config = config_file(env, config_path)
    if config.get("runtime-endpoint"):
        return str(config["runtime-endpoint"]), None
    return None, (f"runtime connect using default endpoints: [{' '.join(DEFAULT_ENDPOINTS)}]. As the default "
                  "settings are now deprecated, you should set the endpoint instead.")


def _default_endpoint() -> str:
    for e in DEFAULT_ENDPOINTS:
        if os.path.exists(urlparse(e).path):
            return e
    return DEFAULT_ENDPOINTS[0]


def run(argv: list[str], out=None, err=None, env: dict[str, str] | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    env = dict(os.environ) if env is None else env
    tty = err.isatty() if hasattr(err, "isatty") else False
    try:
        return _run(argv, out, err, env, tty)
    except CrictlError as exc:
        err.write(fatal_line(str(exc), tty))
        return 1


def _run(argv: list[str], out, err, env: dict[str, str], tty: bool) -> int:
    top = _parser().parse_args(argv)
    if top.command is None:
        _parser().print_help(out)
        return 0
    commands = {"ps", "pods", "inspect", "inspectp", "logs", "images", "image", "img", "info", "version"}
    if top.command not in commands:
        raise CrictlError(f"No help topic for '{top.command}'")
    endpoint, warning = resolve_endpoint(top.runtime_endpoint, env, top.config)
    if endpoint is None:
        err.write(warning_line(warning or "", tty))
        endpoint = _default_endpoint()
    timeout = 2.0  # crictl's defaultTimeout
    configured = config_file(env, top.config).get("timeout")
    if isinstance(configured, int | float) and configured > 0:  # seconds, as crictl.yaml has it
        timeout = float(configured)
    if top.timeout:
        from knet.node.kubeletconfig import KubeletConfigError, parse_duration

        try:
            timeout = parse_duration(top.timeout) or 2.0
        except KubeletConfigError as exc:
            raise CrictlError(f'invalid value "{top.timeout}" for flag -timeout: {exc}') from exc
    api = Endpoint(endpoint, timeout)
    cmd, args = top.command, top.args
    if cmd == "ps":
        p = _sub("ps")
        p.add_argument("-a", "--all", action="store_true")
        p.add_argument("--name", default=None)
        p.add_argument("-p", "--pod", default=None)
        p.add_argument("-s", "--state", default=None)
        p.add_argument("--id", default=None)
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("-l", "--latest", action="store_true")
        p.add_argument("-n", "--last", type=int, default=0)
        p.add_argument("--no-trunc", action="store_true")
        _output(p, "table")
        o = p.parse_args(args)
        if o.state and o.state.lower() not in ("created", "running", "exited", "unknown"):
            raise CrictlError("--state should be one of created, running, exited or unknown")
        rows = select_containers(api.get("/v1/containers")["containers"], all_states=o.all, name=o.name, pod=o.pod,
                                 state=o.state, ident=o.id, latest=o.latest, last=o.last)
        out.write(_structured({"containers": rows}, o.output) or format_ps(rows, no_trunc=o.no_trunc, quiet=o.quiet))
    elif cmd == "pods":
        p = _sub("pods")
        p.add_argument("--name", default=None)
        p.add_argument("--namespace", default=None)
        p.add_argument("-s", "--state", default=None)
        p.add_argument("--id", default=None)
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("-l", "--latest", action="store_true")
        p.add_argument("-n", "--last", type=int, default=0)
        p.add_argument("--no-trunc", action="store_true")
        _output(p, "table")
        o = p.parse_args(args)
        items = select_pods(api.get("/v1/pods")["items"], name=o.name, namespace=o.namespace, state=o.state,
                            ident=o.id, latest=o.latest, last=o.last)
        out.write(_structured({"items": items}, o.output) or format_pods(items, no_trunc=o.no_trunc, quiet=o.quiet))
    elif cmd in ("inspect", "inspectp"):
        p = _sub(cmd)
        p.add_argument("ids", nargs="*")
        _output(p, "json")
        o = p.parse_args(args)
        if not o.ids:
            raise CrictlError("ID cannot be empty")
        path = "/v1/containers/" if cmd == "inspect" else "/v1/pods/"
        for ident in o.ids:
            try:
                answer = api.get(path + quote(ident, safe=""))
            except CrictlError as exc:
                what = "status of the container" if cmd == "inspect" else "pod sandbox status for"
                raise CrictlError(f'getting the {what} "{ident}": {exc}') from exc
            if o.output == "yaml":
                out.write(_yaml(json.loads(format_status(answer, flatten_info=False))))
            else:
                out.write(format_status(answer, flatten_info=False))
    elif cmd == "logs":
        p = _sub("logs")
        p.add_argument("id", nargs="?")
        p.add_argument("--tail", type=int, default=-1)
        p.add_argument("--since", default="")
        p.add_argument("-t", "--timestamps", action="store_true")
        p.add_argument("--limit-bytes", type=int, default=-1)
        p.add_argument("--stream", default="")
        p.add_argument("-p", "--previous", action="store_true")
        p.add_argument("-f", "--follow", action="store_true")
        o = p.parse_args(args)
        if not o.id:
            raise CrictlError("ID cannot be empty")
        if o.stream not in ("", crilog.STDOUT, crilog.STDERR):
            raise CrictlError(f"invalid stream type {o.stream!r}, must be 'stdout' or 'stderr'")
        since = parse_since(o.since, crilog.Stamp.now()) if o.since else None
        query = urlencode({"tail": o.tail, **({"previous": 1} if o.previous else {}),
                           **({"follow": 1} if o.follow else {})})
        if o.previous:  # crictl's own check, before it reads the previous attempt's file
            status = api.get(f"/v1/containers/{quote(o.id, safe='')}")["status"]
            if not status["metadata"].get("attempt"):
                raise CrictlError(f"previous terminated container {status['metadata']['name']} not found")
        out.flush()
        # The container's log file (its last --tail records), rendered here as crictl renders the
        # file it reads with the kubelet's logs package: stdout records to stdout, stderr to stderr.
        opts = crilog.LogOptions(tail=o.tail, bytes=o.limit_bytes, since=since, timestamps=o.timestamps)
        if o.follow:  # the records as they come, until the container stops (or ^C)
            resp = api.stream(f"/v1/containers/{quote(o.id, safe='')}/logs?{query}")
            try:
                opts.tail = -1  # the endpoint sent the last --tail records first
                items = (i for i in crilog.messages(_Records(resp), opts) if i is not None)
                _write_logs(items, o.stream, out, err)
            except KeyboardInterrupt:
                return 130  # as a shell reports a command ended by SIGINT
            finally:
                resp.close()
            return 0
        data = api.text(f"/v1/containers/{quote(o.id, safe='')}/logs?{query}")
        _write_logs(crilog.render(data, opts), o.stream, out, err)
    elif cmd in ("images", "image", "img"):
        p = _sub("images")
        p.add_argument("image", nargs="?")
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("--digests", action="store_true")
        p.add_argument("--no-trunc", action="store_true")
        _output(p, "")
        o = p.parse_args(args)
        images = api.get("/v1/images")["images"]
        if o.image:
            images = [i for i in images if o.image in i.get("repoTags", []) or
                      any(t.rsplit(":", 1)[0] == o.image for t in i.get("repoTags", []))]
        out.write(_structured({"images": images}, o.output) or
                  format_images(images, quiet=o.quiet, digests=o.digests, no_trunc=o.no_trunc))
    elif cmd == "info":
        p = _sub("info")
        _output(p, "json")
        o = p.parse_args(args)
        answer = api.get("/v1/info")
        text = format_status(answer, flatten_info=True)
        out.write(_yaml(json.loads(text)) if o.output == "yaml" else text)
    elif cmd == "version":
        out.write(format_version(api.get("/v1/version")))
    return 0


class _Records:
    """A followed log as crilog.messages reads a file: line by line as they arrive; the end of
    the answer (the container stopped) is the end of the file."""

    def __init__(self, resp: http.client.HTTPResponse) -> None:
        self.resp = resp

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0  # messages seeks to the tail's start, 0 here: the endpoint did the tail

    def readline(self) -> bytes:
        return self.resp.readline()


def _write_logs(items, stream: str, out, err) -> None:
    """Rendered records: stdout's to out, stderr's to err (--stream: only that one), each as it
    comes (a followed log's lines show at once)."""
    for name, text in items:
        if stream and name != stream:
            continue
        target = out if name == crilog.STDOUT else err
        target.flush()
        raw = getattr(target, "buffer", None)
        if raw is not None:
            raw.write(text)
            raw.flush()
        else:
            target.write(text.decode(errors="replace"))
            target.flush()


def _yaml(obj: object) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False) + "\n"


def _structured(obj: Obj, output: str) -> str:
    """-o json|yaml of a list (protobuf JSON, two-space indent); "" for the table."""
    if output == "json":
        return json.dumps(obj, indent=2) + "\n"
    if output == "yaml":
        return _yaml(obj)
    if output not in ("table", ""):
        raise CrictlError(f'unsupported output format "{output}"')
    return ""


def main(argv: list[str] | None = None) -> int:
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
