"""Serving a kind from another kind's storage (events.k8s.io/v1 Event over core/v1 Event):
requests are validated in the served form, converted, and handled by the stored kind."""

from __future__ import annotations

from knet.api import errors
from knet.api import patch as patches
from knet.api.errors import ApiError
from knet.api.registry import Registry, ResourceType
from knet.api.rest import ObjectService, Options, deep_copy


class AliasedKind:
    def __init__(self, registry: Registry, service: ObjectService, rt: ResourceType) -> None:
        self.rt = rt
        self.stored = registry.lookup(*rt.stored_as)
        self.service = service
        self.out = rt.from_storage
        self.into = rt.to_storage

    def _checked(self, body, opts: Options, old: dict | None) -> dict:
        obj = self.service._decode_check(self.rt, body, opts)
        self.rt.defaults(obj)
        errs = self.rt.validate(obj, old)
        if errs:
            raise errors.invalid_object(self.rt.kind, self.rt.group, obj["metadata"].get("name", ""), errs)
        return self.into(obj)

    async def create(self, ns: str, body, opts: Options) -> dict:
        core = self._checked(body, opts, None)
        return self.out(await self.service.create(self.stored, ns, core, Options(opts.dry_run, "Ignore", user=opts.user)))

    async def update(self, ns: str, name: str, body, opts: Options, subresource: str | None = None) -> tuple[int, dict]:
        current = self.service.entry(self.stored, ns, name)
        core = self._checked(body, opts, self.out(current.obj))
        code, obj = await self.service.update(self.stored, ns, name, core, Options(opts.dry_run, "Ignore", user=opts.user),
                                              subresource)
        return code, self.out(obj)

    async def patch(self, ns: str, name: str, patch_type: str, body, opts: Options,
                    subresource: str | None = None) -> tuple[int, dict]:
        current = self.service.entry(self.stored, ns, name)
        served = self.out(deep_copy(current.obj))
        try:
            if patch_type == "json":
                new = patches.json_patch(served, body)
            elif patch_type == "strategic" and not self.rt.strategic_merge:
                raise errors.unsupported_media_type("application/strategic-merge-patch+json")
            elif patch_type in ("strategic", "apply"):
                new = patches.strategic_merge_patch(served, body, self.rt.model)
            else:
                new = patches.merge_patch(served, body)
        except patches.PatchError as exc:
            raise ApiError(422, "Invalid", str(exc)) from None
        if not isinstance(new, dict) or not isinstance(new.setdefault("metadata", {}), dict):
            raise errors.bad_request("the patch produced a non-object")
        new["metadata"]["resourceVersion"] = served["metadata"].get("resourceVersion")
        return await self.update(ns, name, new, opts, subresource)

    async def delete(self, ns: str, name: str, options: dict, opts: Options) -> tuple[int, dict]:
        code, obj = await self.service.delete(self.stored, ns, name, options, opts)
        return code, self.out(obj) if obj.get("kind") == self.stored.kind else obj
