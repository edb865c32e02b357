"""pods/binding, pods/eviction, serviceaccounts/token (TokenRequest) and */scale."""

from __future__ import annotations

import datetime as dt
import time

from knet.api import errors, typecheck, versions
from knet.api.errors import ApiError, invalid
from knet.api.printing import selector_text, timestamp
from knet.api.registry import ResourceType
from knet.api.resources import poddisruptionbudgets
from knet.api.rest import ObjectService, Options, deep_copy, retry_raced
from knet.api.storage import Conflict, NotFound
from knet.api.tokens import MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS, TokenPolicy, TokenSigner, claims


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


# How many evictions a budget may have granted that its controller has not yet seen lead to
# deletions (upstream MaxDisruptedPodSize).
MAX_DISRUPTED_PODS = 2000
EVICTION_ATTEMPTS = 20  # a budget another eviction updated meanwhile is read again


async def evict(service: ObjectService, rt: ResourceType, ns: str, name: str, body: dict, opts: Options) -> dict:
    """pods/eviction as upstream's EvictionREST: the pod is deleted unless that would take its
    PodDisruptionBudget below what it must keep healthy (429, which `kubectl drain` retries);
    a granted eviction is counted in the budget's status before the delete."""
    body = typecheck.decode_as(body, "V1Eviction", "Eviction", "v1")
    delete_options = body.get("deleteOptions") or {}
    # Admission sees the Eviction as a CREATE of pods/eviction (NodeRestriction: a node evicts
    # only its own pods), before the delete it causes.
    service._admit("CREATE", rt, ns, name, body, None, "eviction", opts)
    pdb_rt = service.registry.lookup("policy", "v1", "poddisruptionbudgets")
    for _ in range(EVICTION_ATTEMPTS):
        pod = service.entry(rt, ns, name).obj
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed", "Pending") or pod["metadata"].get("deletionTimestamp"):
            break  # nothing a budget protects: a finished, not yet running or already going pod
        budgets = [e for e in service.store.list(pdb_rt.bucket, ns)[0] if poddisruptionbudgets.selects(e.obj, pod)]
        if not budgets:
            break
        if len(budgets) > 1:
            raise ApiError(500, "InternalError", "This pod has more than one PodDisruptionBudget, which the eviction "
                           "subresource does not support.")
        entry = budgets[0]
        pdb = entry.obj
        pstatus = pdb.get("status") or {}
        if not _ready(pod) and (
                (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
                or (int(pstatus.get("currentHealthy") or 0) >= int(pstatus.get("desiredHealthy") or 0) > 0)):
            break  # an unhealthy pod goes without using the budget (it counts as disrupted already)
        granted = _decremented(pdb, name)
        if opts.dry_run:
            break
        try:
            await service.store.update(pdb_rt.bucket, ns, pdb["metadata"]["name"], granted,
                                       expected_revision=entry.revision)
        except (Conflict, NotFound):
            continue  # the budget changed under us: decide again on its new state
        break
    else:
        raise errors.conflict("pods", "", name)
    await service.delete(rt, ns, name, delete_options, opts)
    return _success()


def _ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _decremented(pdb: dict, pod_name: str) -> dict:
    """The budget with one disruption used by POD_NAME (upstream checkAndDecrement), or the
    error that refuses the eviction."""
    meta, status = pdb["metadata"], dict(pdb.get("status") or {})
    pdb_name = meta["name"]
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        raise _budget_refusal(f"The disruption budget {pdb_name} is still being processed by the server.")
    allowed = int(status.get("disruptionsAllowed") or 0)
    if allowed < 0:
        raise ApiError(403, "Forbidden", "pdb disruptions allowed is negative")
    disrupted = dict(status.get("disruptedPods") or {})
    if len(disrupted) > MAX_DISRUPTED_PODS:
        raise ApiError(403, "Forbidden", "DisruptedPods map too big - too many evictions not confirmed by PDB "
                       "controller")
    if allowed == 0:
        raise _budget_refusal(f"The disruption budget {pdb_name} needs {int(status.get('desiredHealthy') or 0)} "
                              f"healthy pods and has {int(status.get('currentHealthy') or 0)} currently")
    disrupted[pod_name] = timestamp()
    status.update(disruptionsAllowed=allowed - 1, disruptedPods=disrupted)
    return {**pdb, "metadata": dict(meta), "status": status}


def _budget_refusal(cause: str) -> ApiError:
    return ApiError(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.",
                    {"causes": [{"reason": "DisruptionBudget", "message": cause}]})


def _bound_object(service: ObjectService, ns: str, sa_name: str, ref: dict) -> tuple[dict | None, dict | None, dict | None]:
    """(pod, secret, node) that a TokenRequest's boundObjectRef names (upstream token.go)."""
    api_version, kind = str(ref.get("apiVersion") or ""), str(ref.get("kind") or "")
    group, _, version = api_version.rpartition("/")
    name = str(ref.get("name") or "")
    pod = secret = node = None
    if group == "" and kind == "Pod":
        pod = service.entry(service.registry.lookup("", "v1", "pods"), ns, name).obj
        if sa_name != ((pod.get("spec") or {}).get("serviceAccountName") or "default"):
            raise errors.bad_request(f'cannot bind token for serviceaccount "{sa_name}" to pod running with different '
                                     "serviceaccount name.")
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name:
            entry = service.store.get("nodes", "", node_name)
            # A pod's node that is gone is still named (without a uid), as upstream.
            node = entry.obj if entry is not None else {"metadata": {"name": node_name}}
        uid = pod["metadata"].get("uid", "")
    elif group == "" and kind == "Secret":
        secret = service.entry(service.registry.lookup("", "v1", "secrets"), ns, name).obj
        uid = secret["metadata"].get("uid", "")
    elif group == "" and kind == "Node":
        raise errors.bad_request('cannot bind token to a Node object as the "ServiceAccountTokenNodeBinding" '
                                 "feature-gate is disabled")
    else:
        raise errors.bad_request(f"cannot bind token to object of type {group}/{version}, Kind={kind}")
    if ref.get("uid") and ref["uid"] != uid:
        raise errors.conflict(kind, "", name, f"the UID in the bound object reference ({ref['uid']}) does not match "
                              "the UID in record. The object might have been deleted and then recreated")
    return pod, secret, node


async def token_request(service: ObjectService, signer: TokenSigner | None, rt: ResourceType, ns: str, name: str,
                        body: dict, opts: Options, policy: TokenPolicy | None = None) -> dict:
    """POST serviceaccounts/NAME/token, as kube-apiserver's TokenREST.Create."""
    if signer is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
    policy = policy or TokenPolicy((signer.issuer,))
    body = body if isinstance(body, dict) else {}
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    if meta.get("name") and meta["name"] != name:
        raise errors.invalid_object("TokenRequest", "authentication.k8s.io", name, [
            invalid("metadata.name", meta["name"], "must match the service account name if specified")])
    if meta.get("namespace") and meta["namespace"] != ns:
        raise errors.invalid_object("TokenRequest", "authentication.k8s.io", name, [
            invalid("metadata.namespace", meta["namespace"], "must match the service account namespace if specified")])
    sa = service.entry(rt, ns, name).obj
    body = typecheck.decode_as(body, "AuthenticationV1TokenRequest", "TokenRequest", "v1")
    # Admission sees the TokenRequest as a CREATE of serviceaccounts/token (NodeRestriction: a
    # node asks only for tokens bound to its own pods).
    service._admit("CREATE", rt, ns, name, body if isinstance(body, dict) else {}, None, "token", opts)
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    audiences = spec.get("audiences") or list(policy.audiences)
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise errors.bad_request("spec.audiences must be a list of strings")
    seconds = spec.get("expirationSeconds")
    if seconds is None:
        seconds = 3600  # authentication/v1 defaulting
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise errors.bad_request("spec.expirationSeconds must be an integer")
    problems = []
    if seconds < MIN_EXPIRATION_SECONDS:
        problems.append(invalid("spec.expirationSeconds", seconds, "may not specify a duration less than 10 minutes"))
    if seconds > MAX_EXPIRATION_SECONDS:
        problems.append(invalid("spec.expirationSeconds", seconds, "may not specify a duration larger than 2^32 seconds"))
    if problems:
        raise errors.invalid_object("TokenRequest", "authentication.k8s.io", "", problems)
    ref = spec.get("boundObjectRef")
    pod = secret = node = None
    if ref is not None:
        if not isinstance(ref, dict):
            raise errors.bad_request("spec.boundObjectRef must be an object")
        pod, secret, node = _bound_object(service, ns, name, ref)
    now = int(time.time())
    granted, lifetime, warn_after = policy.lifetime(seconds, pod_bound=pod is not None, audiences=audiences)
    if granted != seconds:
        opts.warnings.append(f"requested expiration of {seconds} seconds shortened to {granted} seconds")
    payload = claims(sa=sa, audiences=audiences, expiration_seconds=lifetime, now=now, issuer=signer.issuer,
                     pod=pod, secret=secret, node=node, warn_after=warn_after)
    token = signer.sign(payload)
    out_spec: dict = {"audiences": audiences, "expirationSeconds": granted}
    if ref is not None:
        out_spec["boundObjectRef"] = ref
    # status.expirationTimestamp is the requested (capped) expiry even for an extended token: the
    # kubelet refreshes by it.
    return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": timestamp(dt.datetime.fromtimestamp(now, dt.UTC))},
            "spec": out_spec,
            "status": {"token": token,
                       "expirationTimestamp": timestamp(dt.datetime.fromtimestamp(now + granted, dt.UTC))}}


def scale_of(obj: dict, paths: tuple[str, str, str] | None = None) -> dict:
    """The Scale of an object: spec.replicas, status.replicas and spec.selector, or a custom
    resource's (specReplicasPath, statusReplicasPath, labelSelectorPath)."""
    meta = obj["metadata"]
    if paths is None:
        replicas = (obj.get("spec") or {}).get("replicas", 0)
        status_replicas = (obj.get("status") or {}).get("replicas", 0)
        selector = (obj.get("spec") or {}).get("selector")
        if obj.get("apiVersion") == "v1" and selector is not None:  # a ReplicationController's label map
            selector = {"matchLabels": selector}
        selector = selector_text(selector).replace("<none>", "")
    else:
        replicas = _at_path(obj, paths[0]) or 0
        status_replicas = _at_path(obj, paths[1]) or 0
        selector = _at_path(obj, paths[2]) if paths[2] else ""
        selector = selector if isinstance(selector, str) else ""
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": replicas}, "status": {"replicas": status_replicas, "selector": selector}}


def _at_path(obj: dict, path: str):
    """The value at a scale path (`.spec.replicas`: fields only, as upstream allows)."""
    for key in path.lstrip(".").split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _set_path(obj: dict, path: str, value) -> None:
    keys = path.lstrip(".").split(".")
    for key in keys[:-1]:
        nxt = obj.get(key)
        if not isinstance(nxt, dict):
            nxt = obj[key] = {}
        obj = nxt
    obj[keys[-1]] = value


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
    _set_path(new, rt.scale_paths[0] if rt.scale_paths else ".spec.replicas", replicas)
    obj = await service._write_update(rt, current, new, opts, None, expected)
    return scale_of(obj, rt.scale_paths)
