"""A pod's volumes materialised as files under the pod directory, and the bind mounts that put
them at each container's mountPath (in the pod's private mount namespace)."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from knet.client import ApiError
from knet.node.tokenmanager import TokenManager

Obj = dict[str, Any]


def _write_items(target: Path, data: dict[str, bytes], items: list[Obj] | None, mode: int = 0o644) -> None:
    target.mkdir(parents=True, exist_ok=True)
    chosen = {i["key"]: i.get("path", i["key"]) for i in items} if items else {k: k for k in data}
    for key, rel in chosen.items():
        if key not in data:
            continue
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if path.read_bytes() == data[key]:
                continue  # unchanged: leave the file (and its inode) alone
        except OSError:
            pass
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data[key])
        os.chmod(tmp, mode)
        os.replace(tmp, path)


def _config_map_data(obj: Obj) -> dict[str, bytes]:
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def _secret_data(obj: Obj) -> dict[str, bytes]:
    data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
    return data


class VolumeError(RuntimeError):
    """A volume cannot be set up (yet): kubelet's FailedMount; the pod waits and retries."""


async def _get(api: Any, resource: str, ns: str, name: str, optional: bool) -> Obj | None:
    try:
        return await api.get("v1", resource, name, namespace=ns)
    except ApiError as exc:
        if exc.status == 404:
            if optional:
                return None
            kind = "configmap" if resource == "configmaps" else "secret"
            raise VolumeError(f'{kind} "{name}" not found') from exc
        raise


def _downward(pod: Obj, items: list[Obj]) -> dict[str, bytes]:
    from knet.node.podenv import field_value

    out: dict[str, bytes] = {}
    meta = pod["metadata"]
    for item in items:
        path = item["path"]
        ref = item.get("fieldRef")
        if not ref:
            continue
        fp = ref["fieldPath"]
        if fp in ("metadata.labels", "metadata.annotations"):
            values = meta.get(fp.split(".")[1]) or {}
            out[path] = "\n".join(f'{k}="{v}"' for k, v in sorted(values.items())).encode()
        else:
            out[path] = field_value(pod, fp, (pod.get("spec") or {}).get("nodeName", ""),
                                    (pod.get("status") or {}).get("hostIP", "")).encode()
    return out


def token_request_spec(pod: Obj, source: Obj) -> Obj:
    """The TokenRequest spec the kubelet sends for a projected serviceAccountToken source:
    its audience (none: the apiserver's), its lifetime (default 1 h), bound to the pod."""
    meta = pod["metadata"]
    return {"audiences": [source["audience"]] if source.get("audience") else [],
            "expirationSeconds": int(source.get("expirationSeconds") or 3600),
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta.get("uid", "")}}


async def _service_account_token(api: Any, pod: Obj, source: Obj, tokens: TokenManager | None = None) -> bytes:
    meta = pod["metadata"]
    sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
    ns = meta.get("namespace", "default")
    spec = token_request_spec(pod, source)
    if tokens is not None:
        return (await tokens.token(api, ns, sa, spec)).encode()
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    answer = await api.create("v1", "serviceaccounts", request, namespace=ns, name=sa, subresource="token")
    return answer["status"]["token"].encode()


def _token_sources(pod: Obj) -> list[tuple[str, Obj]]:
    """(volume name, serviceAccountToken source) of every projected token in the pod."""
    out = []
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        for source in (vol.get("projected") or {}).get("sources") or []:
            if "serviceAccountToken" in source:
                out.append((vol["name"], source["serviceAccountToken"]))
    return out


def has_tokens(pod: Obj) -> bool:
    return bool(_token_sources(pod))


async def refresh_tokens(api: Any, tokens: TokenManager, pod: Obj, pod_dir: Path) -> int:
    """Renew the pod's projected service-account tokens that are due (the token manager's 80 %
    / 24 h rule) and rewrite their files, each atomically (a new file renamed over the old one,
    in the directory the containers have bind-mounted, so a reader sees the old token or the
    new one, never a mix). Returns how many files changed."""
    ns = pod["metadata"].get("namespace", "default")
    sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
    changed = 0
    for volume, source in _token_sources(pod):
        target = pod_dir / "volumes" / volume
        spec = token_request_spec(pod, source)
        if not target.is_dir() or not tokens.due(ns, sa, spec):
            continue
        token = (await tokens.token(api, ns, sa, spec)).encode()
        path = target / source["path"]
        try:
            if path.read_bytes() == token:
                continue
        except OSError:
            pass
        _write_items(target, {source["path"]: token}, None, 0o600)
        changed += 1
    return changed


async def materialise(api: Any | None, pod: Obj, pod_dir: Path, tokens: TokenManager | None = None) -> dict[str, Path]:
    """Write every volume's files; returns volume name -> host path to bind."""
    ns = pod["metadata"].get("namespace", "default")
    paths: dict[str, Path] = {}
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        try:
            await _materialise_one(api, pod, pod_dir, vol, ns, paths, tokens)
        except VolumeError as exc:
            raise VolumeError(f'MountVolume.SetUp failed for volume "{vol["name"]}" : {exc}') from exc
    return paths


async def _materialise_one(api: Any | None, pod: Obj, pod_dir: Path, vol: Obj, ns: str,
                           paths: dict[str, Path], tokens: TokenManager | None = None) -> None:
    name = vol["name"]
    target = pod_dir / "volumes" / name
    if "hostPath" in vol:
        hp = vol["hostPath"]
        path = Path(hp["path"])
        if not path.exists():
            kind = hp.get("type") or ""
            if kind == "FileOrCreate":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            elif kind == "DirectoryOrCreate":
                path.mkdir(parents=True, exist_ok=True)
        paths[name] = path
    elif "emptyDir" in vol:
        target.mkdir(parents=True, exist_ok=True)
        paths[name] = target
    elif "configMap" in vol and api is not None:
        src = vol["configMap"]
        obj = await _get(api, "configmaps", ns, src["name"], bool(src.get("optional")))
        _write_items(target, _config_map_data(obj) if obj else {}, src.get("items"))
        paths[name] = target
    elif "secret" in vol and api is not None:
        src = vol["secret"]
        obj = await _get(api, "secrets", ns, src["secretName"], bool(src.get("optional")))
        _write_items(target, _secret_data(obj) if obj else {}, src.get("items"), 0o600)
        paths[name] = target
    elif "downwardAPI" in vol:
        _write_items(target, _downward(pod, vol["downwardAPI"].get("items") or []), None)
        paths[name] = target
    elif "projected" in vol and api is not None:
        for source in vol["projected"].get("sources") or []:
            if "serviceAccountToken" in source:
                tok = source["serviceAccountToken"]
                try:
                    token = await _service_account_token(api, pod, tok, tokens)
                except ApiError as exc:
                    # The volume knet adds itself (no admission did) must not block a pod
                    # whose service account does not exist; a declared one must.
                    if exc.status != 404:
                        raise
                    if name != SA_VOLUME:
                        raise VolumeError(f"failed to fetch token: {exc.message}") from exc
                    continue
                _write_items(target, {tok["path"]: token}, None, 0o600)
            elif "configMap" in source:
                src = source["configMap"]
                obj = await _get(api, "configmaps", ns, src["name"], bool(src.get("optional")))
                _write_items(target, _config_map_data(obj) if obj else {}, src.get("items"))
            elif "secret" in source:
                src = source["secret"]
                obj = await _get(api, "secrets", ns, src["name"], bool(src.get("optional")))
                _write_items(target, _secret_data(obj) if obj else {}, src.get("items"), 0o600)
            elif "downwardAPI" in source:
                _write_items(target, _downward(pod, source["downwardAPI"].get("items") or []), None)
        target.mkdir(parents=True, exist_ok=True)
        paths[name] = target
    else:
        target.mkdir(parents=True, exist_ok=True)
        paths[name] = target


async def refresh(api: Any, pod: Obj, pod_dir: Path) -> None:
    """Bring configMap and secret volumes up to date, as the kubelet's periodic volume sync does
    (files change in place; a key that went away goes away). subPath mounts keep their old
    file, as upstream."""
    ns = pod["metadata"].get("namespace", "default")
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        target = pod_dir / "volumes" / vol["name"]
        if "configMap" in vol:
            src = vol["configMap"]
            obj = await _get(api, "configmaps", ns, src["name"], True)
            data, mode = (_config_map_data(obj) if obj else {}), 0o644
        elif "secret" in vol:
            src = vol["secret"]
            obj = await _get(api, "secrets", ns, src["secretName"], True)
            data, mode = (_secret_data(obj) if obj else {}), 0o600
        elif "projected" in vol:
            await _refresh_projected(api, vol["projected"], ns, target)
            continue
        else:
            continue
        if obj is None or not target.is_dir():
            continue
        current = dict(data)
        _write_items(target, current, src.get("items"), mode)
        if not src.get("items"):
            for path in target.iterdir():
                if path.is_file() and path.name not in current:
                    path.unlink(missing_ok=True)


async def _refresh_projected(api: Any, projected: Obj, ns: str, target: Path) -> None:
    """A projected volume's configMap and secret sources follow their objects too (the sources
    share one directory, so a key that went away stays; tokens have their own refresh)."""
    if not target.is_dir():
        return
    for source in projected.get("sources") or []:
        if "configMap" in source:
            src = source["configMap"]
            obj = await _get(api, "configmaps", ns, src["name"], True)
            if obj is not None:
                _write_items(target, _config_map_data(obj), src.get("items"))
        elif "secret" in source:
            src = source["secret"]
            obj = await _get(api, "secrets", ns, src["name"], True)
            if obj is not None:
                _write_items(target, _secret_data(obj), src.get("items"), 0o600)


def bind_mounts(pod: Obj, volume_paths: dict[str, Path], *, bind_all: bool = False) -> list[tuple[str, str, bool]]:
    """(source, mountPath, readOnly) for every container's volumeMounts (the union of all
    containers' mounts). A hostPath at its own path needs no mount in a process that sees the
    host's files (a simulated node's static pod), unless `bind_all`: a runc container, whose root
    filesystem holds nothing of the host but its binds."""
    mounts: dict[str, tuple[str, str, bool]] = {}
    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for vm in container.get("volumeMounts") or []:
            src = volume_paths.get(vm["name"])
            if src is None:
                continue
            if vm.get("subPath"):
                src = src / vm["subPath"]
            if str(src) == vm["mountPath"] and not bind_all:
                continue  # a hostPath at its own path needs no mount
            mounts[vm["mountPath"]] = (str(src), vm["mountPath"], bool(vm.get("readOnly")))
    # Parents first, so a mount inside another mount lands on top of it.
    return sorted(mounts.values(), key=lambda m: m[1].count("/"))


SA_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
SA_VOLUME = "kube-api-access-knet"


def with_service_account_volume(pod: Obj) -> Obj:
    """The pod with the projected service-account volume that kube-apiserver's ServiceAccount
    admission adds (token, kube-root-ca.crt, namespace), when it is not already there and
    automountServiceAccountToken is not false. Pure; the API object is left untouched."""
    import copy

    spec = pod.get("spec") or {}
    if spec.get("automountServiceAccountToken") is False:
        return pod
    containers = spec.get("containers") or []
    if all(any(vm.get("mountPath") == SA_MOUNT_PATH for vm in c.get("volumeMounts") or []) for c in containers):
        return pod
    pod = copy.deepcopy(pod)
    spec = pod["spec"]
    spec.setdefault("volumes", []).append({"name": SA_VOLUME, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        # optional here (unlike admission's): ensure_ca_file falls back to the kubelet's own CA
        {"configMap": {"name": "kube-root-ca.crt", "optional": True,
                       "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                       "fieldPath": "metadata.namespace"}}]}},
    ]}})
    for c in spec.get("containers") or []:
        if not any(vm.get("mountPath") == SA_MOUNT_PATH for vm in c.get("volumeMounts") or []):
            c.setdefault("volumeMounts", []).append({"name": SA_VOLUME, "mountPath": SA_MOUNT_PATH, "readOnly": True})
    return pod


def ensure_ca_file(volume_dir: Path, ca_pem: bytes | None) -> None:
    """kube-root-ca.crt may not be published yet: fall back to the CA the kubelet trusts."""
    if ca_pem and volume_dir.is_dir() and not (volume_dir / "ca.crt").exists():
        _write_items(volume_dir, {"ca.crt": ca_pem}, None)
