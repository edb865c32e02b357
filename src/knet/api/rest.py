"""The object operations behind the REST verbs: create, get, list, update, patch, delete,
with Kubernetes' rules for metadata, status subresources, generation, optimistic
concurrency, dry runs, graceful deletion, finalizers and Service allocation."""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as dt
import os
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import orjson

from knet.api import apply as ssa
from knet.api import errors, schema, typecheck, versions
from knet.api import patch as patches
from knet.api.allocation import ServiceAllocator
from knet.api.auth import User
from knet.api.errors import ApiError, FieldError, invalid, required
from knet.api.printing import timestamp
from knet.api.registry import Registry, ResourceType
from knet.api.resources import services
from knet.api.selectors import FieldSelector, LabelSelector
from knet.api.storage import AlreadyExists, Conflict, Entry, NotFound, Store
from knet.api.validation import name_errors, validate_annotations, validate_labels
from knet.selectors import field_value

GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
SERVER_META = ("uid", "creationTimestamp", "resourceVersion", "generation", "selfLink", "deletionTimestamp",
               "deletionGracePeriodSeconds")


class _UidSource:
    """Random (version 4) UUIDs as text, from random bytes read 4 KiB at a time: uuid.uuid4()
    makes a system call and a UUID object for every object created."""

    def __init__(self) -> None:
        self._pool, self._at = b"", 0

    def __call__(self) -> str:
        if self._at + 16 > len(self._pool):
            self._pool, self._at = os.urandom(4096), 0
        raw = bytearray(self._pool[self._at:self._at + 16])
        self._at += 16
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


new_uid = _UidSource()


def deep_copy(obj: dict) -> dict:
    return orjson.loads(orjson.dumps(obj))


def _spec_part(obj: dict, with_status: bool = False) -> dict:
    """What metadata.generation counts: all but metadata (and status, when a status subresource
    writes it: without one, as a custom resource may be, a status change is a change too)."""
    skip = ("metadata", "apiVersion", "kind") if with_status else ("metadata", "status", "apiVersion", "kind")
    return {k: v for k, v in obj.items() if k not in skip}


def _report_unknown_fields(unknown: list[str], opts: Options, strict_prefix: str = "") -> None:
    """fieldValidation: Strict rejects a write naming unknown fields (400), Warn warns of them."""
    if unknown and opts.field_validation in ("Strict", "Warn"):
        msgs = [f'unknown field "{u}"' for u in unknown]
        if opts.field_validation == "Strict":
            raise errors.bad_request(strict_prefix + "strict decoding error: " + ", ".join(msgs))
        opts.warnings += msgs


class Options:
    """A write's options. `user` is who asked (None for the apiserver's own writes: bootstrap,
    lifecycle, garbage collection), for admission plugins that judge by the requester."""

    def __init__(self, dry_run: bool = False, field_validation: str = "Warn", field_manager: str | None = None,
                 force: bool = False, user: User | None = None, user_agent: str = "") -> None:
        self.dry_run, self.field_validation, self.field_manager, self.force = dry_run, field_validation, field_manager, force
        self.user = user
        self.user_agent = user_agent
        self.warnings: list[str] = []

    @property
    def update_manager(self) -> str:
        """Who a create, update or (non-apply) patch records in managedFields: the fieldManager,
        else the first word of the client's User-Agent, as kube-apiserver's managerOrUserAgent
        (so a client that names no manager still owns what it wrote, and a later apply that
        changes it conflicts). "" (the apiserver's own writes): nothing is recorded."""
        return self.field_manager or ssa.manager_from_user_agent(self.user_agent)


@dataclass(frozen=True)
class AdmissionRequest:
    """What a validating admission plugin sees (admission.Attributes): the operation (CREATE,
    UPDATE, DELETE), the kind, where, the new object (None on DELETE) and the stored one (None
    on CREATE), the subresource written and who asked (None: the apiserver itself)."""

    operation: str
    rt: ResourceType
    namespace: str
    name: str
    obj: dict | None
    old: dict | None
    subresource: str | None
    user: User | None
    dry_run: bool


# A validating admission plugin: raises ApiError (403 Forbidden, 422 Invalid) to refuse the write.
AdmissionPlugin = Callable[[AdmissionRequest], None]


class ObjectService:
    def __init__(self, registry: Registry, store: Store, allocator: ServiceAllocator) -> None:
        self.registry, self.store, self.allocator = registry, store, allocator
        # The cluster-wide allocators kinds name in ResourceType.allocator.
        self.allocators: dict[str, ServiceAllocator] = {services.SERVICE_ADDRESSES: allocator}
        # Validating admission, in order, after defaulting and validation and before storage.
        self.admission: list[AdmissionPlugin] = []

    def _admit(self, operation: str, rt: ResourceType, ns: str, name: str, obj: dict | None, old: dict | None,
               subresource: str | None, opts: Options) -> None:
        for plugin in self.admission:
            plugin(AdmissionRequest(operation, rt, ns, name, obj, old, subresource, opts.user, opts.dry_run))

    # --- reads -------------------------------------------------------------------------------
    def entry(self, rt: ResourceType, ns: str, name: str) -> Entry:
        e = self.store.get(rt.bucket, ns if rt.namespaced else "", name)
        if e is None:
            raise errors.not_found(rt.resource, rt.group, name)
        return e

    def list(self, rt: ResourceType, ns: str | None, labels: LabelSelector, fields: FieldSelector,
             limit: int = 0, continue_token: str | None = None) -> tuple[list[Entry], dict]:
        start_after: tuple[str, str] | None = None
        if continue_token:
            try:
                tok = orjson.loads(base64.urlsafe_b64decode(continue_token + "=" * (-len(continue_token) % 4)))
                start_after = (tok["ns"], tok["name"])
            except (ValueError, KeyError, TypeError) as exc:
                raise errors.bad_request("continue key is not valid: illegal base64 data") from exc
        # A field selector on metadata.namespace narrows like a namespace (kubectl describe uses it).
        entries, rev = self.store.list(rt.bucket, ns if rt.namespaced else None)
        out: list[Entry] = []
        more = False
        remaining = 0
        for e in entries:
            meta = e.obj.get("metadata") or {}
            if start_after is not None and (meta.get("namespace", ""), meta.get("name", "")) <= start_after:
                continue
            if not labels.empty and not labels.matches(meta.get("labels")):
                continue
            if not fields.empty and not fields.matches(lambda f, o=e.obj: field_value(o, f)):
                continue
            if limit and len(out) >= limit:
                more = True
                remaining += 1
                continue
            out.append(e)
        list_meta: dict = {"resourceVersion": str(rev)}
        if more and out:
            last = out[-1].obj["metadata"]
            token = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rev, "ns": last.get("namespace", ""), "name": last["name"]})
            list_meta["continue"] = base64.urlsafe_b64encode(token).decode().rstrip("=")
            list_meta["remainingItemCount"] = remaining
        return out, list_meta

    # --- shared write checks -----------------------------------------------------------------
    def _check_namespace(self, rt: ResourceType, ns: str) -> None:
        if not rt.namespaced:
            return
        e = self.store.get("namespaces", "", ns)
        if e is None:
            raise errors.not_found("namespaces", "", ns)
        if (e.obj.get("metadata") or {}).get("deletionTimestamp"):
            raise ApiError(403, "Forbidden", f'{rt.resource}{"." + rt.group if rt.group else ""} "{{name}}" is forbidden: '
                           f"unable to create new content in namespace {ns} because it is being terminated",
                           {"kind": rt.resource})

    def _decode_check(self, rt: ResourceType, obj, opts: Options, subresource: str | None = None) -> dict:
        if not isinstance(obj, dict):
            raise errors.bad_request("Object 'Kind' is missing in the request body")
        # Like kube-apiserver's decoder, a body without apiVersion/kind takes the endpoint's.
        kind = obj.setdefault("kind", rt.kind)
        api_version = obj.get("apiVersion")
        if kind != rt.kind or (api_version is not None and api_version != rt.api_version):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version ({rt.api_version})"
                if kind == rt.kind else
                f"the object provided is unrecognized or of the wrong kind ({kind}) for this resource ({rt.kind})")
        prefix = f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
        if rt.model:
            # Types checked (and unknown fields pruned: the body is the caller's copy) in one
            # walk, before anything else looks at the object: a wrong type is refused as
            # kube-apiserver's decoding refuses it, never stored.
            try:
                unknown = typecheck.check(obj, rt.model)
            except typecheck.TypeMismatch as exc:
                raise errors.bad_request(prefix + str(exc)) from None
            _report_unknown_fields(unknown, opts, prefix)
        elif rt.decode is not None:
            _report_unknown_fields(rt.decode(obj), opts, prefix)
        elif not isinstance(obj.get("metadata", {}), dict):
            raise errors.bad_request("metadata must be an object")
        obj.setdefault("apiVersion", rt.api_version)
        obj.setdefault("metadata", {})
        return obj

    def _validate(self, rt: ResourceType, obj: dict, old: dict | None, subresource: str | None = None) -> None:
        meta = obj["metadata"]
        name = meta.get("name", "")
        errs: list[FieldError] = []
        if not name:
            errs.append(required("metadata.name", "name or generateName is required"))
        else:
            for msg in name_errors(name, rt.name_rule):
                errs.append(invalid("metadata.name", name, msg))
        if rt.namespaced and not meta.get("namespace"):
            errs.append(required("metadata.namespace"))
        # Labels or annotations a write left as they were (the stored dict itself) were checked
        # when they were stored: no need to check them on every status write.
        old_meta = old["metadata"] if old is not None else {}
        if old is None or meta.get("labels") is not old_meta.get("labels"):
            errs += validate_labels(meta.get("labels"), "metadata.labels")
        if old is None or meta.get("annotations") is not old_meta.get("annotations"):
            errs += validate_annotations(meta.get("annotations"), "metadata.annotations")
        if not errs:
            write = rt.subresource_write(subresource) if old is not None else None
            errs += write.validate(obj, old) if write is not None else rt.validate(obj, old)
        if errs:
            raise errors.invalid_object(rt.kind, rt.group, name, errs)

    @staticmethod
    def _normalise(rt: ResourceType, obj: dict) -> dict:
        out = {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": obj["metadata"]}
        for k, v in obj.items():
            if k not in out:
                out[k] = v
        return out

    # --- create ------------------------------------------------------------------------------
    async def create(self, rt: ResourceType, ns: str, obj, opts: Options) -> dict:
        obj = self._decode_check(rt, obj, opts)
        meta = obj["metadata"]
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            raise ApiError(500, "InternalError", "resourceVersion should not be set on objects to be created",
                           {"causes": [{"message": "resourceVersion should not be set on objects to be created"}]})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choice(GENERATE_ALPHABET) for _ in range(5))
        self._check_namespace(rt, ns)
        for k in SERVER_META:
            meta.pop(k, None)
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = timestamp()
        if rt.has_generation:
            meta["generation"] = 1
        if rt.has_status and not rt.status_on_create:
            obj.pop("status", None)  # status is written through the status subresource
        rt.defaults(obj)
        if rt.admit is not None:
            rt.admit(obj)
        obj = self._normalise(rt, obj)
        self._validate(rt, obj, None)
        self._admit("CREATE", rt, ns if rt.namespaced else "", meta["name"], obj, None, None, opts)
        with self._reserved(self._allocator(rt), rt, meta["name"], obj, None, opts.dry_run):
            if opts.update_manager:
                ssa.record_update(obj, None, opts.update_manager, rt.api_version, rt.model, timestamp())
            if opts.dry_run:
                return obj
            try:
                entry = await self.store.create(rt.bucket, meta.get("namespace", "") if rt.namespaced else "",
                                                meta["name"], obj)
            except AlreadyExists:
                raise errors.already_exists(rt.resource, rt.group, meta["name"]) from None
        return entry.obj

    def _allocator(self, rt: ResourceType) -> ServiceAllocator | None:
        return self.allocators.get(rt.allocator) if rt.allocator else None

    @staticmethod
    @contextlib.contextmanager
    def _reserved(allocator: ServiceAllocator | None, rt: ResourceType, name: str, new: dict, old: dict | None,
                  dry_run: bool) -> Iterator[None]:
        """The numbers NEW holds beyond OLD's (rt.allocator: Service IPs, NodePorts), taken for the
        write inside the block: released again if the write fails or is a dry run, so a write and
        its allocation land together or not at all."""
        if allocator is None:
            yield
            return
        taken, errs = allocator.allocate(new, old)
        if errs:
            raise errors.invalid_object(rt.kind, rt.group, name, errs)
        landed = False
        try:
            yield
            landed = not dry_run
        finally:
            if not landed:
                allocator.release(taken)

    def _release_unused(self, rt: ResourceType, old: dict, new: dict | None) -> None:
        """After a committed update or delete: free what OLD held and NEW no longer does."""
        allocator = self._allocator(rt)
        if allocator is not None:
            allocator.release_unused(old, new)

    # --- update ------------------------------------------------------------------------------
    def _merge_for_update(self, rt: ResourceType, new: dict, old: dict, subresource: str | None) -> dict:
        old_meta = old["metadata"]
        write = rt.subresource_write(subresource)
        if write is not None:
            return write.merge(new, old)
        if subresource in ("status", "finalize"):
            # The stored object with one part replaced: a shallow copy shares the untouched parts
            # with the stored entry (never mutated) and copies what the write changes (metadata
            # gets the new resourceVersion), instead of copying the whole object.
            merged = {**old, "metadata": dict(old_meta)}
            if subresource == "status":
                merged["status"] = new.get("status", {})
            else:
                merged["spec"] = {**(old.get("spec") or {}), "finalizers": (new.get("spec") or {}).get("finalizers") or []}
            return merged
        meta = new.get("metadata", {})
        if isinstance(meta, dict):
            # Own metadata: a merge patch shares the stored object's dict, which must not change.
            meta = new["metadata"] = dict(meta)
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace"):
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        if rt.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        if rt.has_generation:
            gen = old_meta.get("generation", 1)
            counted = not rt.has_status
            meta["generation"] = gen + 1 if _spec_part(new, counted) != _spec_part(old, counted) else gen
        return new

    async def update(self, rt: ResourceType, ns: str, name: str, obj, opts: Options,
                     subresource: str | None = None) -> tuple[int, dict]:
        return await retry_raced(rt, name, lambda: self._update_once(rt, ns, name, orjson.loads(orjson.dumps(obj)), opts,
                                                                      subresource))

    async def _update_once(self, rt: ResourceType, ns: str, name: str, obj, opts: Options,
                           subresource: str | None) -> tuple[int, dict]:
        obj = self._decode_check(rt, obj, opts, subresource)
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        meta["name"] = name
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = ns
        current = self.store.get(rt.bucket, ns if rt.namespaced else "", name)
        if current is None:
            if rt.allow_create_on_update and subresource is None:
                meta.pop("resourceVersion", None)
                return 201, await self.create(rt, ns, obj, opts)
            raise errors.not_found(rt.resource, rt.group, name)
        expected = None
        if meta.get("resourceVersion"):
            expected = versions.parse(meta["resourceVersion"]) or None  # "0": unconditional
        if meta.get("uid") and meta["uid"] != current.obj["metadata"].get("uid"):
            raise errors.conflict(rt.resource, rt.group, name,
                                  f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: "
                                  f"{current.obj['metadata'].get('uid')}")
        return 200, await self._write_update(rt, current, obj, opts, subresource, expected)

    async def _write_update(self, rt: ResourceType, current: Entry, new: dict, opts: Options,
                            subresource: str | None, expected: int | None) -> dict:
        old = current.obj
        name = old["metadata"]["name"]
        if expected is not None and expected != current.revision:
            raise errors.conflict(rt.resource, rt.group, name)
        new = self._merge_for_update(rt, new, old, subresource)
        if subresource is None:
            if rt.carry_over is not None:
                rt.carry_over(new, old)
            rt.defaults(new)
        new = self._normalise(rt, new)
        new["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
        self._validate(rt, new, old, subresource)
        self._admit("UPDATE", rt, old["metadata"].get("namespace", "") if rt.namespaced else "", name, new, old,
                    subresource, opts)
        if opts.update_manager:
            ssa.record_update(new, old, opts.update_manager, rt.api_version, rt.model, timestamp(), subresource)
        if new == old:
            return old  # a no-op write keeps the resourceVersion, as kube-apiserver does
        ns = old["metadata"].get("namespace", "") if rt.namespaced else ""
        meta = new["metadata"]
        finished = bool(meta.get("deletionTimestamp") and not meta.get("finalizers")
                        and not (rt.deletion_held is not None and rt.deletion_held(new)))
        # A subresource write changes no allocated numbers (the status, the finalizers).
        with self._reserved(self._allocator(rt) if subresource is None else None, rt, name, new, old, opts.dry_run):
            if opts.dry_run:
                return new
            try:
                if finished:
                    entry = await self.store.delete(rt.bucket, ns, name, expected_revision=current.revision)
                else:
                    entry = await self.store.update(rt.bucket, ns, name, new, expected_revision=current.revision)
            except Conflict:
                if expected is None:
                    raise WriteRaced from None
                raise errors.conflict(rt.resource, rt.group, name) from None
            except NotFound:
                raise errors.not_found(rt.resource, rt.group, name) from None
        if subresource is None or finished:
            self._release_unused(rt, old, None if finished else new)
        return entry.obj

    # --- patch -------------------------------------------------------------------------------
    async def patch(self, rt: ResourceType, ns: str, name: str, patch_type: str, body, opts: Options,
                    subresource: str | None = None) -> tuple[int, dict]:
        return await retry_raced(rt, name, lambda: self._patch_once(rt, ns, name, patch_type, body, opts,
                                                                     subresource))

    async def _patch_once(self, rt: ResourceType, ns: str, name: str, patch_type: str, body, opts: Options,
                          subresource: str | None) -> tuple[int, dict]:
        current = self.store.get(rt.bucket, ns if rt.namespaced else "", name)
        if current is None:
            if patch_type == "apply" and subresource is None:
                obj = self._decode_check(rt, copy.deepcopy(body), opts)
                obj.setdefault("metadata", {})["name"] = name
                self._record_manager(obj, None, opts, "Apply", ssa.fields_v1(body, rt.model))
                return 201, await self.create(rt, ns, obj, Options(opts.dry_run, "Ignore", None, user=opts.user))
            raise errors.not_found(rt.resource, rt.group, name)
        old = current.obj
        if patch_type == "strategic" and not rt.strategic_merge:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted "
                           "media types include: application/json-patch+json, application/merge-patch+json, "
                           "application/apply-patch+yaml", {})
        try:
            if patch_type == "json":
                new = patches.json_patch(old, body)
            elif patch_type == "merge":
                if not isinstance(body, dict):
                    raise patches.PatchError("merge patch must be a JSON object")
                # The body was decoded for this request alone: its values need no copy (a retry
                # re-applies it; pruning names unknown fields before it drops them).
                new = patches.merge_patch(old, body, copy_values=False)
            elif patch_type == "strategic":
                new = patches.strategic_merge_patch(deep_copy(old), body, rt.model)
            elif patch_type == "apply":
                if not isinstance(body, dict):
                    raise errors.bad_request("apply patch must be an object")
                self._decode_check(rt, copy.deepcopy(body), opts)
                manager = opts.field_manager or "kubectl"
                found = ssa.conflicts(old, body, manager, rt.model)
                if found and not opts.force:
                    raise ApiError(409, "Conflict", ssa.conflict_message(found, rt.api_version), {"causes": [
                        {"reason": "FieldManagerConflict", "message": f'conflict with "{m}" using {rt.api_version}',
                         "field": ssa.path_text(p)} for m, p in found]})
                new = patches.strategic_merge_patch(deep_copy(old), body, rt.model)
                if found:  # forced: the other managers lose those fields
                    new["metadata"]["managedFields"] = ssa.take_over(ssa.managers(old), manager, {p for _, p in found})
                removed = ssa.removed_fields(ssa.previous_apply(old, manager), ssa.fields_v1(body, rt.model))
                ssa.prune(new, ssa.keep_co_owned(removed, ssa.others_own(new, manager)))
            else:
                raise errors.unsupported_media_type(patch_type)
        except patches.PatchError as exc:
            raise ApiError(422, "Invalid", str(exc)) from None
        if not isinstance(new, dict):
            raise errors.bad_request("the patch produced a non-object")
        if rt.model:
            self._check_patched(rt, new, body, patch_type, opts)
        elif rt.decode is not None:
            _report_unknown_fields(rt.decode(new), opts)
        meta = new.setdefault("metadata", {})
        # The patched object must still be the one of the URL (patch.go's checkName and
        # EnsureObjectNamespaceMatchesRequestNamespace): a patch cannot rename or move it.
        if meta.get("name", "") != name:
            raise errors.bad_request(f"the name of the object ({meta.get('name', '')}) does not match the name on "
                                     f"the URL ({name})")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent on "
                                         "the request")
        elif meta.get("namespace"):
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on "
                                     "the request")
        expected = None
        patched_rv = meta.get("resourceVersion")
        if patched_rv and patched_rv != old["metadata"].get("resourceVersion"):
            expected = versions.parse(patched_rv) or None
        if patch_type == "apply":
            self._record_manager(new, new, opts, "Apply", ssa.fields_v1(body, rt.model))
        inner = Options(opts.dry_run, "Ignore", None if patch_type == "apply" else opts.field_manager, user=opts.user,
                        user_agent="" if patch_type == "apply" else opts.user_agent)
        result = await self._write_update(rt, current, new, inner, subresource, expected)
        return 200, result

    @staticmethod
    def _check_patched(rt: ResourceType, new: dict, body, patch_type: str, opts: Options) -> None:
        """Type-check what a patch wrote (a wrong type is 422 on the field "patch", as
        kube-apiserver answers a patched object it cannot decode); drop the unknown fields it
        wrote, and warn of them or (Strict) reject the patch."""
        try:
            if patch_type in ("merge", "strategic", "apply") and isinstance(body, dict):
                # Merge-style patches can only write the fields they name (the stored object
                # is checked and has no unknown ones): checking along the (small) patch is enough.
                typecheck.check_patched(new, body, rt.model)
                unknown = schema.prune_patched(new, body, rt.model)
                if patch_type == "apply":
                    unknown = []  # the applied configuration was checked when it was decoded
            else:
                unknown = typecheck.check(new, rt.model)  # a JSON patch is checked by its result
        except typecheck.TypeMismatch as exc:
            shown = patches.go_format(body) if patch_type == "strategic" else orjson.dumps(new).decode()
            raise errors.invalid_object("", "", "", [invalid("patch", shown, str(exc))]) from None
        _report_unknown_fields(unknown, opts)

    @staticmethod
    def _record_manager(obj: dict, old: dict | None, opts: Options, operation: str,
                        fields: dict | None = None) -> None:
        """Set this manager's Apply entry (its applied fields) among the managedFields of `old`."""
        manager = opts.field_manager or ("kubectl" if operation == "Apply" else "unknown")
        entries = list(((old or obj).get("metadata") or {}).get("managedFields") or [])
        entries = [e for e in entries if not (e.get("manager") == manager and e.get("operation") == operation)]
        entries.append({"manager": manager, "operation": operation, "apiVersion": obj.get("apiVersion", ""),
                        "time": timestamp(), "fieldsType": "FieldsV1", "fieldsV1": fields or {}})
        obj.setdefault("metadata", {})["managedFields"] = entries

    # --- delete ------------------------------------------------------------------------------
    async def delete(self, rt: ResourceType, ns: str, name: str, options: dict, opts: Options) -> tuple[int, dict]:
        # A graceful delete writes deletionTimestamp (and finalizers) over the object: like an
        # update it re-reads and retries when another writer (the kubelet's status, a controller
        # dropping its finalizer) got in between; only the client's own preconditions give 409.
        return await retry_raced(rt, name, lambda: self._delete_once(rt, ns, name, options, opts))

    async def _delete_once(self, rt: ResourceType, ns: str, name: str, options: dict,
                           opts: Options) -> tuple[int, dict]:
        current = self.entry(rt, ns, name)
        obj = current.obj
        meta = obj["metadata"]
        self._admit("DELETE", rt, ns if rt.namespaced else "", name, None, obj, None, opts)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise errors.conflict(rt.resource, rt.group, name,
                                  f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise errors.conflict(rt.resource, rt.group, name,
                                  f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                                  f"ResourceVersion in object meta: {meta.get('resourceVersion')}")
        policy = options.get("propagationPolicy")
        if options.get("orphanDependents") is True:
            policy = "Orphan"
        grace = options.get("gracePeriodSeconds")
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        elif policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")

        graceful = rt.grace_period(obj, grace) if rt.grace_period is not None else 0
        needs_wait = bool(finalizers) or graceful > 0 or rt.begin_deletion is not None
        if not needs_wait:
            if opts.dry_run:
                return 200, obj
            try:
                entry = await self.store.delete(rt.bucket, ns if rt.namespaced else "", name)
            except NotFound:
                raise errors.not_found(rt.resource, rt.group, name) from None
            self._release_unused(rt, obj, None)
            return 200, self._deleted_response(rt, entry.obj)
        new = deep_copy(obj)
        nmeta = new["metadata"]
        now = dt.datetime.now(dt.UTC)
        if rt.grace_period is not None and (nmeta.get("deletionTimestamp") is None or
                                            graceful < (nmeta.get("deletionGracePeriodSeconds") or 0)):
            # a second delete may shorten the grace period, never lengthen it
            nmeta["deletionTimestamp"] = timestamp(now + dt.timedelta(seconds=graceful))
            nmeta["deletionGracePeriodSeconds"] = graceful
        elif nmeta.get("deletionTimestamp") is None:
            nmeta["deletionTimestamp"] = timestamp(now)
            nmeta["deletionGracePeriodSeconds"] = 0
        nmeta["finalizers"] = finalizers
        if not finalizers:
            nmeta.pop("finalizers")
        if rt.begin_deletion is not None:
            rt.begin_deletion(new)
        if new == obj:
            return 200, obj
        if opts.dry_run:
            return 200, new
        try:
            if rt.grace_period is not None and graceful == 0 and not finalizers:
                entry = await self.store.delete(rt.bucket, ns, name, expected_revision=current.revision)
            else:
                entry = await self.store.update(rt.bucket, ns if rt.namespaced else "", name, new,
                                                expected_revision=current.revision)
        except (Conflict, NotFound):
            raise WriteRaced from None  # read again: gone is 404, changed is another round
        return 200, entry.obj

    @staticmethod
    def _deleted_response(rt: ResourceType, obj: dict) -> dict:
        if rt.delete_returns_status:
            meta = obj.get("metadata") or {}
            details = {"name": meta.get("name", ""), "kind": rt.resource, "uid": meta.get("uid", "")}
            if rt.group:
                details["group"] = rt.group
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
        return obj


class WriteRaced(Exception):
    """An update without a resourceVersion precondition lost a race with another write."""


# kube-apiserver's GuaranteedUpdate re-reads and re-applies an unconditional update or patch
# when the object changed between its read and its write, until it lands (each lost round means
# another writer won, so N concurrent writers need at most N rounds); only a precondition the
# client set (a resourceVersion) turns into 409 Conflict. The bound only guards against a bug.
RACED_WRITE_ATTEMPTS = 1000


async def retry_raced(rt: ResourceType, name: str,
                       attempt: Callable[[], Awaitable[tuple[int, dict]]]) -> tuple[int, dict]:
    for _ in range(RACED_WRITE_ATTEMPTS):
        try:
            return await attempt()
        except WriteRaced:
            continue
    raise errors.conflict(rt.resource, rt.group, name)
