"""OpenAPI v3 documents per group-version, built from the `kubernetes` package's models:
what `kubectl explain` prints (field types, descriptions), what `kubectl apply` needs to
compute strategic merge patches (x-kubernetes-patch-strategy/-merge-key) and to know that
the server validates fields itself (the `fieldValidation` parameter on PATCH operations)."""

from __future__ import annotations

import hashlib

import orjson
from aiohttp import web

from knet.api import errors, schema
from knet.api.registry import Registry, ResourceType

META_TYPES = {"ObjectMeta", "ListMeta", "OwnerReference", "ManagedFieldsEntry", "LabelSelector",
              "LabelSelectorRequirement", "Condition", "Status", "StatusDetails", "StatusCause", "DeleteOptions",
              "Preconditions", "WatchEvent"}
PACKAGES = (
    (("Deployment", "ReplicaSet", "DaemonSet", "RollingUpdateDeployment", "RollingUpdateDaemonSet",
      "RollingUpdateStatefulSet", "StatefulSet", "ControllerRevision"), "io.k8s.api.apps.v1"),
    (("NetworkPolicy", "IPBlock", "Ingress"), "io.k8s.api.networking.v1"),
    (("Lease",), "io.k8s.api.coordination.v1"),
    (("EndpointSlice", "EndpointConditions", "EndpointHints", "ForZone", "ForNode", "Endpoint"), "io.k8s.api.discovery.v1"),
    (("Scale",), "io.k8s.api.autoscaling.v1"),
    (("Job", "CronJob", "PodFailurePolicy", "SuccessPolicy", "UncountedTerminatedPods"), "io.k8s.api.batch.v1"),
    (("TokenRequest", "BoundObjectReference"), "io.k8s.api.authentication.v1"),
    (("CustomResource", "JSONSchemaProps", "ExternalDocumentation", "ValidationRule", "SelectableField"),
     "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1"),
)
INT_OR_STRING_FIELDS = {"targetPort", "port", "maxSurge", "maxUnavailable", "minAvailable", "endPort"}
PARAM_FIELD_VALIDATION = {
    "name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True},
    "description": "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) "
                   "containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict",
}
PARAM_DRY_RUN = {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True},
                 "description": "When present, indicates that modifications should not be persisted."}
PARAM_FIELD_MANAGER = {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True},
                       "description": "fieldManager is a name associated with the actor or entity that is making these changes."}
PARAM_FORCE = {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": True},
               "description": "Force is going to \"force\" Apply requests."}


def type_name(model: str) -> str:
    """V1PodSpec -> PodSpec, CoreV1Event -> Event."""
    for prefix in ("CoreV1", "EventsV1", "DiscoveryV1", "AuthenticationV1", "StorageV1", "ApiextensionsV1", "V1"):
        if model.startswith(prefix):
            return model[len(prefix):]
    return model


def definition_name(model: str) -> str:
    name = type_name(model)
    if model.startswith("EventsV1"):
        return f"io.k8s.api.events.v1.{name}"
    if model.startswith("DiscoveryV1"):
        return f"io.k8s.api.discovery.v1.{name}"
    if model.startswith("AuthenticationV1"):
        return f"io.k8s.api.authentication.v1.{name}"
    if name in META_TYPES:
        return f"io.k8s.apimachinery.pkg.apis.meta.v1.{name}"
    for prefixes, pkg in PACKAGES:
        if name.startswith(prefixes):
            return f"{pkg}.{name}"
    return f"io.k8s.api.core.v1.{name}"


class SchemaBuilder:
    def __init__(self) -> None:
        self.schemas: dict[str, dict] = {}

    def ref(self, model: str) -> str:
        name = definition_name(model)
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder against recursion (JSONSchemaProps etc.)
            self.schemas[name] = self._object(model)
        return f"#/components/schemas/{name}"

    def _object(self, model: str) -> dict:
        props: dict[str, dict] = {}
        required = []
        for json_name, f in schema.model_fields(model).items():
            prop = self._type(f.type, json_name)
            if f.description:
                prop["description"] = f.description
            strategy, key = schema.patch_meta(model, json_name)
            if strategy:
                prop["x-kubernetes-patch-strategy"] = strategy
            if key:
                prop["x-kubernetes-patch-merge-key"] = key
            props[json_name] = prop
            if f.required:
                required.append(json_name)
        out: dict = {"description": schema.model_description(model), "type": "object", "properties": props}
        if required:
            out["required"] = required
        return out

    def _type(self, ftype: schema.FieldType, json_name: str = "") -> dict:
        if ftype.kind == "model":
            return {"allOf": [{"$ref": self.ref(ftype.name)}], "default": {}}
        if ftype.kind == "list":
            return {"type": "array", "items": self._type(ftype.item) if ftype.item else {}}
        if ftype.kind == "map":
            return {"type": "object", "additionalProperties": self._type(ftype.item) if ftype.item else {}}
        name = ftype.name
        if name == "object":
            if json_name in INT_OR_STRING_FIELDS:
                self.schemas.setdefault("io.k8s.apimachinery.pkg.util.intstr.IntOrString",
                                        {"type": "string", "format": "int-or-string",
                                         "description": "IntOrString is a type that can hold an int32 or a string."})
                return {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]}
            return {"type": "object"}
        if name == "datetime":
            return {"type": "string", "format": "date-time"}
        if name == "bytes":
            return {"type": "string", "format": "byte"}
        if name == "int":
            return {"type": "integer", "format": "int32" if json_name.endswith(("Port", "port")) else "int64"}
        return {"type": schema.PRIMITIVES.get(name, "string")}


def _gvk(rt: ResourceType) -> dict:
    return {"group": rt.group, "version": rt.version, "kind": rt.kind}


def _content(ref: str, types=("application/json", "application/yaml")) -> dict:
    return {t: {"schema": {"$ref": ref}} for t in types}


def custom_definition_name(rt: ResourceType, kind: str) -> str:
    """A custom resource's definition name, as apiextensions-apiserver's builder names it: the
    group reversed, the version, the kind (com.example.v1.Widget)."""
    return ".".join([*reversed(rt.group.split(".")), rt.version, kind])


def _custom_schemas(b: SchemaBuilder, rt: ResourceType) -> tuple[str, str]:
    """The definitions of a custom resource (its CRD's openAPIV3Schema with the standard
    apiVersion, kind and metadata) and its list; their refs."""
    meta_ref = b.ref("V1ObjectMeta")
    list_meta_ref = b.ref("V1ListMeta")
    body = dict(rt.openapi_schema or {"type": "object"})
    props = dict(body.get("properties") or {})
    props["apiVersion"] = {"type": "string", "description": schema.model_fields(rt.model or "V1Pod")["apiVersion"].description}
    props["kind"] = {"type": "string", "description": schema.model_fields("V1Pod")["kind"].description}
    props["metadata"] = {"allOf": [{"$ref": meta_ref}], "description": schema.model_fields("V1Pod")["metadata"].description}
    body["properties"] = props
    body["type"] = "object"
    body["x-kubernetes-group-version-kind"] = [_gvk(rt)]
    name = custom_definition_name(rt, rt.kind)
    b.schemas[name] = body
    list_name = custom_definition_name(rt, rt.kind + "List")
    b.schemas[list_name] = {
        "description": f"{rt.kind}List is a list of {rt.kind}", "type": "object", "required": ["items"],
        "properties": {"apiVersion": props["apiVersion"], "kind": props["kind"],
                       "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}},
                       "metadata": {"allOf": [{"$ref": list_meta_ref}]}},
        "x-kubernetes-group-version-kind": [{**_gvk(rt), "kind": rt.kind + "List"}]}
    return f"#/components/schemas/{name}", f"#/components/schemas/{list_name}"


def group_version_doc(registry: Registry, group: str, version: str) -> dict | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    b = SchemaBuilder()
    paths: dict[str, dict] = {}
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    for rt in types:
        if rt.model:
            ref = b.ref(rt.model)
            name = definition_name(rt.model)
            b.schemas[name]["x-kubernetes-group-version-kind"] = [_gvk(rt)]
            list_model = rt.model + "List"
            list_ref = b.ref(list_model) if schema.model_fields(list_model) else ref
            if schema.model_fields(list_model):
                b.schemas[definition_name(list_model)]["x-kubernetes-group-version-kind"] = [
                    {**_gvk(rt), "kind": rt.kind + "List"}]
        elif rt.openapi_schema is not None:
            ref, list_ref = _custom_schemas(b, rt)
        else:
            continue
        # kubectl apply computes a strategic merge patch only for paths that accept one.
        patch_types = [t for t in ("application/apply-patch+yaml", "application/json-patch+json",
                                   "application/merge-patch+json", "application/strategic-merge-patch+json")
                       if rt.strategic_merge or "strategic" not in t]
        base = f"{prefix}/namespaces/{{namespace}}/{rt.resource}" if rt.namespaced else f"{prefix}/{rt.resource}"
        ok = {"200": {"description": "OK", "content": _content(ref)}}
        write_params = [PARAM_DRY_RUN, PARAM_FIELD_MANAGER, PARAM_FIELD_VALIDATION]
        op_id = rt.kind
        paths[base] = {
            "get": {"operationId": f"list{op_id}", "x-kubernetes-action": "list", "x-kubernetes-group-version-kind": _gvk(rt),
                    "responses": {"200": {"description": "OK", "content": _content(list_ref)}}},
            "post": {"operationId": f"create{op_id}", "x-kubernetes-action": "post", "x-kubernetes-group-version-kind": _gvk(rt),
                     "parameters": write_params, "requestBody": {"content": {"*/*": {"schema": {"$ref": ref}}}, "required": True},
                     "responses": {**ok, "201": {"description": "Created", "content": _content(ref)}}},
        }
        item = {
            "get": {"operationId": f"read{op_id}", "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": _gvk(rt),
                    "responses": ok},
            "put": {"operationId": f"replace{op_id}", "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": _gvk(rt),
                    "parameters": write_params, "requestBody": {"content": {"*/*": {"schema": {"$ref": ref}}}, "required": True},
                    "responses": ok},
            "patch": {"operationId": f"patch{op_id}", "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": _gvk(rt),
                      "parameters": [*write_params, PARAM_FORCE],
                      "requestBody": {"content": {t: {"schema": {"type": "object"}} for t in patch_types},
                                      "required": True},
                      "responses": ok},
            "delete": {"operationId": f"delete{op_id}", "x-kubernetes-action": "delete",
                       "x-kubernetes-group-version-kind": _gvk(rt), "responses": ok},
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        }
        paths[f"{base}/{{name}}"] = item
        if rt.has_status:
            paths[f"{base}/{{name}}/status"] = {k: v for k, v in item.items() if k in ("get", "put", "patch", "parameters")}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths,
            "components": {"schemas": b.schemas}}


class OpenAPI:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._docs: dict[str, tuple[bytes, str]] = {}
        self._generation = registry.generation

    def _doc(self, key: str) -> tuple[bytes, str] | None:
        if self._generation != self.registry.generation:  # kinds came or went (CRDs)
            self._docs, self._generation = {}, self.registry.generation
        if key not in self._docs:
            parts = key.split("/")
            if parts[0] == "api" and len(parts) == 2:
                doc = group_version_doc(self.registry, "", parts[1])
            elif parts[0] == "apis" and len(parts) == 3:
                doc = group_version_doc(self.registry, parts[1], parts[2])
            else:
                doc = None
            if doc is None:
                return None
            raw = orjson.dumps(doc)
            self._docs[key] = (raw, hashlib.sha512(raw).hexdigest()[:128].upper())
        return self._docs[key]

    def keys(self) -> list[str]:
        out = []
        for group, versions in self.registry.group_versions().items():
            for v in versions:
                out.append(f"apis/{group}/{v}" if group else f"api/{v}")
        return out

    def serve(self, request: web.Request, parts: list[str]) -> web.Response:
        if parts == ["v2"]:
            return self._v2(request)
        if not parts or parts[0] != "v3":
            raise errors.not_found_path()
        if len(parts) == 1:
            paths = {}
            for key in self.keys():
                raw, digest = self._doc(key)
                paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
            return web.Response(body=orjson.dumps({"paths": paths}), content_type="application/json")
        found = self._doc("/".join(parts[1:]))
        if found is None:
            raise errors.not_found_path()
        raw, digest = found
        headers = {"Etag": f'"{digest}"'}
        if request.query.get("hash") == digest:
            headers["Cache-Control"] = "public, immutable"
        return web.Response(body=raw, content_type="application/json", headers=headers)

    @staticmethod
    def _v2(request: web.Request) -> web.Response:
        """/openapi/v2: a Swagger 2.0 document without definitions. knet publishes its schemas in
        OpenAPI v3 (what kubectl 1.32 uses for explain, apply and field validation); kubectl
        only reads v2 to validate `kind: List` manifests on the client, and skips kinds it does
        not find there (the server still validates every item, strictly)."""
        accept = request.headers.get("Accept", "")
        if "protobuf" in accept:
            from knet.api.protowire import encode_bytes_field as f

            info = f(1, b"Kubernetes") + f(2, b"v1.32.0")
            # gnostic openapi_v2.Document: swagger=1, info=2, paths=8, definitions=9
            body = f(1, b"2.0") + f(2, info) + f(8, b"") + f(9, b"")
            return web.Response(body=body, headers={"Content-Type": "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"})
        doc = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": {}, "definitions": {}}
        return web.Response(body=orjson.dumps(doc), content_type="application/json")
