"""Cluster PKI: the cluster CA, serving and client certificates, service-account signing keys,
and kubeconfig files, laid out as kubeadm does (docs/contracts.md s.5: ROOT/NAME/pki/).

Certificates use ECDSA P-256 keys (fast to make and to handshake; Go's TLS and OpenSSL accept
them). Service-account tokens are signed with an RSA key (RS256), as kubeadm's sa.key.
Client identities follow Kubernetes: the certificate's CN is the user, its O entries the groups.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_VALIDITY = dt.timedelta(days=365)
CA_VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True)
class CertKey:
    cert_pem: bytes
    key_pem: bytes


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def create_ca(common_name: str = "kubernetes") -> CertKey:
    """A self-signed CA certificate (as kubeadm's `kubernetes` CA)."""
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=True, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertKey(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue_cert(
    ca: CertKey,
    common_name: str,
    *,
    organizations: Iterable[str] = (),
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
    server: bool = False,
    client: bool = False,
    validity: dt.timedelta = CERT_VALIDITY,
) -> CertKey:
    """A leaf certificate signed by `ca`: a serving cert (`server=True`, with SANs), a client
    cert (`client=True`; CN = user name, O = groups), or both."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=False, crl_sign=False, content_commitment=False,
                key_encipherment=True, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return CertKey(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def create_sa_keypair() -> CertKey:
    """The service-account signing key pair (sa.key, sa.pub), RSA 2048 for RS256 tokens.
    `cert_pem` holds the public key PEM here."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return CertKey(pub, _key_pem(key))


def write_file(path: str | os.PathLike, data: bytes | str, mode: int = 0o644) -> Path:
    """Write atomically (temp file + rename) with the given permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, raw)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return path


def write_cert_key(directory: str | os.PathLike, name: str, pair: CertKey) -> tuple[Path, Path]:
    """Write NAME.crt (0644) and NAME.key (0600) into `directory`."""
    directory = Path(directory)
    return (
        write_file(directory / f"{name}.crt", pair.cert_pem, 0o644),
        write_file(directory / f"{name}.key", pair.key_pem, 0o600),
    )


def load_cert_key(directory: str | os.PathLike, name: str) -> CertKey:
    directory = Path(directory)
    return CertKey((directory / f"{name}.crt").read_bytes(), (directory / f"{name}.key").read_bytes())


def kubeconfig(
    *,
    cluster_name: str,
    server: str,
    ca_pem: bytes,
    user: str,
    client: CertKey | None = None,
    token: str | None = None,
    namespace: str | None = None,
) -> dict:
    """A kubeconfig dict with one cluster, one user and one context `USER@CLUSTER`
    (kubeadm names it `kubernetes-admin@kubernetes`), current."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    user_entry: dict = {}
    if client is not None:
        user_entry["client-certificate-data"] = b64(client.cert_pem)
        user_entry["client-key-data"] = b64(client.key_pem)
    if token is not None:
        user_entry["token"] = token
    context_name = f"{user}@{cluster_name}"
    context: dict = {"cluster": cluster_name, "user": user}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": cluster_name, "cluster": {"certificate-authority-data": b64(ca_pem), "server": server}}],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": context_name, "context": context}],
        "current-context": context_name,
    }


def write_kubeconfig(path: str | os.PathLike, config: dict) -> Path:
    return write_file(path, yaml.safe_dump(config, sort_keys=False), 0o600)


@dataclass(frozen=True)
class ControlPlanePKI:
    """Paths of a control plane's PKI files (kubeadm's names)."""

    dir: Path

    @property
    def ca_crt(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def apiserver_crt(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def apiserver_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def kubelet_client_crt(self) -> Path:
        return self.dir / "apiserver-kubelet-client.crt"

    @property
    def kubelet_client_key(self) -> Path:
        return self.dir / "apiserver-kubelet-client.key"

    @property
    def admin_crt(self) -> Path:
        return self.dir / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.dir / "admin.key"

    @property
    def front_proxy_ca_crt(self) -> Path:
        return self.dir / "front-proxy-ca.crt"

    @property
    def front_proxy_client_crt(self) -> Path:
        return self.dir / "front-proxy-client.crt"

    @property
    def front_proxy_client_key(self) -> Path:
        return self.dir / "front-proxy-client.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"

    def ca(self) -> CertKey:
        return load_cert_key(self.dir, "ca")


def create_control_plane_pki(
    pki_dir: str | os.PathLike,
    *,
    apiserver_ips: Iterable[str] = ("127.0.0.1", "10.96.0.1"),
    apiserver_names: Iterable[str] = (),
    reuse_ca: bool = True,
) -> ControlPlanePKI:
    """Make (or complete) a control plane's PKI in `pki_dir`: ca, apiserver (serving, SANs
    kubernetes, kubernetes.default, ...svc.cluster.local, localhost + the given names and IPs),
    apiserver-kubelet-client (O=system:masters), admin (CN=kubernetes-admin, O=system:masters),
    the front proxy's (create_front_proxy_pki) and sa.key/sa.pub. An existing CA is kept when
    `reuse_ca`."""
    pki = ControlPlanePKI(Path(pki_dir))
    if reuse_ca and pki.ca_crt.exists() and pki.ca_key.exists():
        ca = pki.ca()
    else:
        ca = create_ca()
        write_cert_key(pki.dir, "ca", ca)
    names = ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local", "localhost", *apiserver_names]
    write_cert_key(pki.dir, "apiserver", issue_cert(
        ca, "kube-apiserver", dns_names=dict.fromkeys(names), ip_addresses=dict.fromkeys(apiserver_ips),
        server=True))
    write_cert_key(pki.dir, "apiserver-kubelet-client", issue_cert(
        ca, "kube-apiserver-kubelet-client", organizations=["system:masters"], client=True))
    write_cert_key(pki.dir, "admin", issue_cert(
        ca, "kubernetes-admin", organizations=["system:masters"], client=True))
    create_front_proxy_pki(pki.dir, reuse_ca=reuse_ca)
    if not (pki.sa_key.exists() and pki.sa_pub.exists()):
        sa = create_sa_keypair()
        write_file(pki.sa_key, sa.key_pem, 0o600)
        write_file(pki.sa_pub, sa.cert_pem, 0o644)
    return pki


FRONT_PROXY_CLIENT = "front-proxy-client"


def create_front_proxy_pki(pki_dir: str | os.PathLike, *, reuse_ca: bool = True) -> ControlPlanePKI:
    """kubeadm's front-proxy CA (CN front-proxy-ca) and the client certificate kube-apiserver
    presents as a proxy (--proxy-client-cert-file; CN front-proxy-client, no groups). A CA of
    its own, apart from the cluster CA: a request-header authenticator trusts whatever user a
    certificate of this CA names in X-Remote-User, so no cluster certificate (a kubelet's, an
    admin's) may be one."""
    fp = ControlPlanePKI(Path(pki_dir))
    if reuse_ca and (fp.dir / "front-proxy-ca.crt").exists() and (fp.dir / "front-proxy-ca.key").exists():
        ca = load_cert_key(fp.dir, "front-proxy-ca")
    else:
        ca = create_ca("front-proxy-ca")
        write_cert_key(fp.dir, "front-proxy-ca", ca)
    write_cert_key(fp.dir, FRONT_PROXY_CLIENT, issue_cert(ca, FRONT_PROXY_CLIENT, client=True))
    return fp


@dataclass(frozen=True)
class EtcdPKI:
    """Paths of etcd's PKI, kubeadm's names: PKI/etcd/{ca,server,peer,healthcheck-client}
    and the apiserver's client certificate PKI/apiserver-etcd-client."""

    dir: Path  # the control plane's pki dir (etcd's files are in its etcd/ subdirectory)

    @property
    def etcd_dir(self) -> Path:
        return self.dir / "etcd"

    def crt(self, name: str) -> Path:
        return self.etcd_dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.etcd_dir / f"{name}.key"

    @property
    def apiserver_client_crt(self) -> Path:
        return self.dir / "apiserver-etcd-client.crt"

    @property
    def apiserver_client_key(self) -> Path:
        return self.dir / "apiserver-etcd-client.key"


def create_etcd_pki(pki_dir: str | os.PathLike, *, node_name: str, node_ips: Iterable[str]) -> EtcdPKI:
    """etcd's own CA (CN etcd-ca, apart from the cluster CA: a cluster certificate, e.g. a
    kubelet's, must not open etcd) and the certificates kubeadm issues from it:
    server and peer (CN = the node's name; SANs the node's name, localhost, its IPs, 127.0.0.1
    and ::1; server and client usage, as etcd's gRPC gateway dials etcd with the server's own
    certificate), healthcheck-client (CN kube-etcd-healthcheck-client) and the apiserver's
    apiserver-etcd-client (CN kube-apiserver-etcd-client)."""
    etcd = EtcdPKI(Path(pki_dir))
    ca = create_ca("etcd-ca")
    write_cert_key(etcd.etcd_dir, "ca", ca)
    names = dict.fromkeys([node_name, "localhost"])
    ips = dict.fromkeys([*node_ips, "127.0.0.1", "::1"])
    for name in ("server", "peer"):
        write_cert_key(etcd.etcd_dir, name, issue_cert(
            ca, node_name, dns_names=names, ip_addresses=ips, server=True, client=True))
    write_cert_key(etcd.etcd_dir, "healthcheck-client", issue_cert(ca, "kube-etcd-healthcheck-client", client=True))
    write_cert_key(etcd.dir, "apiserver-etcd-client", issue_cert(ca, "kube-apiserver-etcd-client", client=True))
    return etcd


def write_client_kubeconfig(
    path: str | os.PathLike,
    ca: CertKey,
    *,
    server: str,
    user: str,
    groups: Iterable[str] = (),
    cluster_name: str = "kubernetes",
) -> Path:
    """Issue a client certificate (CN=user, O=groups) and write a kubeconfig using it, e.g.
    user `system:node:node01` with groups `system:nodes` for a kubelet, or
    `system:kube-controller-manager` / `system:kube-scheduler`."""
    client = issue_cert(ca, user, organizations=groups, client=True)
    return write_kubeconfig(path, kubeconfig(
        cluster_name=cluster_name, server=server, ca_pem=ca.cert_pem, user=user, client=client))
