"""What Deployments, ReplicaSets and DaemonSets share: pod-template defaults, selector checks."""

from __future__ import annotations

from knet.api.errors import FieldError, invalid, not_supported, required
from knet.api.printing import label_map
from knet.api.resources import pods
from knet.api.selectors import from_label_selector_object
from knet.selectors import SelectorError


def template_defaults(spec: dict) -> None:
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    pod = {"metadata": {}, "spec": template.setdefault("spec", {})}
    # The ServiceAccount admission plugin names `default` in pods, not in templates.
    named_account = {k: k in pod["spec"] for k in ("serviceAccountName", "serviceAccount")}
    pods.defaults(pod)
    for key, named in named_account.items():
        if not named and not (key == "serviceAccount" and named_account["serviceAccountName"]):
            pod["spec"].pop(key, None)
    # Templates carry no admission-added tolerations and no status.
    tolerations = [t for t in pod["spec"].get("tolerations") or [] if t.get("tolerationSeconds") != 300
                   or t.get("key") not in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")]
    if tolerations:
        pod["spec"]["tolerations"] = tolerations
    else:
        pod["spec"].pop("tolerations", None)
    for k in ("priority", "preemptionPolicy", "enableServiceLinks"):
        pod["spec"].pop(k, None)


def go_map(labels: dict) -> str:
    """How Go prints a map[string]string in field errors."""
    return "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items())) + "}"


def validate_selector_and_template(obj: dict, old: dict | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs: list[FieldError] = []
    selector = spec.get("selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if selector is None:
        errs.append(required("spec.selector"))
    elif not (selector.get("matchLabels") or selector.get("matchExpressions")):
        errs.append(invalid("spec.selector", selector, "empty selector is invalid for deployment"))
    else:
        try:
            sel = from_label_selector_object(selector)
        except SelectorError:
            sel = None
            for i, expr in enumerate(selector.get("matchExpressions") or []):
                if expr.get("operator") not in ("In", "NotIn", "Exists", "DoesNotExist"):
                    errs.append(not_supported(f"spec.selector.matchExpressions[{i}].operator", expr.get("operator"),
                                              ["DoesNotExist", "Exists", "In", "NotIn"]))
        if sel is not None and not sel.matches(labels):
            errs.append(FieldError("Invalid", "spec.template.metadata.labels", None,
                                   "`selector` does not match template `labels`"))
    if not ((spec.get("template") or {}).get("spec") or {}).get("containers"):
        errs.append(required("spec.template.spec.containers"))
    if old is not None and (old.get("spec") or {}).get("selector") != selector:
        errs.append(invalid("spec.selector", selector, "field is immutable"))
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        errs.append(invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
    return errs


def fix_template_label_error(errs: list[FieldError], obj: dict) -> list[FieldError]:
    """Render the template-labels error value as Go's map literal, as kube-apiserver does."""
    labels = (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    out = []
    for e in errs:
        if e.field == "spec.template.metadata.labels" and e.value is None:
            e = FieldError("Invalid", e.field, _Raw(go_map(labels)), e.detail)
        out.append(e)
    return out


class _Raw(str):
    """A value printed verbatim (not quoted) in a field error."""


def selector_column(obj: dict) -> str:
    from knet.api.printing import selector_text

    return selector_text((obj.get("spec") or {}).get("selector"))


__all__ = ["label_map", "selector_column", "template_defaults", "validate_selector_and_template"]
