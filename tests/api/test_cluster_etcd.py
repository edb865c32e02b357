"""`storage: etcd` in the cluster config: etcd runs as a static pod (mirror pod etcd-controlplane,
as on kubeadm) and the apiserver stores in it."""

from __future__ import annotations

import os
import shutil

import pytest

from knet.cluster.processes import component_of, proc_cmdline
from knet.cluster.testing import ClusterUnderTest

pytestmark = [
    pytest.mark.api,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs the real kubectl"),
    pytest.mark.skipif(shutil.which("etcd") is None, reason="needs etcd (apt-get install etcd-server)"),
]


def test_etcd_storage_runs_etcd_as_a_static_pod(tmp_path):
    config_file = tmp_path / "cluster.yaml"
    config_file.write_text("kind: Cluster\napiVersion: knet.io/v1alpha1\nstorage: etcd\n")
    with ClusterUnderTest.up(nodes=None, dataplane="sim", extra_args=("--config", str(config_file))) as cluster:
        pods = cluster.kubectl("get", "pods", "-n", "kube-system", "-o", "name").stdout.split()
        assert "pod/etcd-controlplane" in pods
        phase = cluster.kubectl("get", "pod", "etcd-controlplane", "-n", "kube-system", "-o",
                                "jsonpath={.status.phase}").stdout
        assert phase == "Running"
        marker = f"{cluster.state_dir}/{cluster.name}/"
        apiservers = [argv for argv in (proc_cmdline(int(p)) for p in os.listdir("/proc") if p.isdigit())
                      if component_of(argv) == "apiserver" and any(marker in a for a in argv)]
        # kubeadm's flags: etcd over TLS on loopback, with the apiserver's etcd client certificate
        pki = f"{cluster.state_dir}/{cluster.name}/pki"
        assert apiservers and {"--etcd-servers=https://127.0.0.1:2379", f"--etcd-cafile={pki}/etcd/ca.crt",
                               f"--etcd-certfile={pki}/apiserver-etcd-client.crt",
                               f"--etcd-keyfile={pki}/apiserver-etcd-client.key"} <= set(apiservers[0])
        etcds = [argv for argv in (proc_cmdline(int(p)) for p in os.listdir("/proc") if p.isdigit())
                 if argv and os.path.basename(argv[0]) == "etcd" and any(marker in a for a in argv)]
        assert etcds and {"--client-cert-auth=true", "--listen-client-urls=https://127.0.0.1:2379",
                          f"--trusted-ca-file={pki}/etcd/ca.crt"} <= set(etcds[0])
        # objects round-trip through etcd
        cluster.kubectl("create", "configmap", "through-etcd", "--from-literal=k=v")
        assert cluster.kubectl("get", "cm", "through-etcd", "-o", "jsonpath={.data.k}").stdout == "v"
