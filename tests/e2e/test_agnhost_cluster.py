"""agnhost on a real knet cluster as users and upstream's e2e suites run it: every container form
(args after the image's /agnhost entrypoint, `command: [/agnhost, ...]`, the image's default
`pause`), traffic between pods on different nodes, /dial through a Service as upstream's Services
tests use it, serve-hostname's defaults, two containers on one port with TCP and UDP, porter,
connect's exit codes and messages, the dns subcommands, netexec's --delay-shutdown.
One namespace (session cluster `knet_cluster`), deleted at the end also on failure."""

from __future__ import annotations

import ipaddress
import json
import secrets
import time

import pytest
import yaml

from .cluster_namespaces import cluster_namespace

pytestmark = pytest.mark.e2e

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"


def _pod(name: str, node: str, *, labels: dict | None = None, command=None, args=None, env=None,
         containers=None, restart: str = "Always", grace: int = 1) -> dict:
    main = {"name": "agnhost", "image": AGNHOST}
    if command is not None:
        main["command"] = command
    if args is not None:
        main["args"] = args
    if env:
        main["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"nodeName": node, "restartPolicy": restart, "terminationGracePeriodSeconds": grace,
                     "containers": containers or [main]}}


@pytest.fixture(scope="module")
def agn(knet_cluster):
    """The namespace and the long-running pods every test talks to, started together."""
    pods = [
        # args after the image's ENTRYPOINT, flag values space-separated
        _pod("netexec-args", "node01", labels={"app": "netexec"},
             args=["netexec", "--http-port", "8080", "--udp-port", "8081"]),
        # command naming the binary; UDP disabled
        _pod("netexec-cmd", "node02", command=["/agnhost", "netexec", "--http-port=8080", "--udp-port=-1"]),
        _pod("hostnames", "node02", args=["serve-hostname"]),
        _pod("mixed", "node01", containers=[
            {"name": "tcp", "image": AGNHOST, "args": ["serve-hostname", "--port", "9000"],
             "ports": [{"containerPort": 9000, "protocol": "TCP"}]},
            {"name": "udp", "image": AGNHOST, "args": ["serve-hostname", "--udp", "--http=false", "--port=9000"],
             "ports": [{"containerPort": 9000, "protocol": "UDP"}]}]),
        _pod("porter", "node02", args=["porter"], env={"SERVE_PORT_9001": "foo", "SERVE_UDP_PORT_9002": "bar"}),
        _pod("paused", "node01"),  # neither command nor args: the image's CMD, `pause`
    ]
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "netexec"},
           "spec": {"selector": {"app": "netexec"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    with cluster_namespace(knet_cluster, f"agn-{secrets.token_hex(3)}") as ns:
        knet_cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all([*pods, svc]))
        for p in pods:
            name = p["metadata"]["name"]
            knet_cluster.wait_for(f"{name} Running", lambda n=name: _get(knet_cluster, ns, n)["status"].get("phase")
                                  == "Running", timeout=60, interval=0.2)
        yield ns


def _get(cluster, ns: str, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "pod", name, "-n", ns, "-o", "json").stdout)


def _ip(cluster, ns: str, name: str) -> str:
    return _get(cluster, ns, name)["status"]["podIP"]


def _curl(cluster, ns: str, from_pod: str, *curl_args: str) -> str:
    """What a pod's `curl -s ARGS` prints (retried briefly: a server may still be binding)."""
    url = curl_args[-1]

    def body():
        r = cluster.kubectl("exec", "-n", ns, from_pod, "--", "curl", "-s", "--max-time", "5", *curl_args,
                            check=False)
        return r.stdout if r.returncode == 0 else None
    return cluster.wait_for(f"curl {url} from {from_pod}", body, timeout=15, interval=0.3)


def _dial(cluster, ns: str, from_pod: str, host: str, port: int, protocol: str = "http",
          request: str = "hostname", tries: int = 1) -> dict:
    url = (f"http://127.0.0.1:8080/dial?request={request}&protocol={protocol}&host={host}&port={port}"
           f"&tries={tries}")
    return json.loads(_curl(cluster, ns, from_pod, url))


def test_netexec_in_both_forms_answers_across_nodes(knet_cluster, agn):
    args_ip, cmd_ip = _ip(knet_cluster, agn, "netexec-args"), _ip(knet_cluster, agn, "netexec-cmd")
    assert _curl(knet_cluster, agn, "netexec-cmd", f"http://{args_ip}:8080/hostname") == "netexec-args"
    assert _curl(knet_cluster, agn, "netexec-args", f"http://{cmd_ip}:8080/hostName") == "netexec-cmd"
    client = _curl(knet_cluster, agn, "netexec-args", f"http://{cmd_ip}:8080/clientip")
    assert client.rsplit(":", 1)[0] == args_ip  # pod to pod: no SNAT
    assert _curl(knet_cluster, agn, "netexec-args", f"http://{cmd_ip}:8080/echo?msg=knet") == "knet"
    assert _curl(knet_cluster, agn, "netexec-args", f"http://{cmd_ip}:8080/").startswith("NOW: ")
    shell = json.loads(_curl(knet_cluster, agn, "netexec-args", f"http://{cmd_ip}:8080/shell?cmd=hostname"))
    assert shell == {"output": "netexec-cmd\n"}
    # readiness as upstream: /readyz is ok once the UDP server runs; without one it stays 412
    assert _curl(knet_cluster, agn, "netexec-cmd", f"http://{args_ip}:8080/readyz") == "ok"
    code = _curl(knet_cluster, agn, "netexec-args", "-o", "/dev/null", "-w", "%{http_code}",
                 f"http://{cmd_ip}:8080/readyz")
    assert code == "412"


def test_dial_between_pods_and_through_a_service(knet_cluster, agn):
    """upstream's e2e network tests: `/dial?request=hostname&protocol=...&host=...&port=...`."""
    args_ip, cmd_ip = _ip(knet_cluster, agn, "netexec-args"), _ip(knet_cluster, agn, "netexec-cmd")
    assert _dial(knet_cluster, agn, "netexec-cmd", args_ip, 8080) == {"responses": ["netexec-args"]}
    assert _dial(knet_cluster, agn, "netexec-cmd", args_ip, 8081, "udp", tries=2) == \
        {"responses": ["netexec-args", "netexec-args"]}
    cluster_ip = knet_cluster.kubectl("get", "svc", "netexec", "-n", agn, "-o", "jsonpath={.spec.clusterIP}").stdout
    via_service = knet_cluster.wait_for("dial through the Service", lambda: (
        d := _dial(knet_cluster, agn, "netexec-cmd", cluster_ip, 80)).get("responses") and d, timeout=20)
    assert via_service == {"responses": ["netexec-args"]}
    # --udp-port=-1: nothing listens on 8081 UDP in netexec-cmd
    refused = _dial(knet_cluster, agn, "netexec-args", cmd_ip, 8081, "udp")
    assert "responses" not in refused and "connection refused" in refused["errors"][0]
    # a TCP port nobody serves: the error, status 200, as upstream
    refused = _dial(knet_cluster, agn, "netexec-args", cmd_ip, 9, "http")
    assert refused == {"errors": [f'Get "http://{cmd_ip}:9/hostname": dial tcp {cmd_ip}:9: connect: '
                                  "connection refused"]}


def test_serve_hostname_defaults_to_http_on_9376_answering_the_pod_name(knet_cluster, agn):
    ip = _ip(knet_cluster, agn, "hostnames")
    assert _curl(knet_cluster, agn, "netexec-args", f"http://{ip}:9376/") == "hostnames"
    assert _curl(knet_cluster, agn, "netexec-args", f"http://{ip}:9376/any/path") == "hostnames"


def test_two_containers_one_port_tcp_and_udp(knet_cluster, agn):
    ip = _ip(knet_cluster, agn, "mixed")
    statuses = _get(knet_cluster, agn, "mixed")["status"]["containerStatuses"]
    assert all(s["ready"] and s["restartCount"] == 0 for s in statuses), statuses
    assert _curl(knet_cluster, agn, "netexec-cmd", f"http://{ip}:9000/") == "mixed"
    assert _dial(knet_cluster, agn, "netexec-args", ip, 9000, "udp") == {"responses": ["mixed"]}


def test_porter_answers_its_env_values(knet_cluster, agn):
    ip = _ip(knet_cluster, agn, "porter")
    assert _curl(knet_cluster, agn, "netexec-args", f"http://{ip}:9001/whatever") == "foo"
    assert _dial(knet_cluster, agn, "netexec-args", ip, 9002, "udp") == {"responses": ["bar"]}


def test_pause_is_the_default_and_opens_no_port(knet_cluster, agn):
    assert knet_cluster.kubectl("logs", "-n", agn, "paused").stdout == "Paused\n"
    # /proc/net/* of the pod's network namespace: no listening TCP or bound UDP socket
    out = knet_cluster.kubectl("exec", "-n", agn, "paused", "--", "sh", "-c",
                               "cat /proc/net/tcp /proc/net/udp /proc/net/tcp6 /proc/net/udp6 2>/dev/null; true").stdout
    assert "local_address" in out
    assert [line for line in out.splitlines() if not line.strip().startswith("sl")] == []


def _run_to_completion(cluster, ns: str, name: str, node: str, args: list[str]) -> tuple[dict, str]:
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(_pod(name, node, args=args, restart="Never")))
    cluster.wait_for(f"{name} completes", lambda: _get(cluster, ns, name)["status"].get("phase")
                     in ("Succeeded", "Failed"), timeout=40, interval=0.2)
    state = _get(cluster, ns, name)["status"]["containerStatuses"][0]["state"]["terminated"]
    return state, cluster.kubectl("logs", "-n", ns, name).stdout


def test_connect_exit_codes_and_messages(knet_cluster, agn):
    """`agnhost connect` as upstream's NetworkPolicy tests read it: exit 0, or 1 with a prefix."""
    ip = _ip(knet_cluster, agn, "netexec-args")
    state, logs = _run_to_completion(knet_cluster, agn, "connect-ok", "node02", ["connect", f"{ip}:8080",
                                                                                "--timeout=3s"])
    assert (state["exitCode"], state["reason"], logs) == (0, "Completed", "")
    state, logs = _run_to_completion(knet_cluster, agn, "connect-refused", "node02", ["connect", f"{ip}:9",
                                                                                     "--timeout", "3s"])
    assert (state["exitCode"], logs) == (1, "REFUSED\n")
    state, logs = _run_to_completion(knet_cluster, agn, "connect-udp", "node02",
                                     ["connect", f"{ip}:8081", "--protocol=udp", "--timeout=3s"])
    assert (state["exitCode"], logs) == (0, "")
    state, logs = _run_to_completion(knet_cluster, agn, "connect-dns", "node02",
                                     ["connect", "no-such-service:80", "--timeout=3s"])
    assert state["exitCode"] == 1 and logs.startswith("DNS: lookup no-such-service")


def test_dns_subcommands_print_the_pods_resolver(knet_cluster, agn):
    _, logs = _run_to_completion(knet_cluster, agn, "dns-suffix", "node01", ["dns-suffix"])
    assert logs == f"{agn}.svc.cluster.local,svc.cluster.local,cluster.local\n"
    _, logs = _run_to_completion(knet_cluster, agn, "dns-servers", "node01", ["dns-server-list"])
    assert logs == f"{ipaddress.IPv4Network(knet_cluster.config['serviceSubnet'])[10]}\n"  # 10.96.0.10 by default
    _, logs = _run_to_completion(knet_cluster, agn, "hosts", "node01", ["etc-hosts"])
    assert "# Kubernetes-managed hosts file." in logs and "\thosts" in logs


def test_delay_shutdown_keeps_serving_after_sigterm(knet_cluster, agn):
    pod = _pod("slow-exit", "node02", grace=30,
               command=["/agnhost", "netexec", "--http-port", "8080", "--delay-shutdown", "4"])
    knet_cluster.kubectl("apply", "-n", agn, "-f", "-", input=yaml.safe_dump(pod))
    knet_cluster.wait_for("slow-exit Running", lambda: _get(knet_cluster, agn, "slow-exit")["status"].get("phase")
                          == "Running", timeout=40, interval=0.2)
    ip = _ip(knet_cluster, agn, "slow-exit")
    assert _curl(knet_cluster, agn, "netexec-args", f"http://{ip}:8080/readyz") == "ok"
    started = time.monotonic()
    knet_cluster.kubectl("delete", "pod", "-n", agn, "slow-exit", "--wait=false")
    # SIGTERM seen: still answering, /readyz 503 ("take me out of endpoints"), /healthz 200
    readyz = knet_cluster.wait_for("readyz 503", lambda: _curl(
        knet_cluster, agn, "netexec-args", "-w", ":%{http_code}", f"http://{ip}:8080/readyz") == "shutting down:503",
        timeout=5, interval=0.2)
    assert readyz
    assert _curl(knet_cluster, agn, "netexec-args", f"http://{ip}:8080/hostname") == "slow-exit"
    knet_cluster.wait_for("slow-exit gone", lambda: knet_cluster.kubectl(
        "get", "pod", "-n", agn, "slow-exit", check=False).returncode != 0, timeout=25, interval=0.2)
    elapsed = time.monotonic() - started
    assert 3.5 < elapsed < 20, elapsed  # the 4 s delay, not the 30 s grace period


def test_liveness_server_is_restarted_by_its_liveness_probe(knet_cluster, agn):
    """upstream's "should be restarted with a /healthz http liveness probe" (container_probe.go):
    agnhost liveness answers /healthz 500 after 10 s, the kubelet restarts it."""
    pod = _pod("liveness", "node01", args=["liveness"])
    pod["spec"]["containers"][0]["livenessProbe"] = {
        "httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": 5, "periodSeconds": 1,
        "failureThreshold": 1}
    knet_cluster.kubectl("apply", "-n", agn, "-f", "-", input=yaml.safe_dump(pod))
    status = knet_cluster.wait_for("liveness restarted", lambda: (
        s := _get(knet_cluster, agn, "liveness")["status"].get("containerStatuses")) and s[0]["restartCount"] >= 1
        and s[0], timeout=40, interval=0.5)
    assert status["lastState"]["terminated"]["exitCode"] in (137, 143)  # SIGTERM, or SIGKILL after the grace period
    events = knet_cluster.kubectl("get", "events", "-n", agn, "--field-selector", "involvedObject.name=liveness").stdout
    assert "Liveness probe failed: HTTP probe failed with statuscode: 500" in events
