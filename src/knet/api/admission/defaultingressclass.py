"""The DefaultIngressClass admission plugin (plugin/pkg/admission/network/defaultingressclass),
on by default as upstream's: a new Ingress naming no class (neither spec.ingressClassName nor the
deprecated `kubernetes.io/ingress.class` annotation) gets the IngressClass annotated
`ingressclass.kubernetes.io/is-default-class: "true"`; when several are, the newest one."""

from __future__ import annotations

from knet.api.resources.ingressclasses import is_default
from knet.api.resources.ingresses import ANNOTATION_INGRESS_CLASS
from knet.api.rest import AdmissionRequest

CLASSES_BUCKET = "networking.k8s.io/ingressclasses"


def default_class(classes: list[dict]) -> dict | None:
    """The default class among `classes`: the most recently created of those annotated default
    (upstream: ties broken by name, the newest wins since 1.28)."""
    defaults = [c for c in classes if is_default(c)]
    if not defaults:
        return None
    return max(defaults, key=lambda c: ((c.get("metadata") or {}).get("creationTimestamp") or "",
                                        (c.get("metadata") or {}).get("name") or ""))


class DefaultIngressClass:
    """`DefaultIngressClass(store)`: store (the apiserver's Store) holds the IngressClasses."""

    def __init__(self, store) -> None:
        self.store = store

    def __call__(self, req: AdmissionRequest) -> None:
        if (req.rt.group, req.rt.resource) != ("networking.k8s.io", "ingresses") or req.operation != "CREATE" \
                or req.subresource is not None or req.obj is None:
            return
        spec = req.obj.setdefault("spec", {})
        annotations = (req.obj.get("metadata") or {}).get("annotations") or {}
        if spec.get("ingressClassName") is not None or ANNOTATION_INGRESS_CLASS in annotations:
            return
        chosen = default_class([e.obj for e in self.store.list(CLASSES_BUCKET)[0]])
        if chosen is not None:
            spec["ingressClassName"] = chosen["metadata"]["name"]
