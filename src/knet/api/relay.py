"""pods/log, pods/exec, pods/attach and pods/portforward: relayed to the pod's node agent
(docs/contracts.md s.4). The apiserver authenticates to it with --kubelet-client-certificate and
checks it against the cluster CA. Exec over WebSocket is relayed with the same channel
subprotocol on both legs; over SPDY/3.1 (kubectl <= 1.29) the apiserver ends the SPDY session
(knet.api.spdyrelay) and speaks v5.channel.k8s.io to the kubelet, as it does for attach;
port-forward opens one kubelet WebSocket (portforward.k8s.io) per forwarded connection."""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from knet.api import errors, nodeproxy, podlogoptions, spdyrelay, wsportforward
from knet.api.errors import ApiError
from knet.api.rest import ObjectService

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                  "channel.k8s.io")


class KubeletRelay:
    def __init__(self, service: ObjectService, ca_file: str | None, client_cert: str | None, client_key: str | None,
                 honor_endpoint_annotation: bool = False) -> None:
        self.service = service
        # --kubelet-endpoint-annotation: simulated nodes' kubelets are reached at the endpoint
        # they register (knet.api.nodeproxy.kubelet_endpoint); else as upstream.
        self.honor_endpoint_annotation = honor_endpoint_annotation
        ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        ctx.check_hostname = False  # kubelets are addressed by IP; the CA check is what matters
        if not ca_file:
            ctx.verify_mode = ssl.CERT_NONE
        if client_cert and client_key:
            ctx.load_cert_chain(client_cert, client_key)
        self._ssl = ctx
        self.ssl_context = ctx  # the kubelet transport's, also for nodes/proxy
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _pod(self, ns: str, name: str) -> dict:
        rt = self.service.registry.lookup("", "v1", "pods")
        return self.service.entry(rt, ns, name).obj

    def _target(self, ns: str, name: str, container: str | None) -> tuple[str, str]:
        """(kubelet base URL, container name) for a pod."""
        pod = self._pod(ns, name)
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        inits = [c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []]
        ephemeral = [c.get("name") for c in (pod.get("spec") or {}).get("ephemeralContainers") or []]
        if not container:
            if len(containers) != 1:
                raise errors.bad_request(
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
                    + (f" or one of the init containers: [{' '.join(inits)}]" if inits else "")
                    + (f" or one of the ephemeral containers: [{' '.join(ephemeral)}]" if ephemeral else ""))
            container = containers[0]
        elif container not in containers and container not in inits and container not in ephemeral:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        return self._kubelet(pod, name), container

    def _kubelet(self, pod: dict, name: str) -> str:
        """The kubelet base URL (https://host:port) of the node a pod runs on."""
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        node = self.service.store.get("nodes", "", node_name)
        if node is None:
            raise errors.not_found("nodes", "", node_name)
        host, port = nodeproxy.kubelet_endpoint(node.obj, self.honor_endpoint_annotation)
        endpoint = nodeproxy.host_port(host, port)
        return f"https://{endpoint}"

    async def summary(self, endpoint: str) -> dict:
        """A kubelet's /stats/summary (host:port), for the metrics scraper."""
        async with self.session().get(f"https://{endpoint}/stats/summary", ssl=self._ssl,
                                      timeout=aiohttp.ClientTimeout(total=10)) as resp:
            if resp.status != 200:
                raise ApiError(resp.status, "InternalError", (await resp.text()).strip())
            return await resp.json()

    async def logs(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        q = request.query
        # As LogREST.Get: the options decode (400) and validate (422) before the pod is looked up.
        try:
            options = podlogoptions.from_query(q)
        except ValueError as exc:
            raise errors.bad_request(str(exc)) from None
        if problems := podlogoptions.validate(options):
            raise errors.invalid_object("PodLogOptions", "", name, problems)
        base, container = self._target(ns, name, q.get("container"))
        params = {k: q[k] for k in ("follow", "previous", "tailLines", "timestamps", "sinceSeconds", "sinceTime",
                                    "limitBytes") if k in q}
        url = f"{base}/containerLogs/{ns}/{name}/{container}"
        try:
            upstream = await self.session().get(url, params=params, ssl=self._ssl)
        except (aiohttp.ClientError, OSError) as exc:
            raise ApiError(500, "InternalError", f'Get "{url}": {exc}') from None
        async with upstream:
            if upstream.status != 200:
                text = await upstream.text()
                if upstream.status in (401, 403):  # the kubelet refused the apiserver's identity
                    raise ApiError(upstream.status, "Unauthorized" if upstream.status == 401 else "Forbidden",
                                   f"{text.strip()} ( pods/log {name})")
                raise ApiError(upstream.status if upstream.status in (400, 404) else 500,
                               "BadRequest" if upstream.status == 400 else "InternalError", text.strip())
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            except (ConnectionResetError, aiohttp.ClientError):
                pass
            return resp

    async def exec(self, request: web.Request, ns: str, name: str, attach: bool = False) -> web.StreamResponse:
        """pods/exec (attach: pods/attach) over WebSocket or SPDY/3.1."""
        q = request.query
        base, container = self._target(ns, name, q.get("container"))
        params = [] if attach else [("command", c) for c in q.getall("command", [])]
        for k in ("stdin", "stdout", "stderr", "tty"):
            if k in q:
                params.append((k, q[k]))
        if not attach and not any(k == "command" for k, _ in params):
            raise errors.bad_request("you must specify at least 1 command")
        flags = {k: q.get(k, "").lower() in ("true", "1") for k in ("stdin", "stdout", "stderr", "tty")}
        if not (flags["stdin"] or flags["stdout"] or flags["stderr"]):
            raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
        spdy = spdyrelay.wants_spdy(request.headers)
        if spdy:
            try:
                protocol = spdyrelay.negotiate(request.headers.getall("X-Stream-Protocol-Version", []),
                                               spdyrelay.EXEC_PROTOCOLS)
            except spdyrelay.HandshakeError as exc:
                return exc.response()
            protocols = ["v5.channel.k8s.io"]  # the kubelet leg; the SPDY streams map onto its channels
        else:
            offered = [p.strip() for h in request.headers.getall("Sec-WebSocket-Protocol", []) for p in h.split(",")]
            protocols = [p for p in offered if p in EXEC_PROTOCOLS] or list(EXEC_PROTOCOLS)
            if request.headers.get("Upgrade", "").lower() != "websocket":
                raise ApiError(400, "BadRequest", "Upgrade request required")
        path = "attach" if attach else "exec"
        url = f"{base.replace('https://', 'wss://')}/{path}/{ns}/{name}/{container}?{urlencode(params)}"
        try:
            upstream = await self.session().ws_connect(url, protocols=protocols, ssl=self._ssl, max_msg_size=0,
                                                       autoping=True)
        except aiohttp.WSServerHandshakeError as exc:
            raise ApiError(500, "InternalError", f"error dialing backend: the kubelet answered {exc.status} "
                           f"for {ns}/{name}/{container}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ApiError(500, "InternalError", f"error dialing backend: {exc}") from None
        if spdy:
            want = spdyrelay.expected_streams(flags["stdin"], flags["stdout"], flags["stderr"], flags["tty"])
            return await spdyrelay.serve_exec(request, protocol, upstream, want)
        chosen = upstream.protocol
        ws = web.WebSocketResponse(protocols=[chosen] if chosen else (), max_msg_size=0, autoping=True)
        await ws.prepare(request)

        async def pump(src, dst) -> None:
            async for msg in src:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    await dst.send_bytes(msg.data)
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    await dst.send_str(msg.data)
                else:
                    break

        down = asyncio.ensure_future(pump(upstream, ws))
        up = asyncio.ensure_future(pump(ws, upstream))
        try:
            # Either side closing ends the session (v5 half-closes stdin with a channel message,
            # not a WebSocket close, so the first close is the end).
            await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (down, up):
                t.cancel()
            await upstream.close()
            await ws.close()
        return ws

    async def portforward(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        """pods/portforward over SPDY/3.1, upgraded to or tunnelled in a WebSocket, or over a
        WebSocket's channels (wsportforward): each forwarded connection is a WebSocket to the
        kubelet's /portForward/NS/POD?port=N."""
        pod = self._pod(ns, name)
        offered = [p.strip() for h in request.headers.getall("Sec-WebSocket-Protocol", []) for p in h.split(",")]
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        tunnel = websocket and spdyrelay.TUNNEL_PROTOCOL in offered
        # A WebSocket without the SPDY tunnel speaks the channel protocol (kr8s, client libraries).
        channels = websocket and not tunnel
        ports = wsportforward.parse_ports(request.query.getall("ports", [])) if channels else []
        if not websocket and not spdyrelay.wants_spdy(request.headers):
            raise ApiError(400, "BadRequest", "Upgrade request required")
        if not websocket:
            try:
                spdyrelay.negotiate(request.headers.getall("X-Stream-Protocol-Version", []),
                                    spdyrelay.PORTFORWARD_PROTOCOLS)
            except spdyrelay.HandshakeError as exc:
                return exc.response()
        base = self._kubelet(pod, name).replace("https://", "wss://")
        uid = (pod.get("metadata") or {}).get("uid", "")

        async def dial(port: int) -> aiohttp.ClientWebSocketResponse:
            try:
                return await self.session().ws_connect(f"{base}/portForward/{ns}/{name}?port={port}",
                                                       protocols=spdyrelay.PORTFORWARD_PROTOCOLS, ssl=self._ssl,
                                                       max_msg_size=0, autoping=True)
            except aiohttp.WSServerHandshakeError as exc:
                raise RuntimeError(f"error dialing backend: the kubelet answered {exc.status}") from None

        if channels:
            return await wsportforward.serve(request, ports, offered, dial, f"{ns}/{name}, uid {uid}")
        return await spdyrelay.serve_portforward(request, dial, f"{ns}/{name}, uid {uid}", tunnel=tunnel)
