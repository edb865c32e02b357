"""pods/binding, pods/eviction, serviceaccounts/token (TokenRequest) and */scale."""

from __future__ import annotations

import datetime as dt

from knet.api import errors, typecheck, versions
from knet.api.errors import ApiError, invalid
from knet.api.printing import selector_text, timestamp
from knet.api.registry import ResourceType
from knet.api.rest import ObjectService, Options, deep_copy, retry_raced
from knet.api.tokens import TokenSigner


def _success(code: int = 201) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code}


async def bind(service: ObjectService, rt: ResourceType, ns: str, name: str, body: dict, opts: Options) -> dict:
    body = typecheck.decode_as(body, "V1Binding", "Binding", "v1")
    target = body.get("target") or {}
    if not target.get("name"):
        raise errors.invalid_object("Binding", "", name, [errors.required("target.name")])
    current = service.entry(rt, ns, name)
    pod = current.obj
    if pod["metadata"].get("deletionTimestamp"):
        raise errors.conflict("pods", "", name, "pod is being deleted, cannot be assigned to a host")
    if (pod.get("spec") or {}).get("nodeName"):
        raise errors.conflict("pods", "", name, f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"')
    status = pod.get("status") or {}
    conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": timestamp()})
    # Copies of the parts the binding changes only: the rest is shared with the stored entry,
    # which is never mutated.
    new = {**pod, "metadata": dict(pod["metadata"]), "spec": {**pod["spec"], "nodeName": target["name"]},
           "status": {**status, "conditions": conds}}
    if opts.dry_run:
        return _success()
    # The binding writes spec and status together, bypassing the spec-only update rules.
    await service.store.update(rt.bucket, ns, name, new, expected_revision=current.revision)
    return _success()


async def evict(service: ObjectService, rt: ResourceType, ns: str, name: str, body: dict, opts: Options) -> dict:
    body = typecheck.decode_as(body, "V1Eviction", "Eviction", "v1")
    delete_options = body.get("deleteOptions") or {}
    await service.delete(rt, ns, name, delete_options, opts)
    return _success()


async def token_request(service: ObjectService, signer: TokenSigner | None, rt: ResourceType, ns: str, name: str,
                        body: dict, opts: Options) -> dict:
    if signer is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
    sa = service.entry(rt, ns, name).obj
    body = typecheck.decode_as(body, "AuthenticationV1TokenRequest", "TokenRequest", "v1")
    spec = body.get("spec") or {}
    seconds = spec.get("expirationSeconds") or 3600
    if not isinstance(seconds, int) or seconds < 600:
        raise errors.invalid_object("TokenRequest", "authentication.k8s.io", name, [
            invalid("spec.expirationSeconds", seconds, "may not specify a duration less than 10 minutes")])
    if seconds > 2 ** 32:
        raise errors.invalid_object("TokenRequest", "authentication.k8s.io", name, [
            invalid("spec.expirationSeconds", seconds, "may not specify a duration larger than 2^32 seconds")])
    audiences = spec.get("audiences") or [signer.issuer]
    bound = spec.get("boundObjectRef")
    token, exp = signer.issue(namespace=ns, sa_name=name, sa_uid=sa["metadata"].get("uid", ""),
                              audiences=audiences, expiration_seconds=seconds, bound=bound)
    return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": None},
            "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": bound},
            "status": {"token": token,
                       "expirationTimestamp": timestamp(dt.datetime.fromtimestamp(exp, dt.UTC))}}


def scale_of(obj: dict) -> dict:
    meta = obj["metadata"]
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": selector_text((obj.get("spec") or {}).get("selector")).replace("<none>", "")}}


async def update_scale(service: ObjectService, rt: ResourceType, ns: str, name: str, scale: dict,
                       opts: Options) -> dict:
    async def attempt() -> tuple[int, dict]:
        return 200, await _update_scale_once(service, rt, ns, name, scale, opts)

    return (await retry_raced(rt, name, attempt))[1]


async def _update_scale_once(service: ObjectService, rt: ResourceType, ns: str, name: str, scale: dict,
                             opts: Options) -> dict:
    current = service.entry(rt, ns, name)
    scale = typecheck.decode_as(scale, "V1Scale", "Scale", "v1")
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise errors.invalid_object("Scale", "autoscaling", name, [
            invalid("spec.replicas", replicas, "must be greater than or equal to 0")])
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    expected = versions.parse(rv) or None
    new = deep_copy(current.obj)
    new["spec"]["replicas"] = replicas
    obj = await service._write_update(rt, current, new, opts, None, expected)
    return scale_of(obj)
