"""pods/log and pods/exec relayed by the apiserver to a real node agent (`knet kubelet
--dataplane=sim`, whose static pod runs as a host process): kubectl logs, kubectl exec over
WebSocket (v5.channel.k8s.io) with stdout, stdin and exit codes, and the errors kubectl shows."""

from __future__ import annotations

import pytest
from node_agents import host_static_pod, sim_kubelet, wait_for

pytestmark = pytest.mark.api

NODE = "relay-node"
STATIC = host_static_pod("echoer", {"main": "echo started; exec sleep 3600", "second": "exec sleep 3600"})


@pytest.fixture(scope="module")
def node_agent(apiserver, tmp_path_factory):
    pod = f"echoer-{NODE}"
    with sim_kubelet(apiserver, tmp_path_factory.mktemp("relay-kubelet"), NODE, kubeconfig=apiserver.kubeconfig,
                     pod_cidr="10.244.77.0/24", taint="example.com/relay-only:NoSchedule",
                     static_pods={"echoer": STATIC}):
        wait_for("mirror pod logs", lambda: "started" in apiserver.kubectl("logs", pod, "-c", "main").stdout,
                 timeout=20.0, interval=0.1)
        yield pod


def test_logs_through_the_apiserver(apiserver, node_agent):
    assert apiserver.kubectl_ok("logs", node_agent, "-c", "main") == "started\n"
    # kubectl picks the first container itself; the API requires a choice for a two-container pod.
    p = apiserver.kubectl("logs", node_agent)
    assert (p.stdout, p.stderr) == ("started\n", 'Defaulted container "main" out of: main, second\n')
    p = apiserver.kubectl("get", "--raw", f"/api/v1/namespaces/default/pods/{node_agent}/log")
    assert p.returncode == 1
    assert "a container name must be specified for pod echoer-relay-node, choose one of: [main second]" in p.stderr
    assert apiserver.kubectl_ok("get", "--raw", f"/api/v1/namespaces/default/pods/{node_agent}/log?container=main"
                                "&tailLines=1") == "started\n"


def test_exec_stdout_stdin_and_exit_codes(apiserver, node_agent):
    assert apiserver.kubectl_ok("exec", node_agent, "-c", "main", "--", "echo", "hello", "world") == "hello world\n"
    assert apiserver.kubectl_ok("exec", "-i", node_agent, "-c", "main", "--", "tr", "a-z", "A-Z",
                                input="shout\n") == "SHOUT\n"
    p = apiserver.kubectl("exec", node_agent, "-c", "main", "--", "sh", "-c", "echo oops >&2; exit 3")
    assert (p.returncode, p.stderr) == (3, "oops\ncommand terminated with exit code 3\n")
    p = apiserver.kubectl("exec", node_agent, "-c", "nope", "--", "true")
    assert p.returncode == 1 and "container nope is not valid for pod echoer-relay-node" in p.stderr
