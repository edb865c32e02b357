"""The resource registry: one `ResourceType` per kind drives routing, discovery, OpenAPI,
tables and validation. Kinds register in `knet.api.resources`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from knet.api.errors import FieldError

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0


def _no_defaults(obj: dict) -> None:
    return None


def _no_validation(obj: dict, old: dict | None) -> list[FieldError]:
    return []


@dataclass(frozen=True)
class SubresourceWrite:
    """A subresource whose PUT/PATCH writes one part of its object through the generic update
    path (pods/ephemeralcontainers), as an upstream subresource strategy's PrepareForUpdate and
    ValidateUpdate: `merge(new, old)` is the object to store (the stored one with the part the
    subresource owns taken from the request, defaults applied); `validate(merged, old)` replaces
    the kind's own update validation."""

    merge: Callable[[dict, dict], dict]
    validate: Callable[[dict, dict], list[FieldError]]


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    resource: str  # plural, as in URLs
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # status, scale, log, exec, binding, token, finalize, eviction
    verbs: tuple[str, ...] = ALL_VERBS
    # The Python client model (kubernetes.client.models) giving this kind's schema.
    model: str = ""
    # metadata.name rule: "subdomain" (DNS-1123), "label" (DNS-1123 label), "dns1035", "path".
    name_rule: str = "subdomain"
    defaults: Callable[[dict], None] = _no_defaults
    validate: Callable[[dict, dict | None], list[FieldError]] = _no_validation
    columns: tuple[Column, ...] = ()
    row: Callable[[dict], list] | None = None
    # Field selectors supported beyond metadata.name / metadata.namespace.
    field_labels: tuple[str, ...] = ()
    # Whether spec changes bump metadata.generation (kinds with a spec).
    has_generation: bool = False
    # Deleting a Service/Endpoints etc. returns the object; some kinds return a Status.
    delete_returns_status: bool = False
    allow_create_on_update: bool = False
    # Served from another kind's storage (events.k8s.io/v1 Events are core/v1 Events):
    # (group, version, resource) of the stored kind, and the converters to and from it.
    # Admission on create (mutating, like kube-apiserver's built-in plugins), after defaults.
    admit: Callable[[dict], None] | None = None
    stored_as: tuple[str, str, str] | None = None
    to_storage: Callable[[dict], dict] | None = None
    from_storage: Callable[[dict], dict] | None = None
    # How a kind's writes differ from the generic verbs (upstream's per-kind REST strategies);
    # each kind's module fills these in, so api/rest.py never branches on the kind.
    # Create keeps the status the client sent (a kubelet registers its Node with its status).
    status_on_create: bool = False
    # On update, before defaults and validation: carry over what a client may leave out
    # (a Service's allocated clusterIPs and nodePorts).
    carry_over: Callable[[dict, dict], None] | None = None
    # The cluster-wide allocator (a name in ObjectService.allocators) holding numbers this kind
    # uses (Service IPs and NodePorts): taken in the same transaction as the write.
    allocator: str = ""
    # Graceful deletion (RESTGracefulDeleteStrategy): the seconds an object stays marked for
    # deletion, given it and the request's gracePeriodSeconds; 0 deletes at once.
    grace_period: Callable[[dict, int | None], int] | None = None
    # Deletion always goes through a marked state first, set here (a Namespace: Terminating).
    begin_deletion: Callable[[dict], None] | None = None
    # A marked object whose finalizers are gone still stays while this holds (a Namespace's
    # spec.finalizers; a Pod until its kubelet confirms it gone).
    deletion_held: Callable[[dict], bool] | None = None
    # Kinds without a Python model (custom resources) check and prune a decoded body themselves
    # (raising ApiError for what cannot be decoded): the paths of the unknown fields dropped.
    decode: Callable[[dict], list[str]] | None = None
    # Strategic merge patches need the kind's Go struct (its patch strategies): custom
    # resources refuse them (415), as kube-apiserver does.
    strategic_merge: bool = True
    # The scale subresource's (specReplicasPath, statusReplicasPath, labelSelectorPath) of a
    # custom resource; None: spec.replicas, status.replicas and the label selector spec.selector.
    scale_paths: tuple[str, str, str] | None = None
    # The singular name discovery shows, when it is not the lowercased kind (a CRD's names.singular).
    singular_name: str = ""
    # Subresources written through the generic update/patch path with rules of their own:
    # (subresource, SubresourceWrite) pairs.
    subresource_writes: tuple[tuple[str, SubresourceWrite], ...] = ()
    # The OpenAPI v3 schema of a kind without a model (a CRD version's openAPIV3Schema).
    openapi_schema: Any = field(default=None, compare=False, hash=False)

    def subresource_write(self, subresource: str | None) -> SubresourceWrite | None:
        return next((w for name, w in self.subresource_writes if name == subresource), None)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def singular(self) -> str:
        return self.singular_name or self.kind.lower()

    @property
    def bucket(self) -> str:
        return f"{self.group}/{self.resource}" if self.group else self.resource

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def supported_fields(self) -> frozenset[str]:
        base = {"metadata.name"}
        if self.namespaced:
            base.add("metadata.namespace")
        return frozenset(base | set(self.field_labels))


@dataclass
class Registry:
    types: list[ResourceType] = field(default_factory=list)
    _by_gvr: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)
    # bucket -> the kind stored there (kinds served from another's storage excluded); kept
    # current as kinds come and go (custom resources), so holders of this dict see them.
    bucket_types: dict[str, ResourceType] = field(default_factory=dict)
    # Bumped on every change, for what is derived from the registry (OpenAPI documents).
    generation: int = 0

    def add(self, rt: ResourceType) -> None:
        """Register a kind, or replace the one served at its group/version/resource."""
        key = (rt.group, rt.version, rt.resource)
        old = self._by_gvr.get(key)
        # A new list each time: a loop over `types` that awaits (namespace termination) goes
        # on over the kinds it started with.
        if old is not None:
            self.types = [rt if t is old else t for t in self.types]
        else:
            self.types = [*self.types, rt]
        self._by_gvr[key] = rt
        if rt.stored_as is None:
            self.bucket_types[rt.bucket] = rt
        elif old is not None and self.bucket_types.get(old.bucket) is old:
            del self.bucket_types[old.bucket]
        self.generation += 1

    def remove(self, group: str, version: str, resource: str) -> None:
        rt = self._by_gvr.pop((group, version, resource), None)
        if rt is None:
            return
        self.types = [t for t in self.types if t is not rt]
        if self.bucket_types.get(rt.bucket) is rt:
            del self.bucket_types[rt.bucket]
            for other in self.types:  # another version of the kind stores there
                if other.bucket == rt.bucket and other.stored_as is None:
                    self.bucket_types[rt.bucket] = other
        self.generation += 1

    def all(self) -> list[ResourceType]:
        return list(self._by_gvr.values())

    def lookup(self, group: str, version: str, resource: str) -> ResourceType | None:
        return self._by_gvr.get((group, version, resource))

    def group_versions(self) -> dict[str, list[str]]:
        """group -> versions, in registration order (core group "" first)."""
        out: dict[str, list[str]] = {}
        for rt in self.types:
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self.types if rt.group == group and rt.version == version]

    def by_kind(self, group: str, kind: str) -> ResourceType | None:
        for rt in self.types:
            if rt.group == group and rt.kind == kind:
                return rt
        return None
