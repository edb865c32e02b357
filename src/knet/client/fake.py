"""FakeApi: an in-memory API with the `Api` protocol, for unit tests of controllers and the scheduler.

It keeps state like the real apiserver does at its seams: resourceVersions from one global
counter, optimistic concurrency on update (409 on a stale resourceVersion), generateName, uid,
creationTimestamp, label/field selectors, watch from a resourceVersion (history replay), the
status subresource, pods/NAME/binding, serviceaccounts/NAME/token (TokenRequest), merge
patches, and deletion with ownerReference garbage collection of dependents (background
propagation, as the apiserver's GC does).

Every request is logged in `requests` as (user, verb, group, resource, subresource, namespace,
name), so tests can check a component's calls against the RBAC role it runs under. `client(user)`
is a view that makes requests as `user`; `client(token_source=...)` authenticates each request
by a token this FakeApi issued through TokenRequest (401 once it expired), as the apiserver does.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

from knet.client.config import TokenSource
from knet.client.errors import ApiError
from knet.client.watch import WatchEvent
from knet.selectors import matches, parse_field_selector, parse_label_selector

Obj = dict[str, Any]
KINDS = {
    "pods": "Pod", "nodes": "Node", "services": "Service", "endpoints": "Endpoints",
    "endpointslices": "EndpointSlice", "events": "Event", "namespaces": "Namespace",
    "serviceaccounts": "ServiceAccount", "deployments": "Deployment", "replicasets": "ReplicaSet",
    "daemonsets": "DaemonSet", "leases": "Lease", "configmaps": "ConfigMap",
}
_INTERNAL = "\x00apiserver"  # the fake apiserver's own writes (garbage collection): not logged


class ApiRequest(NamedTuple):
    """One request as an authorizer sees it (authorizer.Attributes' resource fields)."""
    user: str | None
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str


def group_of(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeApi:
    def __init__(self, *, watch_latency: float = 0.0, clock: Any = time.time) -> None:
        # watch_latency delays every watch event: informer caches lag behind writes, as they do
        # against a real apiserver under load (controllers must not act on their own stale view)
        self.watch_latency = watch_latency
        self._rv = itertools.count(1)
        self.revision = 0
        self.store: dict[tuple[str, str], dict[tuple[str | None, str], Obj]] = {}
        self.history: list[tuple[int, str, str, str, Obj]] = []  # (rv, api_version, resource, type, obj)
        self._watchers: list[tuple[str, str, asyncio.Queue[tuple[WatchEvent, float]]]] = []
        self.calls: list[tuple[str, str, str]] = []  # (verb, resource, name) for assertions on writes
        self.requests: list[ApiRequest] = []  # every request, reads too, with who made it
        self.clock = clock  # wall clock (seconds) of token expiry
        self.tokens: dict[str, tuple[str, float]] = {}  # issued token -> (user name, expiry)
        self.token_requests: list[tuple[str, str, Obj]] = []  # (namespace, service account, spec)
        self.max_token_seconds: int | None = None  # --service-account-max-token-expiration

    def client(self, user: str | None = None, *, token_source: TokenSource | None = None) -> FakeApiClient:
        """This API as seen by one client: requests made as `user`, or as whoever the token
        from `token_source` was issued to."""
        return FakeApiClient(self, user, token_source)

    def _log(self, user: str | None, verb: str, api_version: str, resource: str, subresource: str | None,
             namespace: str | None, name: str | None) -> None:
        if user != _INTERNAL:
            self.requests.append(ApiRequest(user, verb, group_of(api_version), resource, subresource or "",
                                            namespace or "", name or ""))

    # -- helpers for tests --------------------------------------------------------------------

    def objects(self, api_version: str, resource: str) -> list[Obj]:
        return [copy.deepcopy(o) for o in self.store.get((api_version, resource), {}).values()]

    def seed(self, api_version: str, resource: str, obj: Obj) -> Obj:
        """Put an object in as if another component had created it."""
        ns = obj.get("metadata", {}).get("namespace")
        return self._create(api_version, resource, copy.deepcopy(obj), ns)

    # -- internals ----------------------------------------------------------------------------

    def _table(self, api_version: str, resource: str) -> dict[tuple[str | None, str], Obj]:
        return self.store.setdefault((api_version, resource), {})

    def _emit(self, api_version: str, resource: str, etype: str, obj: Obj) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        self.history.append((rv, api_version, resource, etype, copy.deepcopy(obj)))
        now = time.monotonic()
        for av, res, q in self._watchers:
            if (av, res) == (api_version, resource):
                q.put_nowait((WatchEvent(etype, copy.deepcopy(obj)), now))  # type: ignore[arg-type]

    def _bump(self, obj: Obj) -> None:
        self.revision = next(self._rv)
        obj["metadata"]["resourceVersion"] = str(self.revision)

    def _not_found(self, resource: str, name: str) -> ApiError:
        body = {"kind": "Status", "code": 404, "reason": "NotFound", "message": f'{resource} "{name}" not found'}
        return ApiError.from_status(404, body)

    def _create(self, api_version: str, resource: str, obj: Obj, namespace: str | None) -> Obj:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(422, "Invalid", "name or generateName is required")
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if namespace is not None:
            meta["namespace"] = namespace
        table = self._table(api_version, resource)
        key = (meta.get("namespace"), meta["name"])
        if key in table:
            body = {"kind": "Status", "code": 409, "reason": "AlreadyExists",
                    "message": f'{resource} "{meta["name"]}" already exists'}
            raise ApiError.from_status(409, body)
        obj.setdefault("apiVersion", api_version)
        obj.setdefault("kind", KINDS.get(resource, resource))
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        meta.setdefault("generation", 1)
        self._bump(obj)
        table[key] = obj
        self._emit(api_version, resource, "ADDED", obj)
        return copy.deepcopy(obj)

    def _replace(self, api_version: str, resource: str, key: tuple[str | None, str], obj: Obj) -> Obj:
        table = self._table(api_version, resource)
        old = table[key]
        if old.get("spec") != obj.get("spec"):
            obj["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if old == obj:
            return copy.deepcopy(old)
        self._bump(obj)
        table[key] = obj
        self._emit(api_version, resource, "MODIFIED", obj)
        return copy.deepcopy(obj)

    # -- the Api protocol ---------------------------------------------------------------------

    async def get(self, api_version: str, resource: str, name: str, *, namespace: str | None = None,
                  subresource: str | None = None, _user: str | None = None) -> Obj:
        self._log(_user, "get", api_version, resource, subresource, namespace, name)
        obj = self._table(api_version, resource).get((namespace, name))
        if obj is None:
            raise self._not_found(resource, name)
        return copy.deepcopy(obj)

    async def list(self, api_version: str, resource: str, *, namespace: str | None = None,
                   label_selector: str | None = None, field_selector: str | None = None,
                   resource_version: str | None = None, limit: int | None = None,
                   _user: str | None = None) -> Obj:
        self._log(_user, "list", api_version, resource, None, namespace, None)
        lreqs = parse_label_selector(label_selector)
        freqs = parse_field_selector(field_selector)
        items = [copy.deepcopy(o) for (ns, _), o in sorted(self._table(api_version, resource).items(),
                                                           key=lambda kv: (kv[0][0] or "", kv[0][1]))
                 if (namespace is None or ns == namespace)
                 and matches(lreqs, o["metadata"].get("labels")) and freqs.matches_object(o)]
        return {"kind": KINDS.get(resource, resource) + "List", "apiVersion": api_version,
                "metadata": {"resourceVersion": str(self.revision)}, "items": items}

    async def watch(self, api_version: str, resource: str, *, namespace: str | None = None,
                    resource_version: str | None = None, field_selector: str | None = None,
                    label_selector: str | None = None, allow_bookmarks: bool = True,
                    timeout_seconds: int | None = None, _user: str | None = None) -> AsyncIterator[WatchEvent]:
        self._log(_user, "watch", api_version, resource, None, namespace, None)
        lreqs = parse_label_selector(label_selector)
        freqs = parse_field_selector(field_selector)
        q: asyncio.Queue[tuple[WatchEvent, float]] = asyncio.Queue()
        since = int(resource_version or self.revision)
        for rv, av, res, etype, obj in self.history:
            if rv > since and (av, res) == (api_version, resource):
                q.put_nowait((WatchEvent(etype, copy.deepcopy(obj)), 0.0))  # type: ignore[arg-type]
        entry = (api_version, resource, q)
        self._watchers.append(entry)
        try:
            while True:
                ev, emitted = await q.get()
                if self.watch_latency:
                    # delivered `watch_latency` after the write, in order (not latency per event)
                    await asyncio.sleep(max(0.0, emitted + self.watch_latency - time.monotonic()))
                meta = ev.object["metadata"]
                if namespace is not None and meta.get("namespace") != namespace:
                    continue
                if matches(lreqs, meta.get("labels")) and freqs.matches_object(ev.object):
                    yield ev
        finally:
            self._watchers.remove(entry)

    async def create(self, api_version: str, resource: str, obj: Obj, *, namespace: str | None = None,
                     name: str | None = None, subresource: str | None = None,
                     field_manager: str | None = None, _user: str | None = None) -> Obj:
        self._log(_user, "create", api_version, resource, subresource, namespace,
                  name or obj.get("metadata", {}).get("name"))
        self.calls.append(("create", resource if not subresource else f"{resource}/{subresource}",
                           name or obj.get("metadata", {}).get("name", "")))
        if subresource == "binding" and resource == "pods" and name:
            table = self._table(api_version, resource)
            pod = table.get((namespace, name))
            if pod is None:
                raise self._not_found(resource, name)
            if pod["spec"].get("nodeName"):
                raise ApiError(409, "Conflict", f"pod {name} is already assigned to node "
                                                f'"{pod["spec"]["nodeName"]}"')
            new = copy.deepcopy(pod)
            new["spec"]["nodeName"] = obj["target"]["name"]
            self._replace(api_version, resource, (namespace, name), new)
            return {"kind": "Status", "status": "Success", "code": 201}
        if subresource == "token" and resource == "serviceaccounts" and name:
            return self._token_request(namespace or "default", name, obj)
        return self._create(api_version, resource, copy.deepcopy(obj), namespace)

    async def update(self, api_version: str, resource: str, obj: Obj, *, namespace: str | None = None,
                     subresource: str | None = None, field_manager: str | None = None,
                     _user: str | None = None) -> Obj:
        meta = obj["metadata"]
        namespace = namespace if namespace is not None else meta.get("namespace")
        self._log(_user, "update", api_version, resource, subresource, namespace, meta["name"])
        self.calls.append(("update", resource if not subresource else f"{resource}/{subresource}", meta["name"]))
        table = self._table(api_version, resource)
        key = (namespace, meta["name"])
        old = table.get(key)
        if old is None:
            raise self._not_found(resource, meta["name"])
        if meta.get("resourceVersion") and meta["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {resource} "{meta["name"]}": '
                                            "the object has been modified; please apply your changes to the "
                                            "latest version and try again")
        if subresource == "status":
            new = copy.deepcopy(old)
            new["status"] = copy.deepcopy(obj.get("status") or {})
        else:
            new = copy.deepcopy(obj)
            new["metadata"] = {**old["metadata"], **{k: v for k, v in meta.items()
                                                      if k not in ("uid", "creationTimestamp")}}
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        return self._replace(api_version, resource, key, new)

    async def patch(self, api_version: str, resource: str, name: str, patch: Any, *,
                    patch_type: str = "merge", subresource: str | None = None,
                    field_manager: str | None = None, namespace: str | None = None,
                    force: bool | None = None, _user: str | None = None) -> Obj:
        self._log(_user, "patch", api_version, resource, subresource, namespace, name)
        self.calls.append(("patch", resource if not subresource else f"{resource}/{subresource}", name))
        if patch_type not in ("merge", "strategic"):
            raise ApiError(415, "UnsupportedMediaType", f"FakeApi supports merge patches, not {patch_type}")
        table = self._table(api_version, resource)
        key = (namespace, name)
        old = table.get(key)
        if old is None:
            raise self._not_found(resource, name)
        if subresource == "status":
            patch = {"status": patch.get("status", {})}
        new = merge_patch(old, patch)
        return self._replace(api_version, resource, key, new)

    async def delete(self, api_version: str, resource: str, name: str, *, namespace: str | None = None,
                     grace_period_seconds: int | None = None, propagation_policy: str | None = None,
                     preconditions: dict[str, str] | None = None, _user: str | None = None) -> Obj:
        self._log(_user, "delete", api_version, resource, None, namespace, name)
        if _user != _INTERNAL:
            self.calls.append(("delete", resource, name))
        table = self._table(api_version, resource)
        obj = table.pop((namespace, name), None)
        if obj is None:
            raise self._not_found(resource, name)
        self._bump(obj)
        self._emit(api_version, resource, "DELETED", obj)
        if propagation_policy != "Orphan":
            await self._collect_dependents(obj["metadata"]["uid"])
        return copy.deepcopy(obj)

    async def _collect_dependents(self, owner_uid: str) -> None:
        for (av, res), table in list(self.store.items()):
            for (ns, nm), obj in list(table.items()):
                refs = obj["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == owner_uid for r in refs) and (ns, nm) in table:
                    await self.delete(av, res, nm, namespace=ns, _user=_INTERNAL)

    def _token_request(self, namespace: str, name: str, body: Obj) -> Obj:
        """TokenRequest as the apiserver answers it: the account must exist; the default
        expiry is an hour and the default audience the issuer's."""
        sa = self._table("v1", "serviceaccounts").get((namespace, name))
        if sa is None:
            raise self._not_found("serviceaccounts", name)
        spec = dict((body or {}).get("spec") or {})
        seconds = int(spec.get("expirationSeconds") or 3600)
        if self.max_token_seconds:
            seconds = min(seconds, self.max_token_seconds)
        audiences = spec.get("audiences") or ["https://kubernetes.default.svc.cluster.local"]
        self.token_requests.append((namespace, name, spec))
        token = f"fake-token.{uuid.uuid4().hex}"
        expiry = self.clock() + seconds
        self.tokens[token] = (f"system:serviceaccount:{namespace}:{name}", expiry)
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": None},
                "status": {"token": token, "expirationTimestamp": datetime.fromtimestamp(expiry, UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ")}}


class FakeApiClient:
    """A FakeApi seen by one client (user or token); implements the `Api` protocol."""

    def __init__(self, api: FakeApi, user: str | None, token_source: TokenSource | None) -> None:
        self.fake = api
        self.user = user
        self.token_source = token_source

    def _who(self) -> str | None:
        if self.token_source is None:
            return self.user
        token = self.token_source.token()
        issued = self.fake.tokens.get(token or "")
        if issued is None or issued[1] <= self.fake.clock():
            self.token_source.reset()
            raise ApiError.from_status(401, {"kind": "Status", "code": 401, "reason": "Unauthorized",
                                             "message": "Unauthorized"})
        return issued[0]

    async def get(self, *args: Any, **kwargs: Any) -> Obj:
        return await self.fake.get(*args, **kwargs, _user=self._who())

    async def list(self, *args: Any, **kwargs: Any) -> Obj:
        return await self.fake.list(*args, **kwargs, _user=self._who())

    def watch(self, *args: Any, **kwargs: Any) -> AsyncIterator[WatchEvent]:
        return self.fake.watch(*args, **kwargs, _user=self._who())

    async def create(self, *args: Any, **kwargs: Any) -> Obj:
        return await self.fake.create(*args, **kwargs, _user=self._who())

    async def update(self, *args: Any, **kwargs: Any) -> Obj:
        return await self.fake.update(*args, **kwargs, _user=self._who())

    async def patch(self, *args: Any, **kwargs: Any) -> Obj:
        return await self.fake.patch(*args, **kwargs, _user=self._who())

    async def delete(self, *args: Any, **kwargs: Any) -> Obj:
        return await self.fake.delete(*args, **kwargs, _user=self._who())
