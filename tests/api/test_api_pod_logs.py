"""`kubectl logs` and its options against a real node agent (`knet kubelet --dataplane=sim`, whose
static pod's containers are host processes writing CRI-format logs through knet's log writer):
--timestamps (each line's own time), --since, --since-time, --limit-bytes, --tail, --all-containers,
-l with --prefix, -f, --previous; and pods/log refusing what kube-apiserver refuses (a sinceTime
that does not parse: 400; a negative or zero value, sinceSeconds with sinceTime: 422; a user
without pods/log: 403)."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest
from node_agents import sim_kubelet, wait_for

from knet.node import crilog

pytestmark = pytest.mark.api
KUBECTL = "/usr/bin/kubectl"

NODE = "logs-node"
POD = f"ticker-{NODE}"
TICKER = "i=0; while :; do i=$((i+1)); echo out $i; echo err $i >&2; sleep 1; done"
CRASHER = "echo run $(date +%s%N); sleep 2; exit 1"
MANIFEST = f"""apiVersion: v1
kind: Pod
metadata: {{name: ticker, namespace: default, labels: {{app: ticker}}}}
spec:
  hostNetwork: true
  containers:
  - {{name: ticker, image: busybox, command: ["sh", "-c", "{TICKER}"]}}
  - {{name: crasher, image: busybox, command: ["sh", "-c", "{CRASHER}"]}}
"""


@pytest.fixture(scope="module")
def pod(apiserver, tmp_path_factory):
    with sim_kubelet(apiserver, tmp_path_factory.mktemp("logs-kubelet"), NODE, kubeconfig=apiserver.kubeconfig,
                     pod_cidr="10.244.81.0/24", taint="example.com/logs-only:NoSchedule",
                     static_pods={"ticker": MANIFEST}):
        wait_for("ticker's 6th line", lambda: "out 6\n" in apiserver.kubectl("logs", POD, "-c", "ticker").stdout,
                 timeout=40.0, interval=0.5)
        yield POD


def _stamped(text: str) -> list[tuple[crilog.Stamp, str]]:
    out = []
    for line in text.splitlines():
        stamp, _, rest = line.partition(" ")
        assert len(stamp) == len("2026-12-05T06:49:55.271636792Z"), line  # RFC3339NanoFixed
        out.append((crilog.parse_time(stamp), rest))
    return out


def test_timestamps_are_each_lines_own_time_and_both_streams_are_there(apiserver, pod):
    lines = _stamped(apiserver.kubectl_ok("logs", pod, "-c", "ticker", "--timestamps"))
    texts = [t for _, t in lines]
    # stdout and stderr both, each in its order (two pipes: across them, the order of reads decides)
    assert [t for t in texts if t.startswith("out ")][:3] == ["out 1", "out 2", "out 3"]
    assert [t for t in texts if t.startswith("err ")][:3] == ["err 1", "err 2", "err 3"]
    outs = {t: s for s, t in lines if t.startswith("out ")}
    gap = (outs["out 5"].ns - outs["out 1"].ns) / 1e9
    assert 3.5 < gap < 8, gap  # printed a second apart, stamped when printed (not when read)
    assert [s.ns for s, _ in lines] == sorted(s.ns for s, _ in lines)
    now = datetime.now(UTC).timestamp()
    assert now - 120 < lines[-1][0].ns / 1e9 <= now + 1


def test_since_and_since_time(apiserver, pod):
    everything = _stamped(apiserver.kubectl_ok("logs", pod, "-c", "ticker", "--timestamps"))
    asked = time.time()
    recent = _stamped(apiserver.kubectl_ok("logs", pod, "-c", "ticker", "--timestamps", "--since=2s"))
    assert recent and len(recent) < len(everything) - 4
    assert all(s.ns / 1e9 >= asked - 2.5 for s, _ in recent), recent
    # --since-time: from the third line on (kubectl sends it as RFC3339, to the second).
    third = next(s for s, t in everything if t == "out 3")
    since = datetime.fromtimestamp(third.ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    got = apiserver.kubectl_ok("logs", pod, "-c", "ticker", f"--since-time={since}").splitlines()
    assert "out 3" in got[:2] and "out 2" not in got and "err 2" not in got, got
    # Both at once: kubectl refuses before asking (the API would say 422, below).
    p = apiserver.kubectl("logs", pod, "-c", "ticker", "--since=1m", f"--since-time={since}")
    assert p.returncode != 0 and "at most one of `sinceTime` or `sinceSeconds` may be specified" in p.stderr, p.stderr


def test_limit_bytes_and_tail(apiserver, pod):
    first = apiserver.kubectl_ok("logs", pod, "-c", "ticker")
    assert first.startswith(("out 1\nerr 1\n", "err 1\nout 1\n"))
    assert apiserver.kubectl_ok("logs", pod, "-c", "ticker", "--limit-bytes=12") == first[:12]
    assert apiserver.kubectl_ok("logs", pod, "-c", "ticker", "--limit-bytes=9") == first[:9]
    stamped = apiserver.kubectl_ok("logs", pod, "-c", "ticker", "--timestamps")
    assert apiserver.kubectl_ok("logs", pod, "-c", "ticker", "--limit-bytes=40", "--timestamps") == stamped[:40]
    everything = apiserver.kubectl_ok("logs", pod, "-c", "ticker").splitlines()
    tail = apiserver.kubectl_ok("logs", pod, "-c", "ticker", "--tail=2").splitlines()
    assert len(tail) == 2 and {t.split()[0] for t in tail} == {"out", "err"}
    assert tail[0] in everything[-4:] and tail[1] not in everything[:-4]
    assert apiserver.kubectl_ok("logs", pod, "-c", "ticker", "--tail=0") == ""


def test_all_containers_and_selector_with_prefix(apiserver, pod):
    out = apiserver.kubectl_ok("logs", pod, "--all-containers", "--prefix")
    assert f"[pod/{pod}/ticker] out 1" in out.splitlines()
    assert any(line.startswith(f"[pod/{pod}/crasher] run ") for line in out.splitlines())
    out = apiserver.kubectl_ok("logs", "-l", "app=ticker", "-c", "ticker", "--prefix", "--tail=3")
    lines = out.splitlines()
    assert len(lines) == 3 and all(line.startswith(f"[pod/{pod}/ticker] ") for line in lines), out


def test_follow_streams_lines_as_they_are_printed(apiserver, pod):
    proc = subprocess.Popen([KUBECTL, f"--kubeconfig={apiserver.kubeconfig}", "logs", "-f", pod, "-c", "ticker",
                             "--tail=1"], stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        seen = [(time.monotonic(), proc.stdout.readline()) for _ in range(4)]
    finally:
        proc.kill()
        proc.wait()
    n = int(first.split()[1])
    lines = [line.split() for _, line in seen]
    for word in ("out", "err"):  # each stream goes on where the tail left it, a line a second
        numbers = [int(i) for w, i in lines if w == word]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) and n <= numbers[0] <= n + 1, lines
    assert seen[3][0] - seen[0][0] > 0.5  # arrived as printed, a second apart


def test_previous_is_the_last_instances_log(apiserver, pod):
    def restarted():
        status = json.loads(apiserver.kubectl_ok("get", "pod", pod, "-o", "json"))["status"]
        return next(c for c in status["containerStatuses"] if c["name"] == "crasher")["restartCount"] >= 1

    wait_for("crasher restarted", restarted, timeout=40.0, interval=0.5)
    previous = apiserver.kubectl_ok("logs", pod, "-c", "crasher", "--previous")
    current = apiserver.kubectl_ok("logs", pod, "-c", "crasher")
    assert previous.startswith("run ") and previous != current
    assert apiserver.kubectl_ok("logs", pod, "-c", "crasher", "--previous", "--timestamps").split(" ", 1)[1] == previous


def test_pods_log_refuses_what_the_apiserver_refuses(apiserver, pod):
    base = f"/api/v1/namespaces/default/pods/{pod}/log?container=ticker"
    ctx = ssl.create_default_context(cafile=apiserver.ca_file)

    def status(query: str) -> tuple[int, str]:
        req = urllib.request.Request(apiserver.url + base + "&" + query,
                                     headers={"Authorization": f"Bearer {apiserver.token}"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())["message"]

    assert status("sinceTime=yesterday") == (400, 'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": '
                                                  'cannot parse "yesterday" as "2006"')
    assert status("sinceSeconds=abc") == (400, 'strconv.ParseInt: parsing "abc": invalid syntax')
    assert status("limitBytes=99999999999999999999")[0] == 400
    assert status("sinceSeconds=-5") == (422, f'PodLogOptions "{pod}" is invalid: '
                                               "sinceSeconds: Invalid value: -5: must be greater than 0")
    assert status("tailLines=-1") == (422, f'PodLogOptions "{pod}" is invalid: '
                                           "tailLines: Invalid value: -1: must be greater than or equal to 0")
    assert status("limitBytes=0") == (422, f'PodLogOptions "{pod}" is invalid: '
                                           "limitBytes: Invalid value: 0: must be greater than 0")
    assert status("sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z") == (
        422, f'PodLogOptions "{pod}" is invalid: : Forbidden: at most one of `sinceTime` or `sinceSeconds` may be '
        "specified")
    code, body = status("limitBytes=9223372036854775807&tailLines=1")  # huge is fine: the whole (last) line
    assert code == 200 and body.startswith("err ")


def test_a_user_without_pods_log_is_refused(apiserver, pod):
    ns_args = ["-n", "default"]
    apiserver.kubectl("delete", "role", "pod-getter", *ns_args)
    apiserver.kubectl("delete", "rolebinding", "pod-getter", *ns_args)
    apiserver.kubectl_ok("create", "role", "pod-getter", "--verb=get,list", "--resource=pods", *ns_args)
    apiserver.kubectl_ok("create", "rolebinding", "pod-getter", "--role=pod-getter", "--user=log-less", *ns_args)
    try:
        p = apiserver.kubectl("logs", pod, "-c", "ticker", "--as=log-less")
        assert p.returncode == 1
        assert ('pods "ticker-logs-node" is forbidden: User "log-less" cannot get resource "pods/log" in API group "" '
                'in the namespace "default"') in p.stderr
        assert p.stdout == ""
    finally:
        apiserver.kubectl("delete", "role", "pod-getter", *ns_args)
        apiserver.kubectl("delete", "rolebinding", "pod-getter", *ns_args)
