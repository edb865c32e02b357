"""`knet controller-manager --use-service-account-credentials=true` (what kubeadm and `knet up`
pass) against a real `knet apiserver`: the controller-manager, authenticated by its client
certificate as system:kube-controller-manager, creates each controller's service account in
kube-system and gets it a bound token through TokenRequest; the controllers then do their work
with those tokens (their clients carry no client certificate, so every write they make is the
service account's: a token the apiserver refused would be a 401 and nothing would happen).

What shows a controller's identity in the objects it writes, upstream: Events name the reporting
controller (`source.component` / `reportingComponent`: deployment-controller,
replicaset-controller, ...); managedFields do not (upstream's default field manager is the user
agent's first word, `kube-controller-manager`, whichever account wrote).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from node_agents import KNET, wait_for

pytestmark = pytest.mark.api

NS = "creds"
# The accounts of the controllers on by default (garbagecollector and namespace are opt-in in knet;
# their accounts appear only when they run).
ACCOUNTS = {"deployment-controller", "replicaset-controller", "endpointslice-controller", "endpoint-controller",
            "daemon-set-controller", "node-controller", "service-account-controller", "root-ca-cert-publisher",
            "pod-garbage-collector"}


@pytest.fixture
def cluster(apiserver_factory, tmp_path):
    from knet.cluster.pki import load_cert_key, write_client_kubeconfig

    server = apiserver_factory()
    kcm_conf = tmp_path / "controller-manager.conf"
    write_client_kubeconfig(kcm_conf, load_cert_key(server.pki_dir, "ca"), server=server.url,
                            user="system:kube-controller-manager")
    log_path = tmp_path / "controller-manager.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([*KNET, "controller-manager", f"--kubeconfig={kcm_conf}",
                                 "--use-service-account-credentials=true", "--leader-elect=false",
                                 "--allocate-node-cidrs=true", "--cluster-cidr=10.244.0.0/16",
                                 f"--root-ca-file={server.ca_file}"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield server, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        print(log_path.read_text()[-6000:])  # shown when the test fails


def kubectl_json(server, *args: str) -> dict:
    return json.loads(server.kubectl_ok(*args, "-o", "json"))


def test_controllers_work_with_their_own_service_accounts(cluster):
    server, proc = cluster
    server.kubectl_ok("create", "namespace", NS)
    server.kubectl_ok("create", "deployment", "web", "--image=nginx", "--replicas=2", "-n", NS)
    server.kubectl_ok("expose", "deployment", "web", "--port=80", "-n", NS)

    def accounts() -> set[str]:
        return {sa["metadata"]["name"] for sa in kubectl_json(server, "get", "serviceaccounts", "-n", "kube-system")["items"]}

    found = wait_for("the controllers' service accounts", lambda: ACCOUNTS <= accounts() and accounts())
    assert not {"generic-garbage-collector", "namespace-controller"} & found  # not running: no account
    # every controller works: ReplicaSet and pods, the namespace's default account and CA bundle
    def web_pods() -> list[dict]:
        return kubectl_json(server, "get", "pods", "-n", NS, "-l", "app=web")["items"]

    pods = wait_for("the Deployment's pods", lambda: len(web_pods()) == 2 and web_pods())
    wait_for("kube-root-ca.crt and the default account", lambda: server.kubectl("get", "configmap/kube-root-ca.crt",
             "serviceaccount/default", "-n", NS).returncode == 0)

    # play the kubelet: the pods run and are Ready; their EndpointSlice and Endpoints follow
    from kubernetes import client as k8s
    core = k8s.CoreV1Api(server.client())
    for i, pod in enumerate(pods):
        ip = f"10.244.1.{10 + i}"
        core.patch_namespaced_pod_status(pod["metadata"]["name"], NS, {"status": {
            "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True"}]}})

    def slice_addresses() -> list[str]:
        slices = kubectl_json(server, "get", "endpointslices", "-n", NS, "-l", "kubernetes.io/service-name=web")
        return sorted(a for s in slices["items"] for e in s.get("endpoints") or []
                      if (e.get("conditions") or {}).get("ready") for a in e["addresses"])

    assert wait_for("the EndpointSlice's endpoints", lambda: len(slice_addresses()) == 2 and slice_addresses()) == \
        ["10.244.1.10", "10.244.1.11"]
    endpoints = wait_for("the Endpoints", lambda: (e := kubectl_json(server, "get", "endpoints", "web", "-n", NS))
                         .get("subsets") and e)
    assert sorted(a["ip"] for s in endpoints["subsets"] for a in s.get("addresses") or []) == \
        ["10.244.1.10", "10.244.1.11"]

    # Events name the controller that reported them
    def reporters() -> dict[str, set[str]]:
        events = kubectl_json(server, "get", "events", "-n", NS)["items"]
        out: dict[str, set[str]] = {}
        for ev in events:
            out.setdefault(ev["reason"], set()).add(ev.get("reportingComponent") or ev["source"]["component"])
        return out

    seen = wait_for("the controllers' events", lambda: {"ScalingReplicaSet", "SuccessfulCreate"} <= set(r := reporters())
                    and r)
    assert seen["ScalingReplicaSet"] == {"deployment-controller"}
    assert seen["SuccessfulCreate"] == {"replicaset-controller"}
    assert proc.poll() is None, "the controller-manager exited"
