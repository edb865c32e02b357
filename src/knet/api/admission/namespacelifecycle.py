"""NamespaceLifecycle's refusal to delete the namespaces the cluster cannot live without
(plugin/pkg/admission/namespace/lifecycle: `default`, `kube-system`, `kube-public`)."""

from __future__ import annotations

from knet.api.errors import ApiError
from knet.api.rest import AdmissionRequest

IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})


def namespace_lifecycle(req: AdmissionRequest) -> None:
    if req.operation == "DELETE" and req.rt.resource == "namespaces" and req.rt.group == "" \
            and req.name in IMMORTAL_NAMESPACES:
        raise ApiError(403, "Forbidden", f'namespaces "{req.name}" is forbidden: this namespace may not be deleted',
                       {"name": req.name, "kind": "namespaces"})
