"""crictl on a knet node (knet.node.crictl, knet.node.cri, knet.node.criserver): crictl v1.29's
columns and JSON, its endpoint lookup, its errors; and the kubelet's runtime endpoint answering
it over a real unix socket, for a kubelet on the fakes (tests/unit/node/fakes.py)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import stat

import pytest

from knet.node import cri, crictl, crilog, criserver

from .fakes import eventually, running_kubelet

# docker/go-units HumanDuration's test table (duration_test.go), in seconds
HUMAN_DURATIONS = [
    (0.5, "Less than a second"), (1, "1 second"), (2, "2 seconds"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (59 * 60, "59 minutes"), (3600, "About an hour"),
    (2 * 3600 - 1, "2 hours"), (47 * 3600, "47 hours"), (48 * 3600, "2 days"), (13 * 86400, "13 days"),
    (14 * 86400, "2 weeks"), (60 * 86400, "2 months"), (2 * 365 * 86400, "2 years"),
]


@pytest.mark.parametrize(("seconds", "text"), HUMAN_DURATIONS)
def test_human_duration_as_go_units(seconds, text):
    assert crictl.human_duration(seconds) == text


def test_human_size_as_go_units():
    assert [crictl.human_size(s) for s in (0, 999, 1000, 28_100_000, 1_234_567_890)] == [
        "0B", "999B", "1kB", "28.1MB", "1.23GB"]


def test_table_pads_as_tabwriter_with_minwidth_20_and_padding_3():
    # the reference transcript's `crictl ps` lines, byte for byte
    rows = [["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"],
            ["20b21a6b4a231", "98262743b26f9", "2 hours ago", "Running", "kube-proxy", "0", "1f533bf405b10",
             "kube-proxy-fl992"]]
    assert crictl.table(rows).splitlines() == [
        "CONTAINER           IMAGE               CREATED             STATE               NAME                "
        "ATTEMPT             POD ID              POD",
        "20b21a6b4a231       98262743b26f9       2 hours ago         Running             kube-proxy          "
        "0                   1f533bf405b10       kube-proxy-fl992"]
    wide = crictl.table([["a" * 25, "b"], ["c", "d"]]).splitlines()
    assert wide == ["a" * 25 + "   b", "c" + " " * 27 + "d"]


def _view(cid: str, *, state: str = "running", created: float = 100.0, name: str = "app", attempt: int = 0,
          pod: str = "web", image: str = "registry.k8s.io/kube-proxy:v1.29.0") -> cri.ContainerView:
    return cri.ContainerView(
        id=cid, sandbox_id="b" * 64, name=name, attempt=attempt, image=image, state=state, created=created,
        started_at="2026-12-05T03:00:00Z", finished_at="2026-12-05T03:01:00Z" if state == "terminated" else None,
        exit_code=1 if state == "terminated" else None, reason="Error" if state == "terminated" else "",
        message="", pod=pod, namespace="default", uid="u-1", log_path="/var/log/pods/default_web_u-1/app/0.log",
        pid=4242 if state == "running" else None, restart_count=attempt)


def test_ps_lists_running_containers_newest_first_with_crictls_columns():
    containers = [cri.container(_view("a" * 64, created=100.0)), cri.container(_view("c" * 64, created=160.0,
                                                                                     name="side")),
                  cri.container(_view("d" * 64, state="terminated", name="old"))]
    shown = crictl.select_containers(containers)
    assert [c["metadata"]["name"] for c in shown] == ["side", "app"]
    out = crictl.format_ps(shown, now=190.0).splitlines()
    assert out[0].split() == ["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD", "ID", "POD"]
    words = out[2].split()
    image_id = cri.image_digest("registry.k8s.io/kube-proxy:v1.29.0").removeprefix("sha256:")[:13]
    assert words[:2] == ["a" * 13, image_id]  # the image ID, truncated, as containerd gives crictl
    assert "About a minute ago" in out[2] and "30 seconds ago" in out[1]
    assert words[-3:] == ["0", "b" * 13, "web"]
    # -a shows the exited one; --name is a regular expression; -q prints full IDs
    assert [c["metadata"]["name"] for c in crictl.select_containers(containers, all_states=True)] == [
        "side", "app", "old"]
    assert [c["metadata"]["name"] for c in crictl.select_containers(containers, all_states=True, name="^o")] == ["old"]
    assert crictl.format_ps(shown, quiet=True) == "c" * 64 + "\n" + "a" * 64 + "\n"
    assert [c["metadata"]["name"] for c in crictl.select_containers(containers, state="exited")] == ["old"]
    assert len(crictl.select_containers(containers, latest=True)) == 1


def test_inspect_is_crictls_status_and_info():
    view = _view("a" * 64, created=1765000000.25)
    sandbox = cri.SandboxView(id="b" * 64, pod="web", namespace="default", uid="u-1", ready=True, created=1.0,
                              ip="10.244.1.5", pid=99, host_network=False)
    text = crictl.format_status(cri.container_status(view, sandbox), flatten_info=False)
    doc = json.loads(text)
    assert list(doc) == ["status", "info"] and text.startswith('{\n  "status": {\n    "id": "' + "a" * 64)
    s = doc["status"]
    assert s["state"] == "CONTAINER_RUNNING" and s["metadata"] == {"attempt": 0, "name": "app"}
    assert s["createdAt"] == "2025-12-06T05:46:40.250000000Z"
    assert s["finishedAt"] == "0001-01-01T00:00:00Z" and s["startedAt"] == "2026-12-05T03:00:00Z"
    assert s["image"]["image"] == "registry.k8s.io/kube-proxy:v1.29.0"
    assert s["labels"] == {"io.kubernetes.container.name": "app", "io.kubernetes.pod.name": "web",
                           "io.kubernetes.pod.namespace": "default", "io.kubernetes.pod.uid": "u-1"}
    assert doc["info"]["pid"] == 4242 and doc["info"]["sandboxID"] == "b" * 64
    exited = cri.container_status(_view("d" * 64, state="terminated"), None)["status"]
    assert (exited["state"], exited["exitCode"], exited["reason"]) == ("CONTAINER_EXITED", 1, "Error")
    assert exited["finishedAt"] == "2026-12-05T03:01:00Z"


def test_pods_and_images_columns():
    items = [cri.sandbox(cri.SandboxView(id="e" * 64, pod="web", namespace="default", uid="u", ready=True,
                                         created=100.0, ip="10.244.1.5", pid=9, host_network=False)),
             cri.sandbox(cri.SandboxView(id="f" * 64, pod="gone", namespace="kube-system", uid="v", ready=False,
                                         created=50.0, ip="", pid=None, host_network=True))]
    out = crictl.format_pods(crictl.select_pods(items), now=110.0).splitlines()
    assert out[0].split() == ["POD", "ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"]
    assert out[1].split() == ["e" * 13, "10", "seconds", "ago", "Ready", "web", "default", "0", "(default)"]
    assert out[2].split()[1:7] == ["About", "a", "minute", "ago", "NotReady", "gone"]
    assert [p["metadata"]["name"] for p in crictl.select_pods(items, namespace="kube")] == ["gone"]
    with pytest.raises(crictl.CrictlError, match="ready or notready"):
        crictl.select_pods(items, state="up")
    images = cri.images(["registry.k8s.io/kube-proxy:v1.29.0", "busybox", "registry.k8s.io/kube-proxy:v1.29.0"],
                        "registry.k8s.io/pause:3.9")
    table = crictl.format_images(images).splitlines()
    assert table[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    assert [line.split()[:2] for line in table[1:]] == [
        ["busybox", "latest"], ["registry.k8s.io/kube-proxy", "v1.29.0"], ["registry.k8s.io/pause", "3.9"]]
    assert table[1].split()[2] == cri.image_digest("busybox").removeprefix("sha256:")[:13]


def test_version_and_fatal_lines():
    assert crictl.format_version(cri.version("v1.29.0")) == (
        "Version:  0.1.0\nRuntimeName:  knet\nRuntimeVersion:  v1.29.0\nRuntimeApiVersion:  v1\n")
    assert crictl.fatal_line('no "x"', tty=True) == 'FATA[0000] no "x"\n'
    line = crictl.fatal_line('no "x"', tty=False, now=0)
    assert line == 'time="1970-01-01T00:00:00Z" level=fatal msg="no \\"x\\""\n'


def test_endpoint_order_flag_env_config_default(tmp_path):
    conf = tmp_path / "crictl.yaml"
    conf.write_text("runtime-endpoint: unix:///from/config.sock\n")
    env = {"CRI_CONFIG_FILE": str(conf)}
    assert crictl.resolve_endpoint("unix:///flag.sock", env, None) == ("unix:///flag.sock", None)
    assert crictl.resolve_endpoint(None, {**env, "CONTAINER_RUNTIME_ENDPOINT": "unix:///env.sock"}, None)[0] == \
        "unix:///env.sock"
    assert crictl.resolve_endpoint(None, env, None) == ("unix:///from/config.sock", None)
    assert crictl.resolve_endpoint(None, {}, str(conf))[0] == "unix:///from/config.sock"
    endpoint, warning = crictl.resolve_endpoint(None, {}, None) if not os.path.exists(crictl.DEFAULT_CONFIG) \
        else (None, "default endpoints")
    assert endpoint is None and "default endpoints" in warning
    with pytest.raises(crictl.CrictlError, match="load config file"):
        crictl.resolve_endpoint(None, {"CRI_CONFIG_FILE": str(tmp_path / "missing.yaml")}, None)


def _crictl(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = crictl.run(list(argv), out=out, err=err, env={})
    return code, out.getvalue(), err.getvalue()


def test_unknown_subcommand_and_unreachable_endpoint_fail_with_exit_1(tmp_path):
    code, out, err = _crictl("-r", f"unix://{tmp_path}/none.sock", "frobnicate")
    assert code == 1 and "No help topic for 'frobnicate'" in err and "level=fatal" in err
    code, out, err = _crictl("-r", f"unix://{tmp_path}/none.sock", "ps")
    assert code == 1 and out == ""
    assert f"dial unix {tmp_path}/none.sock: connect: no such file or directory" in err


async def _ask(*argv: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(_crictl, *argv)


async def test_the_kubelets_runtime_endpoint_answers_crictl(tmp_path):
    """A kubelet (on the fakes) serving its endpoint on a real unix socket, crictl asking it."""
    sock = tmp_path / "run" / "containerd" / "containerd.sock"
    async with running_kubelet(tmp_path / "root") as k:
        k.kubelet.cfg.container_runtime_endpoint = f"unix://{sock}"
        await k.create_pod({"metadata": {"name": "web", "labels": {"app": "web"}},
                            "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}})
        await eventually(lambda: k.container_status("web", "app").get("state", {}).get("running"), what="app running")
        runner = await criserver.start(k.kubelet)
        try:
            mode = os.stat(sock).st_mode
            assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660  # root's, as containerd.sock
            assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o711
            ep = f"unix://{sock}"
            code, out, err = await _ask("-r", ep, "ps")
            assert code == 0, err
            header, row = out.splitlines()
            assert re.split(r"\s{2,}", row)[3:] == ["Running", "app", "0", row.split()[-2], "web"]
            cid = (await _ask("-r", ep, "ps", "-q"))[1].strip()
            status_id = k.container_status("web", "app")["containerID"].removeprefix("knet://")
            assert cid == status_id  # the ID the pod's status names
            code, out, err = await _ask("-r", ep, "inspect", cid[:8])  # a unique prefix will do
            doc = json.loads(out)
            assert code == 0 and doc["status"]["id"] == cid
            assert doc["status"]["labels"]["io.kubernetes.pod.name"] == "web"
            assert doc["status"]["logPath"].startswith("/var/log/pods/default_web_")
            pod_id = doc["info"]["sandboxID"]
            code, out, err = await _ask("-r", ep, "pods")
            assert out.splitlines()[1].split()[0] == pod_id[:13] and "Ready" in out
            inspectp = json.loads((await _ask("-r", ep, "inspectp", pod_id))[1])
            assert inspectp["status"]["labels"]["app"] == "web"
            assert inspectp["info"]["image"] == "registry.k8s.io/pause:3.9"
            code, out, err = await _ask("-r", ep, "logs", cid)
            assert code == 0 and "started app" in out
            images = (await _ask("-r", ep, "images"))[1]
            assert [line.split()[:2] for line in images.splitlines()[1:]] == [["nginx", "1.25"],
                                                                               ["registry.k8s.io/pause", "3.9"]]
            assert "RuntimeName:  knet" in (await _ask("-r", ep, "version"))[1]
            info = json.loads((await _ask("-r", ep, "info"))[1])
            assert [c["type"] for c in info["status"]["conditions"]] == ["RuntimeReady", "NetworkReady"]
            code, out, err = await _ask("-r", ep, "inspect", "0000dead")
            assert code == 1 and 'getting the status of the container \\"0000dead\\"' in err
            assert "code = NotFound" in err
            code, out, err = await _ask("-r", ep, "inspectp", "0000dead")
            assert code == 1 and "NotFound" in err
        finally:
            await runner.cleanup()


def test_a_live_socket_is_not_taken_over(tmp_path):
    path = str(tmp_path / "c.sock")
    first = criserver.listen(path)
    try:
        with pytest.raises(OSError, match="another runtime"):
            criserver.listen(path)
    finally:
        first.close()
    second = criserver.listen(path)  # a stale one (nobody listens) is replaced
    second.close()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="not a socket"):
        criserver.listen(str(tmp_path / "file"))
    assert criserver.socket_path("unix:///var/run/containerd/containerd.sock") == "/var/run/containerd/containerd.sock"
    with pytest.raises(ValueError):
        criserver.socket_path("tcp://127.0.0.1:1")


async def test_ps_all_keeps_the_previous_instance_of_a_restarted_container(tmp_path):
    """As containerd with the kubelet's container GC: the last dead instance stays listed (Exited,
    attempt 0) beside the running one (attempt 1), and its logs stay readable."""
    sock = tmp_path / "c.sock"
    async with running_kubelet(tmp_path / "root") as k:
        k.kubelet.cfg.container_runtime_endpoint = f"unix://{sock}"
        await k.create_pod({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app", "image": "busybox"}]}})
        await eventually(lambda: k.container_status("web", "app").get("state", {}).get("running"), what="app running")
        first = k.container_status("web", "app")["containerID"].removeprefix("knet://")
        k.runtime.running("web", "app").log("last words")
        k.runtime.running("web", "app").exit(3)
        await eventually(lambda: k.container_status("web", "app").get("restartCount") == 1 and
                         k.container_status("web", "app").get("state", {}).get("running"), what="app restarted")
        runner = await criserver.start(k.kubelet)
        try:
            ep = f"unix://{sock}"
            running = [re.split(r"\s{2,}", line) for line in (await _ask("-r", ep, "ps"))[1].splitlines()[1:]]
            assert [(r[3], r[5]) for r in running] == [("Running", "1")]
            rows = [re.split(r"\s{2,}", line) for line in (await _ask("-r", ep, "ps", "-a"))[1].splitlines()[1:]]
            assert sorted((r[0], r[3], r[5]) for r in rows) == sorted([(first[:13], "Exited", "0"),
                                                                       (running[0][0], "Running", "1")])
            old = json.loads((await _ask("-r", ep, "inspect", first))[1])["status"]
            assert (old["state"], old["exitCode"], old["metadata"]["attempt"]) == ("CONTAINER_EXITED", 3, 0)
            assert "last words" in (await _ask("-r", ep, "logs", first))[1]
            assert "last words" not in (await _ask("-r", ep, "logs", running[0][0]))[1]
            # -p: the attempt before the one named (upstream crictl's check when there is none)
            assert "last words" in (await _ask("-r", ep, "logs", "-p", running[0][0]))[1]
            code, out, err = await _ask("-r", ep, "logs", "-p", first)
            assert code == 1 and "previous terminated container app not found" in err
        finally:
            await runner.cleanup()


async def test_crictl_logs_flags_read_the_cri_records(tmp_path):
    """crictl logs renders the container's CRI records as upstream crictl (the kubelet's logs
    package): stdout records to stdout, stderr records to stderr, --tail, --since, -t, --limit-bytes,
    --stream."""
    sock = tmp_path / "c.sock"
    async with running_kubelet(tmp_path / "root") as k:
        k.kubelet.cfg.container_runtime_endpoint = f"unix://{sock}"
        await k.create_pod({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app", "image": "busybox"}]}})
        await eventually(lambda: k.container_status("web", "app").get("state", {}).get("running"), what="app running")
        app = k.runtime.running("web", "app")
        old = crilog.Stamp.now() + -600  # ten minutes ago
        with open(app.log_path, "ab") as f:
            f.write(crilog.encode(old, crilog.STDOUT, crilog.FULL, b"old news"))
        app.log("to stderr", crilog.STDERR)
        app.log("last")
        runner = await criserver.start(k.kubelet)
        try:
            ep = f"unix://{sock}"
            cid = (await _ask("-r", ep, "ps", "-q"))[1].strip()
            code, out, err = await _ask("-r", ep, "logs", cid)
            assert (code, out, err) == (0, "started app\nold news\nlast\n", "to stderr\n")
            assert (await _ask("-r", ep, "logs", "--tail", "2", cid))[1:] == ("last\n", "to stderr\n")
            recent = ("started app\nlast\n", "to stderr\n")  # not the record of ten minutes ago
            assert (await _ask("-r", ep, "logs", "--since", "5m", cid))[1:] == recent
            assert (await _ask("-r", ep, "logs", "--stream", "stdout", "--since", "5m", cid))[1:] == (recent[0], "")
            assert (await _ask("-r", ep, "logs", "--limit-bytes", "13", cid))[1] == "started app\no"
            out = (await _ask("-r", ep, "logs", "-t", "--tail", "1", cid))[1]
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z last\n", out), out
        finally:
            await runner.cleanup()


def test_crictl_since_takes_a_duration_a_time_or_unix_seconds():
    now = crilog.parse_time("2026-12-05T07:00:00Z")
    assert crictl.parse_since("42m", now) == crilog.parse_time("2026-12-05T06:18:00Z")
    assert crictl.parse_since("1h30m", now) == crilog.parse_time("2026-12-05T05:30:00Z")
    assert crictl.parse_since("2026-12-05T06:00:00.5Z", now) == crilog.parse_time("2026-12-05T06:00:00.5Z")
    assert crictl.parse_since("1764918000", now) == crilog.parse_time("2025-12-05T07:00:00Z")
    with pytest.raises(crictl.CrictlError):
        crictl.parse_since("yesterday", now)


async def test_crictl_logs_follow_prints_new_lines_until_the_container_exits(tmp_path):
    """crictl logs -f (cri-tools' logs.go: the kubelet's ReadLogs with Follow): the last --tail
    records, then each line as the container writes it, and it ends (exit 0) once the container
    has exited, with what it wrote last."""
    sock = tmp_path / "c.sock"
    async with running_kubelet(tmp_path / "root") as k:
        k.kubelet.cfg.container_runtime_endpoint = f"unix://{sock}"
        await k.create_pod({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app", "image": "busybox"}]}})
        await eventually(lambda: k.container_status("web", "app").get("state", {}).get("running"), what="app running")
        app = k.runtime.running("web", "app")
        app.log("second")
        runner = await criserver.start(k.kubelet)
        try:
            ep = f"unix://{sock}"
            cid = (await _ask("-r", ep, "ps", "-q"))[1].strip()
            out, err = io.StringIO(), io.StringIO()
            follower = asyncio.create_task(asyncio.to_thread(
                crictl.run, ["-r", ep, "logs", "-f", "--tail", "1", cid], out=out, err=err, env={}))
            await eventually(lambda: out.getvalue() == "second\n", what="the last record")
            app.log("third")
            app.log("oops", crilog.STDERR)
            await eventually(lambda: out.getvalue() == "second\nthird\n" and err.getvalue() == "oops\n",
                             what="the new lines as they were written")
            assert not follower.done()  # it follows on while the container runs
            app.log("last words")
            app.exit(0)
            assert await asyncio.wait_for(follower, 5) == 0
            assert out.getvalue() == "second\nthird\nlast words\n"
        finally:
            await runner.cleanup()


async def test_a_kubelet_going_away_ends_crictl_logs_follow(tmp_path):
    """The endpoint's shutdown does not wait on a follower (the container runs on, to be
    re-adopted by the next kubelet): crictl ends with what was written."""
    sock = tmp_path / "c.sock"
    async with running_kubelet(tmp_path / "root") as k:
        k.kubelet.cfg.container_runtime_endpoint = f"unix://{sock}"
        await k.create_pod({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app", "image": "busybox"}]}})
        await eventually(lambda: k.container_status("web", "app").get("state", {}).get("running"), what="app running")
        runner = await criserver.start(k.kubelet)
        ep = f"unix://{sock}"
        cid = (await _ask("-r", ep, "ps", "-q"))[1].strip()
        out = io.StringIO()
        follower = asyncio.create_task(asyncio.to_thread(
            crictl.run, ["-r", ep, "logs", "-f", cid], out=out, err=io.StringIO(), env={}))
        await eventually(lambda: out.getvalue() == "started app\n", what="the log so far")
        await asyncio.wait_for(runner.cleanup(), 3)
        assert await asyncio.wait_for(follower, 3) == 0
        assert k.runtime.running("web", "app").returncode is None  # still running
