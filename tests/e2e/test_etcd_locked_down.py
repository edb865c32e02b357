"""etcd on a real cluster as kubeadm runs it: TLS with client-certificate authentication, so a
pod reads nothing from it, while the apiserver (with its etcd client certificate) serves."""

from __future__ import annotations

import json
import secrets

import pytest
import yaml

from .cluster_namespaces import busybox_pod, cluster_namespace, wait_running

pytestmark = pytest.mark.e2e

RANGE_ALL = json.dumps({"key": "AA==", "range_end": "AA=="})  # every key, as `etcdctl get "" --prefix`


def controlplane_ip(cluster) -> str:
    return next(n["ip"] for n in cluster.config["nodes"] if n["name"] == "controlplane")


def pki_dir(cluster) -> str:
    return f"{cluster.state_dir}/{cluster.name}/pki"


def process_line(ps: str, program: str) -> str:
    """The `ps -ef` line of `program`: its command (the 8th column on) is the program (knet's
    kube-apiserver is titled as kubeadm's binary, knet.proctitle)."""
    lines = [line for line in ps.splitlines()
             if any(word.rsplit("/", 1)[-1] == program for word in line.split()[7:9])]
    assert len(lines) == 1, f"{program} in ps -ef:\n{ps}"
    return lines[0]


def test_ps_on_controlplane_shows_etcd_and_the_apiserver_with_kubeadms_tls_flags(knet_cluster):
    assert knet_cluster.config["storage"] == "etcd", "the real dataplane runs etcd where it is installed"
    ip, pki = controlplane_ip(knet_cluster), pki_dir(knet_cluster)
    ps = knet_cluster.ssh("controlplane", "ps", "-ef").stdout
    etcd = process_line(ps, "etcd").split()
    for flag in (f"--advertise-client-urls=https://{ip}:2379", f"--cert-file={pki}/etcd/server.crt",
                 "--client-cert-auth=true", f"--key-file={pki}/etcd/server.key",
                 f"--listen-client-urls=https://127.0.0.1:2379,https://{ip}:2379",
                 "--listen-metrics-urls=http://127.0.0.1:2381", f"--listen-peer-urls=https://{ip}:2380",
                 f"--peer-cert-file={pki}/etcd/peer.crt", "--peer-client-cert-auth=true",
                 f"--peer-key-file={pki}/etcd/peer.key", f"--peer-trusted-ca-file={pki}/etcd/ca.crt",
                 f"--trusted-ca-file={pki}/etcd/ca.crt"):
        assert flag in etcd, flag
    apiserver = process_line(ps, "kube-apiserver").split()
    for flag in ("--etcd-servers=https://127.0.0.1:2379", f"--etcd-cafile={pki}/etcd/ca.crt",
                 f"--etcd-certfile={pki}/apiserver-etcd-client.crt", f"--etcd-keyfile={pki}/apiserver-etcd-client.key"):
        assert flag in apiserver, flag


@pytest.fixture
def client_pod(knet_cluster):
    with cluster_namespace(knet_cluster, f"etcd-{secrets.token_hex(3)}") as ns:
        knet_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(busybox_pod("client", ns)))
        wait_running(knet_cluster, ns, "client")
        yield ns


def curl_in(cluster, ns: str, *args: str):
    """curl in the client pod; stdout is the body (-o) then the HTTP status (000: no answer)."""
    return cluster.kubectl("exec", "-n", ns, "client", "--", "curl", "-sS", "--max-time", "5",
                           "-o", "/dev/null", "-w", "%{http_code}", *args, check=False, timeout=30)


def test_a_pod_reads_nothing_from_etcd_while_the_cluster_works(knet_cluster, client_pod):
    ns, ip = client_pod, controlplane_ip(knet_cluster)
    knet_cluster.kubectl("create", "secret", "generic", "s3cr3t", "-n", ns, "--from-literal=password=hunter2")
    # The pod does reach the control plane (so what fails below fails at etcd, not on the way).
    version = curl_in(knet_cluster, ns, "-k", f"https://{ip}:6443/version")
    assert (version.returncode, version.stdout) == (0, "200"), version.stderr
    # The attack of issue #12: read every key (every Secret) over plain HTTP. etcd's TLS
    # listener gives no HTTP answer at all (curl's %{http_code} 000).
    plain = curl_in(knet_cluster, ns, f"http://{ip}:2379/v3/kv/range", "-d", RANGE_ALL)
    assert plain.returncode != 0 and plain.stdout == "000", (plain.returncode, plain.stdout, plain.stderr)
    # HTTPS without a client certificate (even not checking etcd's): the handshake is refused.
    anonymous = curl_in(knet_cluster, ns, "-k", f"https://{ip}:2379/v3/kv/range", "-d", RANGE_ALL)
    assert anonymous.returncode != 0 and anonymous.stdout == "000", (anonymous.returncode, anonymous.stderr)
    # Nor the peer port (a certificate required too), nor metrics (loopback only: refused, curl 7).
    peer = curl_in(knet_cluster, ns, "-k", f"https://{ip}:2380/members")
    assert peer.returncode != 0 and peer.stdout == "000", (peer.returncode, peer.stderr)
    metrics = curl_in(knet_cluster, ns, f"http://{ip}:2381/metrics")
    assert metrics.returncode == 7 and metrics.stdout == "000", (metrics.returncode, metrics.stderr)
    # Nor does it find a certificate to present: the cluster's directory (every key, kubeconfig,
    # the store's data, other pods' volumes) is hidden from pods, as /etc/kubernetes is on kubeadm.
    cluster_dir = f"{knet_cluster.state_dir}/{knet_cluster.name}"
    for secret in ("pki/apiserver-etcd-client.key", "pki/etcd/ca.key", "pki/ca.key", "pki/tokens.csv",
                   "kubeconfig/admin.conf", "data/etcd/member/snap/db"):
        read = knet_cluster.kubectl("exec", "-n", ns, "client", "--", "cat", f"{cluster_dir}/{secret}",
                                    check=False)
        assert read.returncode != 0 and not read.stdout, secret
    # It does not exist in a container (whose root filesystem holds only the host's system dirs).
    listing = knet_cluster.kubectl("exec", "-n", ns, "client", "--", "ls", "-A", cluster_dir, check=False)
    assert listing.returncode != 0 and not listing.stdout and "No such file or directory" in listing.stderr, listing
    # Meanwhile the apiserver stores and reads through its certificate.
    got = knet_cluster.kubectl("get", "secret", "s3cr3t", "-n", ns, "-o", "jsonpath={.data.password}").stdout
    assert got == "aHVudGVyMg=="
    ready = knet_cluster.kubectl("get", "--raw", "/readyz?verbose").stdout
    assert "[+]etcd ok\n" in ready and ready.endswith("readyz check passed\n")


def test_etcds_static_pod_sees_its_own_certificates_and_nothing_else(knet_cluster):
    """As on kubeadm (`kubectl -n kube-system exec etcd-controlplane -- etcdctl --cacert ...`):
    the etcd pod mounts pki/etcd (hostPath), so a client inside it can use those certificates,
    while the cluster CA's key stays out of its sight."""
    pki = pki_dir(knet_cluster)

    def in_etcd_pod(*command: str):
        return knet_cluster.kubectl("exec", "-n", "kube-system", "etcd-controlplane", "--", *command,
                                    check=False, timeout=30)

    health = in_etcd_pod("curl", "-sS", "--max-time", "5", "--cacert", f"{pki}/etcd/ca.crt",
                         "--cert", f"{pki}/etcd/healthcheck-client.crt", "--key", f"{pki}/etcd/healthcheck-client.key",
                         "https://127.0.0.1:2379/health")
    assert health.returncode == 0 and json.loads(health.stdout)["health"] == "true", health.stderr
    assert in_etcd_pod("cat", f"{pki}/ca.key").returncode != 0
    assert in_etcd_pod("cat", f"{pki}/apiserver-etcd-client.key").returncode != 0
