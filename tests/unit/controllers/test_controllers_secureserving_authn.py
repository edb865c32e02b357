"""kube-controller-manager's secure port with kubeadm's --client-ca-file and
--requestheader-client-ca-file (knet.controllers.secureserving.DelegatedAuthentication): a
cluster-CA certificate is its user, the front proxy's certificate the user X-Remote-User names
(upstream's delegated request-header defaults: any CN of the front-proxy CA), other certificates
of the front-proxy CA without that header are refused; health paths stay open to anyone."""

from __future__ import annotations

import ssl

import aiohttp
import pytest

from knet.cluster.host import free_tcp_port
from knet.cluster.pki import create_control_plane_pki
from knet.controllers.secureserving import DelegatedAuthentication, serve_health


@pytest.fixture
async def port(tmp_path):
    pki = create_control_plane_pki(tmp_path)
    port = free_tcp_port()
    runner = await serve_health("127.0.0.1", port, DelegatedAuthentication(
        str(pki.ca_crt), str(pki.front_proxy_ca_crt)))
    assert runner is not None
    try:
        yield port, tmp_path
    finally:
        await runner.cleanup()


async def get(port, pki, path, cert=None, headers=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # curl -k: its certificate is self-signed
    if cert:
        ctx.load_cert_chain(pki / f"{cert}.crt", pki / f"{cert}.key")
    async with aiohttp.ClientSession() as session, session.get(
            f"https://127.0.0.1:{port}{path}", ssl=ctx, headers=headers or {}) as resp:
        return resp.status, await resp.text()


async def test_callers_are_who_their_certificates_say(port):
    port, pki = port
    assert await get(port, pki, "/healthz") == (200, "ok")
    assert await get(port, pki, "/healthz", "front-proxy-client", {"X-Remote-User": "alice"}) == (200, "ok")
    status, body = await get(port, pki, "/metrics")
    assert status == 403 and 'User \\"system:anonymous\\"' in body
    status, body = await get(port, pki, "/metrics", "front-proxy-client", {"X-Remote-User": "alice"})
    assert status == 403 and 'User \\"alice\\" cannot get path \\"/metrics\\"' in body
    # system:masters through the front proxy, or by its own certificate: allowed (knet serves no /metrics)
    assert (await get(port, pki, "/metrics", "front-proxy-client",
                      {"X-Remote-User": "bob", "X-Remote-Group": "system:masters"}))[0] == 404
    assert (await get(port, pki, "/metrics", "admin"))[0] == 404
    # the admin's X-Remote-* headers mean nothing: it stays the admin, not carol
    assert (await get(port, pki, "/metrics", "admin", {"X-Remote-User": "carol"}))[0] == 404


async def test_a_front_proxy_certificate_without_a_user_is_refused(port):
    port, pki = port
    status, _ = await get(port, pki, "/metrics", "front-proxy-client")
    assert status == 401
    assert (await get(port, pki, "/healthz", "front-proxy-client"))[0] == 401
