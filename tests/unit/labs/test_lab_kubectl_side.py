"""The real side's command lines (knet.labs.access.KubectlCluster) against a stand-in kubectl that
records its argv and answers as kubectl does (NotFound on stderr, exit 1)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from knet.labs.access import KubectlCluster, LabClusterError

KUBECTL = """#!/bin/sh
printf '%s\\n' "$*" >> "$LOG"
case "$*" in
  *"get pods missing"*) echo 'Error from server (NotFound): pods "missing" not found' >&2; exit 1 ;;
  *"get pods broken"*) echo 'Unable to connect to the server: dial tcp: connection refused' >&2; exit 1 ;;
  *"get services"*) echo '{"items": [{"metadata": {"name": "a"}}]}' ;;
  *"create -f -"*) cat >> "$LOG"; echo >> "$LOG" ;;
  *) echo '{}' ;;
esac
"""


@pytest.fixture
def side(tmp_path, monkeypatch):
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(KUBECTL)
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "log"
    monkeypatch.setenv("LOG", str(log))
    return KubectlCluster("demo", tmp_path / "admin.conf", kubectl=str(kubectl), knet=["knet"]), log


def test_get_list_create_patch_delete(side, tmp_path):
    cluster, log = side
    assert cluster.get("pods", "missing", "ns") is None
    with pytest.raises(LabClusterError, match="connection refused"):
        cluster.get("pods", "broken", "ns")
    assert cluster.list("services") == [{"metadata": {"name": "a"}}]
    cluster.create({"kind": "Namespace", "metadata": {"name": "x"}})
    cluster.patch("deployments", "coredns", "kube-system", {"spec": {"replicas": 0}})
    cluster.delete("namespaces", "x")
    lines = log.read_text().splitlines()
    conf = f"--kubeconfig {tmp_path / 'admin.conf'}"
    assert lines[0] == f"{conf} get pods missing -n ns -o json"
    assert lines[2] == f"{conf} get services -o json -A"  # every namespace when none is named
    assert lines[3] == f"{conf} create -f -" and json.loads(lines[4])["metadata"]["name"] == "x"
    assert lines[5] == f'{conf} patch deployments coredns -n kube-system --type merge -p {{"spec": {{"replicas": 0}}}}'
    assert lines[6] == f"{conf} delete namespaces x --ignore-not-found --timeout=90s"


def test_node_commands_need_a_real_dataplane(tmp_path):
    cluster = KubectlCluster("demo", tmp_path / "admin.conf", dataplane="sim", knet=["knet"])
    with pytest.raises(LabClusterError, match="simulated dataplane"):
        cluster.node_run("node01", ["ip", "addr"])


def test_missing_kubectl_is_said_plainly(tmp_path):
    cluster = KubectlCluster("demo", tmp_path / "admin.conf", kubectl=os.fspath(tmp_path / "nope"), knet=["knet"])
    with pytest.raises(LabClusterError, match="kubectl is not on PATH"):
        cluster.list("nodes")
