"""--use-service-account-credentials: the controller-manager's client builder (upstream's
DynamicControllerClientBuilder) over FakeApi, which issues TokenRequest tokens and authenticates
each request by them; and ApiClient's use of a refreshed token against a loopback HTTP server."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from knet.client import ApiClient, ApiError, ClientConfig
from knet.client.fake import FakeApi
from knet.controllers.clientbuilder import ServiceAccountClientBuilder

KCM = "system:kube-controller-manager"
START = 1_800_000_000.0


class ManualClock:
    """Wall clock for tokens; `sleep` records how long the renewer wanted to wait and returns
    (having moved the clock on by that much) only when the test lets it."""

    def __init__(self) -> None:
        self.now = START
        self.sleeps: list[float] = []
        self._go: asyncio.Queue[None] = asyncio.Queue()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        await self._go.get()
        self.now += delay

    def let_sleep_end(self) -> None:
        self._go.put_nowait(None)


async def settle(cond, rounds: int = 200) -> None:
    for _ in range(rounds):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not met")


@pytest.fixture
async def world():
    clock = ManualClock()
    fake = FakeApi(clock=clock)
    fake.seed("v1", "namespaces", {"metadata": {"name": "kube-system"}})
    root = fake.client(KCM)
    builder = ServiceAccountClientBuilder(root, make_client=lambda source, sa: fake.client(token_source=source),
                                          clock=clock, sleep=clock.sleep)
    yield fake, builder, clock
    await builder.close()


def sa_requests(fake: FakeApi) -> list[tuple]:
    return [(r.user, r.verb, r.resource, r.subresource, r.namespace, r.name) for r in fake.requests
            if r.resource in ("serviceaccounts", "namespaces")]


async def test_creates_the_missing_account_and_asks_for_its_token_as_the_controller_manager(world):
    fake, builder, _ = world
    api = await builder.client("deployment-controller")
    assert [sa["metadata"]["name"] for sa in fake.objects("v1", "serviceaccounts")] == ["deployment-controller"]
    # upstream getOrCreateServiceAccount then CreateToken, all with the controller-manager's client
    assert sa_requests(fake) == [
        (KCM, "get", "serviceaccounts", "", "kube-system", "deployment-controller"),
        (KCM, "get", "namespaces", "", "", "kube-system"),
        (KCM, "create", "serviceaccounts", "", "kube-system", "deployment-controller"),
        (KCM, "create", "serviceaccounts", "token", "kube-system", "deployment-controller"),
    ]
    # an hour, and no audiences: the apiserver's own
    assert fake.token_requests == [("kube-system", "deployment-controller", {"expirationSeconds": 3600})]
    fake.requests.clear()
    await api.create("apps/v1", "replicasets", {"metadata": {"name": "r", "namespace": "default"}}, namespace="default")
    assert [(r.user, r.verb, r.resource) for r in fake.requests] == [
        ("system:serviceaccount:kube-system:deployment-controller", "create", "replicasets")]


async def test_an_existing_account_is_used_and_one_client_serves_each_account(world):
    fake, builder, _ = world
    fake.seed("v1", "serviceaccounts", {"metadata": {"name": "node-controller", "namespace": "kube-system",
                                                     "uid": "sa-uid"}})
    ipam = await builder.client("node-controller")
    lifecycle = await builder.client("node-controller")
    assert ipam is lifecycle
    assert [sa["metadata"]["uid"] for sa in fake.objects("v1", "serviceaccounts")] == ["sa-uid"]
    assert [r.verb for r in fake.requests if r.resource == "serviceaccounts"] == ["get", "create"]
    assert len(fake.token_requests) == 1


async def test_the_token_is_renewed_with_a_fifth_of_its_life_left(world):
    fake, builder, clock = world
    api = await builder.client("replicaset-controller")
    first = builder.sources["replicaset-controller"].token()
    await settle(lambda: clock.sleeps)
    assert clock.sleeps == [pytest.approx(0.8 * 3600)]  # upstream's 20 % leeway
    assert len(fake.token_requests) == 1

    clock.let_sleep_end()  # 48 minutes later
    await settle(lambda: len(fake.token_requests) == 2)
    second = builder.sources["replicaset-controller"].token()
    assert second != first and clock.now == pytest.approx(START + 2880)
    assert fake.tokens[first][1] == START + 3600  # renewed 12 minutes before the first expired

    clock.now = START + 3600 + 1  # the first token has expired; the client sends the second
    await api.list("v1", "pods")
    assert fake.requests[-1].user == "system:serviceaccount:kube-system:replicaset-controller"
    await settle(lambda: len(clock.sleeps) == 2)
    assert clock.sleeps[1] == pytest.approx(0.8 * 3600)


async def test_a_token_capped_by_the_apiserver_is_renewed_at_four_fifths_of_its_real_life(world):
    fake, builder, clock = world
    fake.max_token_seconds = 60  # knet's short-token test setting (serviceAccountTokenMaxExpiration: 60s)
    await builder.client("daemon-set-controller")
    await settle(lambda: clock.sleeps)
    assert clock.sleeps == [pytest.approx(48)]
    clock.let_sleep_end()
    await settle(lambda: len(fake.token_requests) == 2)
    source = builder.sources["daemon-set-controller"]
    assert fake.tokens[source.token()][1] == pytest.approx(START + 48 + 60)


async def test_a_refused_token_is_renewed_at_once_and_a_deleted_account_recreated(world):
    fake, builder, clock = world
    api = await builder.client("endpointslice-controller")
    await settle(lambda: clock.sleeps)
    # the account is deleted: its tokens stop working (bound-token checks); the next request is
    # refused, and the builder recreates the account and gets a new token without waiting 48 min
    await fake.delete("v1", "serviceaccounts", "endpointslice-controller", namespace="kube-system")
    fake.tokens.clear()
    with pytest.raises(ApiError) as refused:
        await api.list("discovery.k8s.io/v1", "endpointslices")
    assert refused.value.status == 401
    await settle(lambda: len(fake.token_requests) == 2)
    assert [sa["metadata"]["name"] for sa in fake.objects("v1", "serviceaccounts")] == ["endpointslice-controller"]
    await api.list("discovery.k8s.io/v1", "endpointslices")
    assert fake.requests[-1].user == "system:serviceaccount:kube-system:endpointslice-controller"


async def test_no_token_means_no_client():
    fake = FakeApi()  # no kube-system namespace, and a root client that may not create one...
    fake.seed("v1", "serviceaccounts", {"metadata": {"name": "x", "namespace": "kube-system"}})
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    async def refuse(*args, **kwargs):
        raise ApiError(403, "Forbidden", "cannot create serviceaccounts/token")

    root = fake.client(KCM)
    root.create = refuse  # ...nor ask for tokens: the builder retries as upstream, then fails
    builder = ServiceAccountClientBuilder(root, make_client=lambda s, sa: fake.client(token_source=s), sleep=sleep)
    with pytest.raises(ApiError) as failed:
        await builder.client("x")
    assert failed.value.status == 403 and slept == [0.5, 1.0, 2.0, 4.0]


class TokenSourceStub:
    def __init__(self, renews_at_once: bool = True) -> None:
        self.current = "token-1"
        self.resets = 0
        self.renews_at_once = renews_at_once

    def token(self) -> str:
        return self.current

    def reset(self) -> bool:
        self.resets += 1
        if self.renews_at_once:
            self.current = "token-2"
        return self.renews_at_once


@pytest.mark.parametrize("renews_at_once", [pytest.param(True, id="new-token-at-once-retried"),
                                            pytest.param(False, id="new-token-later-401")])
async def test_api_client_sends_the_sources_current_token_and_resets_it_on_401(renews_at_once):
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != "Bearer token-2":
            return web.json_response({"kind": "Status", "code": 401, "reason": "Unauthorized",
                                      "message": "Unauthorized"}, status=401)
        return web.json_response({"kind": "PodList", "items": []})

    app = web.Application()
    app.router.add_get("/api/v1/pods", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    source = TokenSourceStub(renews_at_once)
    try:
        async with ApiClient(ClientConfig(server=f"http://127.0.0.1:{port}", token="static",
                                          token_source=source)) as api:
            if renews_at_once:  # the refused request is sent once more, with the new token
                assert (await api.list("v1", "pods"))["items"] == []
            else:
                with pytest.raises(ApiError) as refused:
                    await api.list("v1", "pods")
                assert refused.value.status == 401
    finally:
        await runner.cleanup()
    assert source.resets == 1
    assert seen == (["Bearer token-1", "Bearer token-2"] if renews_at_once else ["Bearer token-1"])


def test_controller_clients_carry_the_token_and_none_of_the_root_credentials():
    root_config = ClientConfig(server="https://127.0.0.1:6443", ca_data=b"CA", client_cert_data=b"CERT",
                               client_key_data=b"KEY", token="root-token")
    builder = ServiceAccountClientBuilder(FakeApi(), root_config, user_agent="kube-controller-manager/knet")
    source = TokenSourceStub()
    client = builder._api_client(source, "daemon-set-controller")
    assert isinstance(client, ApiClient)
    assert (client.config.client_cert_data, client.config.client_key_data) == (None, None)
    assert client.config.ca_data == b"CA" and client.config.bearer_token() == "token-1"
    headers = client._headers()
    assert headers["Authorization"] == "Bearer token-1"
    # upstream constructClient: the account's user name appended to the user agent
    assert headers["User-Agent"] == \
        "kube-controller-manager/knet/system:serviceaccount:kube-system:daemon-set-controller"
