"""kr8s (the Python client `pip install kr8s`, httpx underneath) against a knet apiserver, as a
user's script uses it: discovery, list with selectors, watch, create, merge and JSON patches,
server-side apply through kr8s's own request call, delete, and exec (WebSocket
v4.channel.k8s.io, which is what kr8s asks for) and port-forward into pods of a real node agent.

kr8s has no apply method of its own (0.20); users send the apply patch with `api.call_api`, as
below. Its exec does not send stdin over v4, so none is tested."""

from __future__ import annotations

import asyncio
import socket

import httpx
import kr8s.asyncio
import pytest
import yaml
from kr8s import ExecError, ServerError
from kr8s.asyncio.objects import ConfigMap, Deployment, Pod
from node_agents import host_static_pod, sim_kubelet, wait_for

pytestmark = pytest.mark.api

NODE = "kr8s-node"
POD = f"shell-{NODE}"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def deployment(namespace: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}


def test_list_watch_create_patch_apply_delete(apiserver, namespace):
    async def script():
        api = await kr8s.asyncio.api(kubeconfig=apiserver.kubeconfig)
        assert (await api.version())["gitVersion"].startswith("v1.32")
        kinds = {r["kind"] for r in await api.api_resources()}
        assert {"ConfigMap", "Deployment", "CustomResourceDefinition"} <= kinds

        events: list[tuple[str, str, dict]] = []
        watching = asyncio.Event()

        async def watch():
            watching.set()
            async for event, obj in api.async_watch("configmaps", namespace=namespace, label_selector="app=demo"):
                events.append((event, obj.name, dict(obj.raw.get("data") or {})))
                if event == "DELETED":
                    return

        watcher = asyncio.create_task(watch())
        await watching.wait()
        await asyncio.sleep(0.5)  # the watch request is on its way before the first change

        cm = await ConfigMap({"metadata": {"name": "settings", "namespace": namespace, "labels": {"app": "demo"}},
                              "data": {"color": "blue"}}, api=api)
        await cm.create()
        await ConfigMap({"metadata": {"name": "unlabelled", "namespace": namespace}}, api=api).create()
        listed = [c.name async for c in api.async_get("configmaps", namespace=namespace, label_selector="app=demo")]
        assert listed == ["settings"]
        others = [c.name async for c in api.async_get("configmaps", namespace=namespace,
                                                      field_selector="metadata.name!=settings")]
        assert others == ["unlabelled"]

        await cm.patch({"data": {"size": "L"}})  # merge patch
        assert cm.raw["data"] == {"color": "blue", "size": "L"}
        await cm.patch([{"op": "replace", "path": "/data/color", "value": "green"}], type="json")
        assert cm.raw["data"] == {"color": "green", "size": "L"}

        # Server-side apply: a YAML body and the field manager. kr8s's create named no manager,
        # so what it wrote belongs to its User-Agent's first word ("kr8s", as kube-apiserver
        # records it): changing the replicas is a conflict until the apply forces it.
        dep = deployment(namespace)
        async with api.call_api("POST", version="apps/v1", base="/apis", namespace=namespace, url="deployments",
                                content=yaml.safe_dump(dep), headers={"Content-Type": "application/yaml"}):
            pass

        async def apply(manager: str, replicas: int, force: bool = False) -> dict:
            params = {"fieldManager": manager, **({"force": "true"} if force else {})}
            async with api.call_api("PATCH", version="apps/v1", base="/apis", namespace=namespace,
                                    url="deployments/web", params=params,
                                    content=yaml.safe_dump({**dep, "spec": {"replicas": replicas}}),
                                    headers={"Content-Type": "application/apply-patch+yaml"}) as resp:
                return resp.json()

        for manager, owner in (("kr8s-script", "kr8s"), ("someone-else", "kr8s-script")):
            with pytest.raises(ServerError) as refused:
                await apply(manager, 5)
            assert refused.value.response.status_code == 409
            assert f'conflict with "{owner}" using apps/v1: .spec.replicas' in refused.value.status["message"]
            if manager == "kr8s-script":
                body = await apply(manager, 3, force=True)
                assert body["spec"]["replicas"] == 3
                assert [[f["manager"], f["operation"]] for f in body["metadata"]["managedFields"]] == [
                    ["kr8s", "Update"], ["kr8s-script", "Apply"]]
        web = await Deployment.get("web", namespace=namespace, api=api)
        assert web.replicas == 3

        await cm.delete()
        await asyncio.wait_for(watcher, 15)
        assert events == [("ADDED", "settings", {"color": "blue"}),
                          ("MODIFIED", "settings", {"color": "blue", "size": "L"}),
                          ("MODIFIED", "settings", {"color": "green", "size": "L"}),
                          ("DELETED", "settings", {"color": "green", "size": "L"})]
        assert not await cm.exists()
        await web.delete(propagation_policy="Foreground")
        with pytest.raises(kr8s.NotFoundError):
            await ConfigMap.get("settings", namespace=namespace, api=api)

    run(script())
    assert apiserver.kubectl_ok("get", "configmaps", "-n", namespace, "-l", "app=demo", "-o", "name") == ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def node_pods(apiserver, tmp_path_factory):
    """The shell pod, and a web pod serving HTTP on 127.0.0.1:port (host network)."""
    port = free_port()
    pods = {"shell": host_static_pod("shell", {"main": "echo started; exec sleep 3600"}),
            "web": host_static_pod("web", {"main": f"exec python3 -m http.server {port} --bind 127.0.0.1"})}
    with sim_kubelet(apiserver, tmp_path_factory.mktemp("kr8s-kubelet"), NODE, kubeconfig=apiserver.kubeconfig,
                     pod_cidr="10.244.81.0/24", taint="example.com/kr8s-only:NoSchedule", static_pods=pods):
        wait_for("the shell pod to run", lambda: "started" in apiserver.kubectl("logs", POD).stdout, timeout=20.0)
        wait_for("the web pod to listen", lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close()
                 or True, timeout=20.0)
        wait_for("the web mirror pod Running", lambda: apiserver.kubectl(
            "get", "pod", f"web-{NODE}", "-o", "jsonpath={.status.phase}").stdout == "Running", timeout=20.0)
        yield {"shell": POD, "web": (f"web-{NODE}", port)}


@pytest.fixture
def shell_pod(node_pods):
    return node_pods["shell"]


def test_exec(apiserver, shell_pod):
    async def script():
        api = await kr8s.asyncio.api(kubeconfig=apiserver.kubeconfig)
        pod = await Pod.get(shell_pod, namespace="default", api=api)
        assert pod.status.phase == "Running"
        done = await pod.exec(["sh", "-c", "echo out; echo err >&2"])
        assert (done.stdout, done.stderr, done.returncode) == (b"out\n", b"err\n", 0)
        done = await pod.exec(["sh", "-c", "exit 3"], check=False)
        assert done.returncode == 3
        # check=True raises kr8s's ExecError (inside httpx-ws's task group) with the apiserver's message.
        with pytest.raises(BaseException) as failed:
            await pod.exec(["sh", "-c", "exit 4"])
        errors = failed.value.exceptions if isinstance(failed.value, BaseExceptionGroup) else [failed.value]
        assert any(isinstance(e, ExecError) and "exit code" in str(e) for e in errors), errors

    run(script())


def test_port_forward(apiserver, node_pods):
    # kr8s forwards over a WebSocket with the channel protocol (v4.channel.k8s.io), one
    # WebSocket per local connection.
    name, port = node_pods["web"]

    async def script():
        api = await kr8s.asyncio.api(kubeconfig=apiserver.kubeconfig)
        pod = await Pod.get(name, namespace="default", api=api)
        async with pod.portforward(remote_port=port, local_port=0) as local:
            async with httpx.AsyncClient(timeout=10) as http:
                for _ in range(2):
                    reply = await http.get(f"http://127.0.0.1:{local}/")
                    assert reply.status_code == 200 and "Directory listing" in reply.text

    run(script())
