"""kube-controller-manager's and kube-scheduler's HTTPS health port (knet.controllers.secureserving),
on loopback: `ok` on the health paths with a self-signed certificate for the bind address,
403 for anything else, and a port already taken is reported, not fatal."""

from __future__ import annotations

import socket
import ssl

import aiohttp
from cryptography import x509

from knet.cluster.host import free_tcp_port
from knet.controllers.secureserving import self_signed_serving_cert, serve_health


async def get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # curl -k
    async with aiohttp.ClientSession() as session, session.request(
            method, f"https://127.0.0.1:{port}{path}", ssl=ctx) as resp:
        return resp.status, await resp.text()


async def test_health_paths_answer_ok_and_the_rest_is_forbidden():
    port = free_tcp_port()
    runner = await serve_health("127.0.0.1", port)
    assert runner is not None
    try:
        for path in ("/healthz", "/livez", "/readyz"):
            assert await get(port, path) == (200, "ok")
        status, body = await get(port, "/metrics")
        assert status == 403 and 'cannot get path \\"/metrics\\"' in body
        assert (await get(port, "/healthz", "POST"))[0] == 403
    finally:
        await runner.cleanup()


async def test_port_zero_serves_nothing_and_a_taken_port_is_not_fatal():
    assert await serve_health("127.0.0.1", 0) is None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert await serve_health("127.0.0.1", taken.getsockname()[1]) is None


def test_certificate_names_localhost_and_the_bind_address_and_chains_to_its_own_ca():
    chain, key = self_signed_serving_cert("127.0.0.1")
    leaf, ca = x509.load_pem_x509_certificates(chain)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert leaf.subject.rfc4514_string().startswith("CN=localhost@")
    assert leaf.issuer == ca.subject and ca.subject.rfc4514_string().startswith("CN=localhost-ca@")
    leaf.verify_directly_issued_by(ca)
    assert b"PRIVATE KEY" in key
