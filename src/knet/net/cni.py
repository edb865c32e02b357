"""CNI: the pod network of a node, by invoking the real plugins from /usr/lib/cni.

Per the CNI spec: the plugin named by `type` runs with CNI_COMMAND, CNI_CONTAINERID,
CNI_NETNS, CNI_IFNAME, CNI_PATH in its environment and the network config on stdin; a
conflist's plugins run in order for ADD (each gets the previous result as `prevResult`) and in
reverse for DEL.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knet.net import spawn

CNI_VERSION = "1.0.0"
CONFLIST_NAME = "10-knet.conflist"
NETWORK_NAME = "knet"


def pod_network_conflist(pod_cidr: str, ipam_data_dir: str, bridge: str = "cni0") -> dict[str, Any]:
    """Bridge `cni0` as the podCIDR's gateway, hairpin on, host-local IPAM, portmap. Pure."""
    return {
        "cniVersion": CNI_VERSION,
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": False,  # pod traffic inside the cluster is never masqueraded
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_data_dir,
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def write_conflist(conf_dir: str | Path, conflist: dict[str, Any]) -> Path:
    path = Path(conf_dir) / CONFLIST_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(conflist, indent=2))
    os.replace(tmp, path)
    return path


def load_conflist(conf_dir: str | Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(conf_dir) / CONFLIST_NAME).read_text())
    except (OSError, ValueError):
        return None


class CniError(RuntimeError):
    pass


@dataclass
class CniResult:
    ip: str          # the pod's IPv4 address
    gateway: str
    raw: dict[str, Any]


def _port_mappings(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod's hostPorts as containerd hands them to CNI (`runtimeConfig.portMappings`, the
    portmap plugin's capability): protocol lower-case, hostIP only when the port names one."""
    mappings = []
    for container in pod_spec.get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                mapping = {"hostPort": port["hostPort"], "containerPort": port["containerPort"],
                           "protocol": (port.get("protocol") or "TCP").lower()}
                if port.get("hostIP"):
                    mapping["hostIP"] = port["hostIP"]
                mappings.append(mapping)
    return mappings


async def _invoke(bin_dir: str, plugin: dict[str, Any], command: str, container_id: str, netns: str,
                  ifname: str, args: str) -> dict[str, Any]:
    env = {
        "CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
        "CNI_IFNAME": ifname, "CNI_PATH": bin_dir, "CNI_ARGS": args,
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    }
    proc = await spawn.spawn([os.path.join(bin_dir, plugin["type"])], env=env, stdin=spawn.PIPE,
                             stdout=spawn.PIPE, stderr=spawn.PIPE)
    out, err = await proc.communicate(json.dumps(plugin).encode())
    if proc.returncode != 0:
        try:
            detail = json.loads(out).get("msg") or out.decode()
        except ValueError:
            detail = (out or err).decode().strip()
        raise CniError(f"plugin type={plugin['type']!r} failed ({command}): {detail}")
    return json.loads(out) if out.strip() else {}


def _netconf(conflist: dict[str, Any], plugin: dict[str, Any], prev: dict[str, Any] | None,
             runtime: dict[str, Any]) -> dict[str, Any]:
    conf = dict(plugin, cniVersion=conflist["cniVersion"], name=conflist["name"])
    caps = plugin.get("capabilities") or {}
    rc = {k: v for k, v in runtime.items() if caps.get(k)}
    if rc:
        conf["runtimeConfig"] = rc
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def _plugins_needed(conflist: dict[str, Any], runtime: dict[str, Any]) -> list[dict[str, Any]]:
    """Skip a capability-only plugin (portmap) when the pod asks for none of its capabilities: it
    would pass prevResult through unchanged. Saves an exec per pod; `lo` is brought up by the
    sandbox itself (what the loopback plugin would do)."""
    out = []
    for plugin in conflist["plugins"]:
        caps = plugin.get("capabilities") or {}
        if caps and plugin["type"] == "portmap" and not any(runtime.get(k) for k in caps):
            continue
        out.append(plugin)
    return out


def _cni_args(namespace: str, name: str, container_id: str) -> str:
    return (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};"
            f"K8S_POD_INFRA_CONTAINER_ID={container_id}")


async def add_pod(conflist: dict[str, Any], bin_dir: str, container_id: str, netns: str, pod: dict[str, Any],
                  ifname: str = "eth0") -> CniResult:
    meta = pod["metadata"]
    args = _cni_args(meta.get("namespace", "default"), meta["name"], container_id)
    runtime = {"portMappings": _port_mappings(pod.get("spec") or {})}
    prev = None
    for plugin in _plugins_needed(conflist, runtime):
        prev = await _invoke(bin_dir, _netconf(conflist, plugin, prev, runtime), "ADD", container_id, netns,
                             ifname, args)
    ips = (prev or {}).get("ips") or []
    if not ips:
        raise CniError("CNI result has no IP address")
    return CniResult(ip=ips[0]["address"].split("/")[0], gateway=ips[0].get("gateway", ""), raw=prev or {})


async def del_pod(conflist: dict[str, Any], bin_dir: str, container_id: str, netns: str, pod: dict[str, Any],
                  ifname: str = "eth0") -> None:
    """DEL every plugin in reverse; tolerant of a netns that is already gone (spec: DEL must
    release what it can)."""
    meta = pod["metadata"]
    args = _cni_args(meta.get("namespace", "default"), meta["name"], container_id)
    runtime = {"portMappings": _port_mappings(pod.get("spec") or {})}
    errors = []
    for plugin in reversed(_plugins_needed(conflist, runtime)):
        try:
            await _invoke(bin_dir, _netconf(conflist, plugin, None, runtime), "DEL", container_id, netns,
                          ifname, args)
        except CniError as exc:
            errors.append(str(exc))
    if errors:
        raise CniError("; ".join(errors))
