"""kubeadm's front proxy on `knet up` (issue #15): the transcript's `ps -ef | grep proxy` on
controlplane lists kube-apiserver (its --proxy-client-*/--requestheader-* flags) and
kube-controller-manager (--requestheader-client-ca-file), the files are in /etc/kubernetes/pki,
and the running apiserver honours them: curl in the node with the front-proxy client's
certificate and X-Remote-User is that user; the admin's certificate with the same header is not."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

PKI = "/etc/kubernetes/pki"


def test_ps_grep_proxy_shows_the_apiserver_and_controller_manager(knet_cluster):
    out = knet_cluster.ssh("controlplane", "sh", "-c", "ps -ef | grep proxy").stdout
    commands = [line.split(None, 7)[7] for line in out.splitlines() if len(line.split(None, 7)) == 8]
    apiserver = [c for c in commands if c.startswith("kube-apiserver ")]
    controller_manager = [c for c in commands if c.startswith("kube-controller-manager ")]
    assert len(apiserver) == 1 and len(controller_manager) == 1, out
    flags = apiserver[0].split()
    for flag in ("--requestheader-allowed-names=front-proxy-client", "--requestheader-username-headers=X-Remote-User",
                 "--requestheader-group-headers=X-Remote-Group", "--requestheader-extra-headers-prefix=X-Remote-Extra-"):
        assert flag in flags, flag
    assert any(f.startswith("--proxy-client-cert-file=") and f.endswith("/front-proxy-client.crt") for f in flags)
    assert any(f.startswith("--requestheader-client-ca-file=") and f.endswith("/front-proxy-ca.crt")
               for f in controller_manager[0].split())


def test_front_proxy_files_are_in_etc_kubernetes_pki(knet_cluster):
    out = knet_cluster.ssh("controlplane", "ls", PKI).stdout.split()
    for name in ("front-proxy-ca.crt", "front-proxy-ca.key", "front-proxy-client.crt", "front-proxy-client.key"):
        assert name in out, out
    subject = knet_cluster.ssh("controlplane", "openssl", "x509", "-noout", "-subject", "-issuer", "-in",
                               f"{PKI}/front-proxy-client.crt").stdout
    assert "CN = front-proxy-client" in subject and "CN = front-proxy-ca" in subject, subject


WHOAMI = ("SERVER=$(awk '/server:/ {{print $2; exit}}' /etc/kubernetes/admin.conf); "
          "curl -sS --cacert " + PKI + "/ca.crt --cert " + PKI + "/{cert}.crt --key " + PKI + "/{cert}.key "
          "-H 'X-Remote-User: alice' -H 'X-Remote-Group: devs' -H 'Content-Type: application/json' "
          "-X POST --data '{{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"SelfSubjectReview\"}}' "
          "$SERVER/apis/authentication.k8s.io/v1/selfsubjectreviews")


def test_the_running_apiserver_honours_the_front_proxy(knet_cluster):
    proxied = json.loads(knet_cluster.ssh("controlplane", "sh", "-c", WHOAMI.format(cert="front-proxy-client")).stdout)
    assert proxied["status"]["userInfo"] == {"username": "alice", "groups": ["devs", "system:authenticated"]}
    # the admin's certificate (the cluster CA's) with the same headers stays the admin
    admin = json.loads(knet_cluster.ssh("controlplane", "sh", "-c", WHOAMI.format(cert="admin")).stdout)
    assert admin["status"]["userInfo"]["username"] == "kubernetes-admin"


def test_controller_manager_authenticates_the_front_proxy(knet_cluster):
    """kube-controller-manager's --requestheader-client-ca-file: its secure port (10257) takes the
    front proxy's X-Remote-User as the caller; --client-ca-file: the admin's certificate is the admin."""
    def curl(cert: str, *headers: str) -> str:
        args = ["curl", "-sk", "--cert", f"{PKI}/{cert}.crt", "--key", f"{PKI}/{cert}.key"]
        for h in headers:
            args += ["-H", h]
        return knet_cluster.ssh("controlplane", *args, "-w", " %{http_code}", "https://127.0.0.1:10257/configz").stdout

    out = curl("front-proxy-client", "X-Remote-User: alice")
    assert out.endswith(" 403") and 'User \\"alice\\" cannot get path \\"/configz\\"' in out, out
    assert curl("admin", "X-Remote-User: alice").endswith(" 404")  # system:masters: allowed, not served
    assert curl("front-proxy-client").endswith(" 401")
