"""`knet dns` as a whole (DnsApp): Corefile in, DNS + /health + /ready + /metrics out, reload on
change. The API is the client's in-memory FakeApi; sockets are real, on loopback."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype as T

from knet.client.fake import FakeApi
from knet.dns.app import DnsApp, Options

COREFILE = """\
.:53 {
    errors
    health 127.0.0.1:0
    ready 127.0.0.1:0
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl TTL
    }
    prometheus 127.0.0.1:0
    forward . 127.0.0.1:9
    cache 30
    loop
    reload
    loadbalance
    hosts
}
"""


async def ask(port, qname, qtype=T.A):
    q = dns.message.make_query(qname, qtype)
    return await asyncio.to_thread(dns.query.udp, q, "127.0.0.1", timeout=2, port=port)


async def get(port, path):
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


async def test_dns_app_serves_reports_and_reloads(dnskit, tmp_path, caplog):
    caplog.set_level("INFO", logger="knet.dns")
    corefile = tmp_path / "Corefile"
    corefile.write_text(COREFILE.replace("TTL", "30"))
    api = FakeApi()
    api.seed("v1", "namespaces", {"metadata": {"name": "default"}})
    api.seed("v1", "services", dnskit.service("web", "default", ["10.96.0.20"]))
    app = DnsApp(Options(corefile=corefile, host="127.0.0.1", port=0, forward_timeout=0.2), api=api)
    config0 = await app.start()
    try:
        port = app.running.transports[0].get_extra_info("sockname")[1]
        resp = await ask(port, "web.default.svc.cluster.local.")
        assert [r.to_text() for r in resp.answer[0]] == ["10.96.0.20"] and resp.answer[0].ttl == 30
        # the ignored plugins are named at start
        assert "ignored (not implemented by knet): .:0 loop" not in caplog.text
        assert "ignored (not implemented by knet): .:0 hosts" in caplog.text

        bound = list(app.running.http.bound.values())
        health, ready, metrics = bound
        assert await get(health, "/health") == (200, "OK")
        assert await get(ready, "/ready") == (200, "OK")
        status, text = await get(metrics, "/metrics")
        assert status == 200 and "coredns_dns_requests_total{" in text and "coredns_cache_misses_total" in text

        # the ConfigMap changes (the mounted file changes): a new ttl after the reload check
        corefile.write_text(COREFILE.replace("TTL", "7"))
        config = await app.reload_once(config0)
        assert config is not config0
        port = app.running.transports[0].get_extra_info("sockname")[1]
        resp = await ask(port, "web.default.svc.cluster.local.")
        assert resp.answer[0].ttl == 7
        # a broken Corefile keeps the running one
        corefile.write_text("this is { not a corefile")
        assert await app.reload_once(config) is config
        assert (await ask(port, "web.default.svc.cluster.local.")).answer[0].ttl == 7
    finally:
        await app.stop()


async def test_dns_app_not_ready_before_sync(tmp_path):
    corefile = tmp_path / "Corefile"
    corefile.write_text(COREFILE.replace("TTL", "30"))

    class NeverAnswers(FakeApi):
        async def list(self, *args, **kwargs):
            await asyncio.Event().wait()

    import knet.dns.app as app_module
    app_module.SYNC_WAIT, saved = 0.1, app_module.SYNC_WAIT
    app = DnsApp(Options(corefile=corefile, host="127.0.0.1", port=0, forward_timeout=0.2), api=NeverAnswers())
    try:
        await app.start()
        health, ready, _ = list(app.running.http.bound.values())
        assert (await get(ready, "/ready"))[0] == 503
        assert (await get(health, "/health"))[0] == 200
        port = app.running.transports[0].get_extra_info("sockname")[1]
        # unsynced: a missing name is SERVFAIL, not NXDOMAIN (CoreDNS)
        assert (await ask(port, "web.default.svc.cluster.local.")).rcode() == dns.rcode.SERVFAIL
    finally:
        app_module.SYNC_WAIT = saved
        await app.stop()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_dns_app_loop_plugin_detects_forwarding_to_itself(tmp_path):
    port = free_udp_port()
    corefile = tmp_path / "Corefile"
    corefile.write_text(f".:{port} {{\n  forward . 127.0.0.1:{port}\n  loop\n}}\n")
    app = DnsApp(Options(corefile=corefile, host="127.0.0.1", forward_timeout=0.5))
    await app.start()
    try:
        await asyncio.wait_for(app.loop_detected.wait(), 5)
    finally:
        await app.stop()


async def test_dns_app_loop_plugin_quiet_without_a_loop(tmp_path):
    port = free_udp_port()
    corefile = tmp_path / "Corefile"
    corefile.write_text(f".:{port} {{\n  forward . 127.0.0.1:9\n  loop\n}}\n")
    app = DnsApp(Options(corefile=corefile, host="127.0.0.1", forward_timeout=0.2))
    await app.start()
    try:
        probes = app.running.handlers[port].loop_probes
        for _ in range(100):  # the probe goes out once the server runs (later on a busy machine)
            if probes:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # time for a looped-back probe to arrive, if there were a loop
        assert not app.loop_detected.is_set()
        assert list(probes.values()) == [1]
    finally:
        await app.stop()
