"""The kubelet's token renewal rule (upstream pkg/kubelet/token/token_manager_test.go
TestRequiresRefresh, ported: a token is renewed past 80 % of its life or 24 h)."""

from __future__ import annotations

import datetime as dt

import pytest

from knet.node.tokenmanager import TokenManager, key_of, requires_refresh

NOW = dt.datetime(2000, 1, 1, tzinfo=dt.UTC).timestamp()


def tr(expires_in: float, seconds: int) -> dict:
    exp = dt.datetime.fromtimestamp(NOW + expires_in, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"spec": {"expirationSeconds": seconds}, "status": {"token": "t", "expirationTimestamp": exp}}


@pytest.mark.parametrize("expires_in,seconds,refresh", [
    (3600, 3600, False),                  # fresh
    (3600 * 0.21, 3600, False),           # 79 % of its life gone
    (3600 * 0.19, 3600, True),            # 81 %
    (-1, 3600, True),                     # expired
    (48 * 3600 - 23 * 3600, 48 * 3600, False),  # 23 h old, long-lived
    (48 * 3600 - 25 * 3600, 48 * 3600, True),   # 25 h old: renewed whatever its lifetime
    (20 * 0.25, 20, False),               # a 20 s test token, 15 s old
    (20 * 0.15, 20, True),                # 17 s old
])
def test_requires_refresh(expires_in, seconds, refresh):
    assert requires_refresh(tr(expires_in, seconds), NOW) is refresh


def test_jitter_renews_early_but_never_late():
    assert requires_refresh(tr(3600 * 0.21, 3600), NOW, jitter=10.0) is False
    assert requires_refresh(tr(3600 * 0.2 + 5, 3600), NOW, jitter=10.0) is True


def test_cache_keys_and_cleanup():
    spec = {"audiences": [], "expirationSeconds": 3607, "boundObjectRef": {"kind": "Pod", "name": "p", "uid": "u1"}}
    assert key_of("ns", "sa", spec) == ("ns", "sa", (), 3607, "Pod", "u1")
    manager = TokenManager(clock=lambda: NOW)
    manager._cache[key_of("ns", "sa", spec)] = tr(3600, 3607)
    assert not manager.due("ns", "sa", spec)
    manager.retain(["u1"])
    assert len(manager) == 1
    manager.retain([])  # the pod is gone
    assert len(manager) == 0 and manager.due("ns", "sa", spec)


def test_a_failed_renewal_keeps_the_token_and_waits_before_trying_again():
    """The apiserver unreachable (knet's real client against a closed loopback port)."""
    import asyncio
    import socket

    from knet.client import ApiClient
    from knet.client.config import ClientConfig

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    now = [NOW]
    manager = TokenManager(clock=lambda: now[0], rand=lambda: 0.0)
    spec = {"audiences": [], "expirationSeconds": 100, "boundObjectRef": {"kind": "Pod", "uid": "u1"}}
    manager._cache[key_of("ns", "sa", spec)] = tr(10, 100)  # 90 % of its life gone: due

    async def ask() -> str:
        async with ApiClient(ClientConfig(server=f"https://127.0.0.1:{port}")) as api:
            return await manager.token(api, "ns", "sa", spec)

    assert manager.due("ns", "sa", spec)
    assert asyncio.run(ask()) == "t"  # the current token, still valid
    assert not manager.due("ns", "sa", spec)  # not again at once
    now[0] += 10
    assert manager.due("ns", "sa", spec)
    now[0] += 10  # expired now: nothing to fall back on
    with pytest.raises(OSError):
        asyncio.run(ask())
