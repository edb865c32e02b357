"""Request-header (front-proxy) authentication (knet.api.requestheader).

The header table is upstream's TestRequestHeader
(k8s.io/apiserver/pkg/authentication/request/headerrequest/requestheader_test.go); the expected
groups gain `system:authenticated`, which upstream's AuthenticatedGroupAdder adds after it.
The certificate tests make real TLS handshakes in memory (a server trusting the cluster CA and
the front-proxy CA, as kube-apiserver's) and check what each client certificate is."""

from __future__ import annotations

import ssl

import pytest
from multidict import CIMultiDict

from knet.api.auth import user_from_peercert
from knet.api.requestheader import (
    ClientCertificates,
    RequestHeaderAuthenticator,
    RequestHeaderConfig,
    extra_from_headers,
    load_key_pair,
    unescape_extra_key,
    user_from_headers,
)
from knet.cluster.pki import create_ca, create_control_plane_pki, issue_cert, write_cert_key

AUTH = "system:authenticated"

# name: (name headers, group headers, extra prefixes, request headers, expected user or None)
UPSTREAM_TABLE = {
    "empty": ([], [], [], [], None),
    "user no match": (["X-Remote-User"], [], [], [], None),
    "user match": (["X-Remote-User"], [], [], [("X-Remote-User", "Bob")], ("Bob", [], {})),
    "user exact match": (["X-Remote-User"], [], [],
                         [("Prefixed-X-Remote-User-With-Suffix", "Bob"), ("X-Remote-User-With-Suffix", "Bob")], None),
    "user first match": (
        ["X-Remote-User", "A-Second-X-Remote-User", "Another-X-Remote-User"], [], [],
        [("X-Remote-User", ""), ("X-Remote-User", "First header, second value"),
         ("A-Second-X-Remote-User", "Second header, first value"),
         ("A-Second-X-Remote-User", "Second header, second value"),
         ("Another-X-Remote-User", "Third header, first value")],
        ("Second header, first value", [], {})),
    "user case-insensitive": (["x-REMOTE-user"], [], [], [("X-Remote-User", "Bob")], ("Bob", [], {})),
    "groups none": (["X-Remote-User"], ["X-Remote-Group"], [], [("X-Remote-User", "Bob")], ("Bob", [], {})),
    "groups all matches": (
        ["X-Remote-User"], ["X-Remote-Group-1", "X-Remote-Group-2"], [],
        [("X-Remote-User", "Bob"), ("X-Remote-Group-1", "one-a"), ("X-Remote-Group-1", "one-b"),
         ("X-Remote-Group-2", "two-a"), ("X-Remote-Group-2", "two-b")],
        ("Bob", ["one-a", "one-b", "two-a", "two-b"], {})),
    "groups case-insensitive": (["X-REMOTE-User"], ["X-REMOTE-Group"], [],
                                [("X-Remote-User", "Bob"), ("X-Remote-Group", "Users")], ("Bob", ["Users"], {})),
    "extra prefix matches case-insensitive": (
        ["X-Remote-User"], ["X-Remote-Group-1", "X-Remote-Group-2"], ["X-Remote-Extra-1-", "X-Remote-Extra-2-"],
        [("X-Remote-User", "Bob"), ("X-Remote-Group-1", "one-a"), ("X-Remote-Group-1", "one-b"),
         ("X-Remote-Group-2", "two-a"), ("X-Remote-Group-2", "two-b"),
         ("X-Remote-extra-1-key1", "alfa"), ("X-Remote-extra-1-key1", "bravo"),
         ("X-Remote-Extra-1-Key2", "charlie"), ("X-Remote-Extra-1-Key2", "delta"),
         ("X-Remote-Extra-1-", "india"), ("X-Remote-Extra-1-", "juliet"),
         ("X-Remote-extra-2-", "kilo"), ("X-Remote-extra-2-", "lima"),
         ("X-Remote-extra-2-Key1", "echo"), ("X-Remote-extra-2-Key1", "foxtrot"),
         ("X-Remote-Extra-2-key2", "golf"), ("X-Remote-Extra-2-key2", "hotel")],
        ("Bob", ["one-a", "one-b", "two-a", "two-b"],
         {"key1": ["alfa", "bravo", "echo", "foxtrot"], "key2": ["charlie", "delta", "golf", "hotel"],
          "": ["india", "juliet", "kilo", "lima"]})),
    "escaped extra keys": (
        ["X-Remote-User"], ["X-Remote-Group"], ["X-Remote-Extra-"],
        [("X-Remote-User", "Bob"), ("X-Remote-Group", "one-a"), ("X-Remote-Group", "one-b"),
         ("X-Remote-Extra-Alpha", "alphabetical"), ("X-Remote-Extra-Alph4num3r1c", "alphanumeric"),
         ("X-Remote-Extra-Percent%20encoded", "percent encoded"),
         ("X-Remote-Extra-Almost%zzpercent%xxencoded", "not quite percent encoded"),
         ("X-Remote-Extra-Example.com%2fpercent%2520encoded", "url with double percent encoding"),
         ("X-Remote-Extra-Example.com%2F%E4%BB%8A%E6%97%A5%E3%81%AF", "url with unicode"),
         ("X-Remote-Extra-Abc123!#$+.-_*\\^`~|'", "header key legal characters")],
        ("Bob", ["one-a", "one-b"],
         {"alpha": ["alphabetical"], "alph4num3r1c": ["alphanumeric"], "percent encoded": ["percent encoded"],
          "almost%zzpercent%xxencoded": ["not quite percent encoded"],
          "example.com/percent%20encoded": ["url with double percent encoding"],
          "example.com/今日は": ["url with unicode"],
          "abc123!#$+.-_*\\^`~|'": ["header key legal characters"]})),
}


@pytest.mark.parametrize("case", sorted(UPSTREAM_TABLE))
def test_upstream_request_header_table(case):
    names, groups, prefixes, headers, expected = UPSTREAM_TABLE[case]
    config = RequestHeaderConfig("unused", (), tuple(names), tuple(groups), tuple(prefixes))
    for given in (headers, CIMultiDict(headers)):  # pairs, and aiohttp's request headers type
        user = user_from_headers(given, config)
        if expected is None:
            assert user is None
            continue
        name, want_groups, want_extra = expected
        assert (user.name, list(user.groups), user.extra) == (name, [*want_groups, AUTH], want_extra)


def test_empty_header_names_are_refused():
    with pytest.raises(ValueError, match="empty header"):
        RequestHeaderConfig("ca.crt", (), ("X-Remote-User", "  "))
    assert RequestHeaderConfig("ca.crt", (), (" X-Remote-User ",)).username_headers == ("X-Remote-User",)


def test_extra_key_unescaping():
    assert unescape_extra_key("example.com%2fa") == "example.com/a"
    assert unescape_extra_key("50%") == "50%"  # malformed: kept as it came
    assert unescape_extra_key("a+b") == "a+b"  # a path unescape: + stays +
    assert extra_from_headers([("X-Remote-Extra-Scopes", "a"), ("x-remote-extra-scopes", "b")],
                              ["X-Remote-Extra-"]) == {"scopes": ["a", "b"]}


def test_a_proxy_naming_anonymous_gets_no_authenticated_group():
    config = RequestHeaderConfig("unused", (), ("X-Remote-User",), ("X-Remote-Group",))
    assert user_from_headers([("X-Remote-User", "system:anonymous")], config).groups == ()
    assert user_from_headers([("X-Remote-User", "a"), ("X-Remote-Group", AUTH)], config).groups == (AUTH,)


# --- certificates: real TLS handshakes in memory -------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    create_control_plane_pki(root)
    other_ca = create_ca("front-proxy-ca")  # same name as the real one, another key
    write_cert_key(root, "impostor-ca", other_ca)
    write_cert_key(root, "impostor", issue_cert(other_ca, "front-proxy-client", client=True))
    fp_ca = type(other_ca)((root / "front-proxy-ca.crt").read_bytes(), (root / "front-proxy-ca.key").read_bytes())
    write_cert_key(root, "fp-other-cn", issue_cert(fp_ca, "mallory", organizations=["system:masters"], client=True))
    return root


def handshake(pki, client: str | None, trust_impostor: bool = False) -> ssl.SSLObject:
    """The server side of a completed TLS handshake with a client presenting `client` (NAME.crt)."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
    for ca in ("ca.crt", "front-proxy-ca.crt", *(["impostor-ca.crt"] if trust_impostor else [])):
        server_ctx.load_verify_locations(pki / ca)
    server_ctx.verify_mode = ssl.CERT_OPTIONAL
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(pki / "ca.crt")
    if client:
        client_ctx.load_cert_chain(pki / f"{client}.crt", pki / f"{client}.key")
    bios = [ssl.MemoryBIO() for _ in range(4)]
    server = server_ctx.wrap_bio(bios[0], bios[1], server_side=True)
    cli = client_ctx.wrap_bio(bios[2], bios[3], server_hostname="localhost")
    done = {id(server): False, id(cli): False}
    for _ in range(20):
        for side in (cli, server):
            if not done[id(side)]:
                try:
                    side.do_handshake()
                    done[id(side)] = True
                except ssl.SSLWantReadError:
                    pass
        for src, dst in ((bios[3], bios[0]), (bios[1], bios[2])):
            data = src.read()
            if data:
                dst.write(data)
        if all(done.values()):
            # TLS 1.3: the server learns of the client certificate with the client's Finished.
            return server
    raise AssertionError("handshake did not complete")


def identify(pki, client, allowed=("front-proxy-client",), trust_impostor=False):
    auth = RequestHeaderAuthenticator(RequestHeaderConfig(
        str(pki / "front-proxy-ca.crt"), tuple(allowed), ("X-Remote-User",), ("X-Remote-Group",), ("X-Remote-Extra-",)))
    certs = ClientCertificates(str(pki / "ca.crt"), auth)
    user, proxy = certs.identify(handshake(pki, client, trust_impostor), user_from_peercert)
    headers = CIMultiDict([("X-Remote-User", "alice"), ("X-Remote-Group", "devs"), ("X-Remote-Extra-Scopes", "s")])
    return user, proxy, auth.authenticate(proxy, headers)


def test_the_front_proxy_client_is_the_user_its_headers_name(pki):
    user, proxy, proxied = identify(pki, "front-proxy-client")
    assert user is None  # no x509 user: it is not a certificate of the cluster CA
    assert proxy.allowed
    assert (proxied.name, proxied.groups, proxied.extra) == ("alice", ("devs", AUTH), {"scopes": ["s"]})


def test_headers_from_a_cluster_ca_certificate_are_ignored(pki):
    user, proxy, proxied = identify(pki, "admin")
    assert (user.name, proxy.verified, proxied) == ("kubernetes-admin", False, None)


def test_headers_without_a_certificate_are_ignored(pki):
    user, proxy, proxied = identify(pki, None)
    assert (user, proxy.verified, proxied) == (None, False, None)


def test_a_front_proxy_ca_certificate_with_another_cn_is_refused(pki):
    user, proxy, proxied = identify(pki, "fp-other-cn")
    assert user is None and proxied is None  # not mallory, nor system:masters
    assert proxy.verified and proxy.error == "x509: subject with cn=mallory is not in the allowed list"


def test_an_empty_allowed_list_accepts_any_cn_of_the_ca(pki):
    _, proxy, proxied = identify(pki, "fp-other-cn", allowed=())
    assert proxy.allowed and proxied.name == "alice"


def test_a_look_alike_ca_is_not_the_front_proxy_ca(pki):
    # A CA with the front-proxy CA's name (trusted by the TLS server here, so the handshake
    # passes) is still not the one the authenticator was given.
    user, proxy, proxied = identify(pki, "impostor", trust_impostor=True)
    assert (user, proxy.verified, proxied) == (None, False, None)


def test_proxy_client_key_pair_is_checked(pki):
    load_key_pair(str(pki / "front-proxy-client.crt"), str(pki / "front-proxy-client.key"))
    with pytest.raises(ValueError, match="unable to load"):
        load_key_pair(str(pki / "front-proxy-client.crt"), str(pki / "admin.key"))


def test_front_proxy_pki_is_kubeadms(pki):
    from cryptography import x509

    ca = x509.load_pem_x509_certificate((pki / "front-proxy-ca.crt").read_bytes())
    client = x509.load_pem_x509_certificate((pki / "front-proxy-client.crt").read_bytes())
    cluster_ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    assert ca.subject.rfc4514_string() == "CN=front-proxy-ca"
    assert client.subject.rfc4514_string() == "CN=front-proxy-client"
    client.verify_directly_issued_by(ca)
    with pytest.raises(ValueError):
        client.verify_directly_issued_by(cluster_ca)
    assert oct((pki / "front-proxy-client.key").stat().st_mode & 0o777) == "0o600"


def test_one_ca_for_both_makes_a_certificate_both(pki):
    # --requestheader-client-ca-file=ca.crt (allowed names kubernetes-admin): the admin's certificate
    # is the x509 user and, with the headers, the proxy (upstream tries the request header first).
    auth = RequestHeaderAuthenticator(RequestHeaderConfig(str(pki / "ca.crt"), ("kubernetes-admin",), ("X-Remote-User",)))
    user, proxy = ClientCertificates(str(pki / "ca.crt"), auth).identify(handshake(pki, "admin"), user_from_peercert)
    assert user.name == "kubernetes-admin" and proxy.allowed
    assert auth.authenticate(proxy, [("X-Remote-User", "alice")]).name == "alice"
    assert auth.authenticate(proxy, []) is None
