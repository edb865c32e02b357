"""etcd's certificates, as kubeadm's `certs etcd-*` phases make them: etcd's own CA, and server,
peer, healthcheck-client and apiserver-etcd-client certificates signed by it."""

from __future__ import annotations

import ipaddress
import stat

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from knet.cluster.pki import create_control_plane_pki, create_etcd_pki


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def cn(cert: x509.Certificate) -> str:
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def usages(cert: x509.Certificate) -> set:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_etcd_has_its_own_ca_and_kubeadms_certificates(tmp_path):
    cluster = create_control_plane_pki(tmp_path)
    etcd = create_etcd_pki(tmp_path, node_name="controlplane", node_ips=["172.30.0.2"])
    ca = load(etcd.crt("ca"))
    assert cn(ca) == "etcd-ca"
    assert ca.subject != load(cluster.ca_crt).subject  # not the cluster CA: its certificates do not open etcd
    for name in ("server", "peer", "healthcheck-client"):
        assert etcd.crt(name).parent == tmp_path / "etcd"
        cert = load(etcd.crt(name))
        assert cert.issuer == ca.subject
        ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                               *_ecdsa(cert))
        assert stat.S_IMODE(etcd.key(name).stat().st_mode) == 0o600
    client = load(etcd.apiserver_client_crt)
    assert etcd.apiserver_client_crt == tmp_path / "apiserver-etcd-client.crt"
    assert cn(client) == "kube-apiserver-etcd-client" and client.issuer == ca.subject
    assert usages(client) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cn(load(etcd.crt("healthcheck-client"))) == "kube-etcd-healthcheck-client"
    for name in ("server", "peer"):
        cert = load(etcd.crt(name))
        assert cn(cert) == "controlplane"
        # etcd's gRPC gateway dials etcd itself with the server certificate: client usage too.
        assert usages(cert) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["controlplane", "localhost"]
        assert san.get_values_for_type(x509.IPAddress) == [
            ipaddress.ip_address(a) for a in ("172.30.0.2", "127.0.0.1", "::1")]


def _ecdsa(cert: x509.Certificate):
    from cryptography.hazmat.primitives.asymmetric import ec

    return (ec.ECDSA(cert.signature_hash_algorithm),)
