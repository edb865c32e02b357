"""Service-account tokens that last, on a real cluster whose tokens live 20 s
(`serviceAccountTokenMaxExpiration: 20s`): the kubelet renews every pod's projected token before
it expires, and kube-proxy, CoreDNS and a client pod, which all speak to the API with those
tokens, keep working across several expiries. After the third expiry (and past the first
token's 60 s leeway, so a token that was never renewed is dead) the apiserver is restarted, so
every component must authenticate afresh with the token it holds now; then a new Service gets
kube-proxy rules on every node and a DNS name.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from knet.cluster.processes import component_of, proc_cmdline
from knet.cluster.testing import ClusterUnderTest

pytestmark = pytest.mark.e2e

LIFETIME = 20  # seconds: every token's life in this cluster
SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def _claims(token: str) -> dict:
    import base64

    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _api_status(cluster: ClusterUnderTest, token: str) -> int:
    """GET /api with a bearer token from the host: 200, or 401 for a token the apiserver refuses."""
    ca = cluster.state_dir / cluster.name / "pki" / "ca.crt"
    ctx = ssl.create_default_context(cafile=str(ca))
    server = yaml.safe_load(cluster.admin_kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    req = urllib.request.Request(server + "/api", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _apiserver_pids(cluster: ClusterUnderTest) -> list[int]:
    """The processes of this cluster's kube-apiserver (its flags name the cluster's state dir)."""
    marker = f"{cluster.state_dir}/{cluster.name}/"
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        argv = proc_cmdline(int(proc.name))
        if component_of(argv) == "apiserver" and any(marker in a for a in argv):
            pids.append(int(proc.name))
    return pids


def _exec(cluster: ClusterUnderTest, ns: str, pod: str, *command: str, timeout: float = 20):
    return cluster.kubectl("exec", "-n", ns, pod, "--", *command, check=False, timeout=timeout)


def test_components_keep_working_across_token_expiries(tmp_path):
    import shutil

    from knet.cluster.host import real_dataplane_problem

    problem = ("needs the real kubectl" if shutil.which("kubectl") is None else None) or real_dataplane_problem()
    if problem:
        pytest.fail(f"real dataplane unavailable: {problem}")
    config = tmp_path / "cluster.yaml"
    config.write_text(yaml.safe_dump({"kind": "Cluster", "apiVersion": "knet.io/v1alpha1",
                                      "serviceAccountTokenMaxExpiration": f"{LIFETIME}s"}))
    with ClusterUnderTest.up(nodes=2, dataplane="real", extra_args=("--config", str(config))) as cluster:
        ps = cluster.ssh("controlplane", "ps", "-ef").stdout
        assert f"--service-account-max-token-expiration={LIFETIME}s" in ps
        assert "--service-account-extend-token-expiration=false" in ps
        ns = f"tok-{secrets.token_hex(3)}"
        cluster.kubectl("create", "namespace", ns)
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": ns},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}))
        cluster.wait_for("the client pod Running", lambda: cluster.kubectl(
            "get", "pod", "client", "-n", ns, "-o", "jsonpath={.status.phase}", check=False).stdout == "Running",
            timeout=60, interval=0.2)

        def client_token() -> str:
            p = _exec(cluster, ns, "client", "cat", SA_TOKEN)
            assert p.returncode == 0 and p.stdout.strip(), f"kubectl exec cat {SA_TOKEN}: {p.stderr}"
            return p.stdout.strip()

        first = client_token()
        c = _claims(first)
        assert c["exp"] - c["iat"] == LIFETIME and "warnafter" not in c["kubernetes.io"]
        seen = {first}
        # Three lifetimes, and past the first token's expiry plus the apiserver's 60 s leeway.
        until = c["iat"] + max(3 * LIFETIME, LIFETIME + 60) + 3
        while time.time() < until:
            token = client_token()
            if token:
                seen.add(token)
            time.sleep(2)
        assert len(seen) >= 4, f"the client pod's token was renewed {len(seen) - 1} times in {3 * LIFETIME}+ s"
        assert _api_status(cluster, first) == 401  # tokens do expire: only renewal keeps pods working
        current = client_token()
        assert _api_status(cluster, current) == 200
        # The client pod speaks to the API through the kubernetes Service with its mounted token.
        out = _exec(cluster, ns, "client", "sh", "-c",
                    f'curl -s -o /dev/null -w "%{{http_code}}" --cacert {os.path.dirname(SA_TOKEN)}/ca.crt '
                    f'-H "Authorization: Bearer $(cat {SA_TOKEN})" https://kubernetes.default.svc/api').stdout
        assert out == "200"

        # Every component must authenticate afresh now: restart the apiserver (its kubelet
        # restarts the static pod), cutting every watch.
        pids = _apiserver_pids(cluster)
        assert pids, "the kube-apiserver process was not found"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        cluster.wait_for("the apiserver back", lambda: cluster.kubectl("get", "--raw", "/readyz", check=False,
                                                                       timeout=5).stdout == "ok",
                         timeout=60, interval=0.5)

        cluster.kubectl("create", "service", "clusterip", "late", "-n", ns, "--tcp=80:8080")
        ip = cluster.kubectl("get", "svc", "late", "-n", ns, "-o", "jsonpath={.spec.clusterIP}").stdout
        for node in ("controlplane", "node01"):
            cluster.wait_for(f"kube-proxy rules for {ns}/late on {node}", lambda n=node: ip in cluster.ssh(
                n, "sh", "-c", "iptables-save -t nat 2>/dev/null; nft list ruleset 2>/dev/null").stdout,
                timeout=60, interval=1)
        name = f"late.{ns}.svc.cluster.local"
        answer = cluster.wait_for(f"CoreDNS answering {name}", lambda: _exec(
            cluster, ns, "client", "getent", "hosts", name).stdout, timeout=60, interval=1)
        assert answer.split()[0] == ip
        for component in ("kube-proxy", "coredns"):
            app = "kube-dns" if component == "coredns" else component
            logs = cluster.kubectl("logs", "-n", "kube-system", "-l", f"k8s-app={app}", "--tail=200",
                                   check=False).stdout
            assert "Unauthorized" not in logs, f"{component} was refused:\n{logs[-2000:]}"
