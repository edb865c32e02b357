"""apps/v1 StatefulSet (+ status, scale): upstream's defaults (SetDefaults_StatefulSet), validation
(ValidateStatefulSet, ValidateStatefulSetUpdate in pkg/apis/apps/validation) and printer columns."""

from __future__ import annotations

from knet.api.errors import FieldError, forbidden, invalid, not_supported, required
from knet.api.printing import age, containers_images
from knet.api.registry import Column, ResourceType
from knet.api.resources import workloads
from knet.api.selectors import from_label_selector_object
from knet.api.validation import validate_annotations, validate_labels

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Ready", description="Number of the pod with ready state"),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
    Column("Containers", priority=1, description="Names of each container in the template."),
    Column("Images", priority=1, description="Images referenced by each container in the template."),
)

ORDERED_READY, PARALLEL = "OrderedReady", "Parallel"
ROLLING_UPDATE, ON_DELETE = "RollingUpdate", "OnDelete"
RETAIN, DELETE = "Retain", "Delete"
# ValidateStatefulSetUpdate: the only spec fields an update may change.
MUTABLE_SPEC_FIELDS = ("replicas", "template", "updateStrategy", "minReadySeconds", "ordinals",
                       "persistentVolumeClaimRetentionPolicy")
UPDATE_FORBIDDEN = ("updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                    "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")
NONNEGATIVE = "must be greater than or equal to 0"


def claim_template_defaults(claim: dict) -> None:
    """A volumeClaimTemplate as apps/v1 stores it: a PersistentVolumeClaim with its defaults
    (SetDefaults_PersistentVolumeClaim: volumeMode Filesystem, phase Pending)."""
    claim.setdefault("apiVersion", "v1")
    claim.setdefault("kind", "PersistentVolumeClaim")
    claim.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    claim.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
    claim.setdefault("status", {}).setdefault("phase", "Pending")


def defaults(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("podManagementPolicy", ORDERED_READY)
    strategy = spec.setdefault("updateStrategy", {})
    if not strategy.get("type"):
        strategy["type"] = ROLLING_UPDATE
        strategy.setdefault("rollingUpdate", {})
    rolling = strategy.get("rollingUpdate")
    if strategy["type"] == ROLLING_UPDATE and isinstance(rolling, dict):
        rolling.setdefault("partition", 0)
        # maxUnavailable is behind the MaxUnavailableStatefulSet gate (alpha, off in 1.32):
        # the strategy drops it, as kube-apiserver's dropStatefulSetDisabledFields does.
        rolling.pop("maxUnavailable", None)
    policy = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    policy.setdefault("whenDeleted", RETAIN)
    policy.setdefault("whenScaled", RETAIN)
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    workloads.template_defaults(spec)
    for claim in spec.get("volumeClaimTemplates") or []:
        if isinstance(claim, dict):
            claim_template_defaults(claim)
    status = obj.setdefault("status", {})
    status.setdefault("replicas", 0)
    status.setdefault("availableReplicas", 0)


def _nonnegative(value, path: str) -> list[FieldError]:
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return [invalid(path, value, NONNEGATIVE)]
    return []


def _validate_rolling_update(rolling: dict, path: str) -> list[FieldError]:
    errs = _nonnegative(rolling.get("partition", 0), f"{path}.partition")
    mu = rolling.get("maxUnavailable")
    if mu is not None:
        text = str(mu)
        value = int(text[:-1]) if text.endswith("%") and text[:-1].isdigit() else mu if isinstance(mu, int) else None
        if value is None:
            errs.append(invalid(f"{path}.maxUnavailable", mu, "a valid percent string must be a numeric string "
                                                              "followed by an ending '%' (e.g. '1%',  or '93%')"))
        elif value < 0:
            errs.append(invalid(f"{path}.maxUnavailable", mu, NONNEGATIVE))
        elif value == 0:
            errs.append(invalid(f"{path}.maxUnavailable", mu, "cannot be 0"))
        elif text.endswith("%") and value > 100:
            errs.append(invalid(f"{path}.maxUnavailable", mu, "must not be greater than 100%"))
    return errs


def validate_spec(spec: dict) -> list[FieldError]:
    """ValidateStatefulSetSpec: note that, as upstream, the pod template's spec is not validated
    beyond restartPolicy and activeDeadlineSeconds (its pods are, when the controller creates them)."""
    errs: list[FieldError] = []
    policy = spec.get("podManagementPolicy")
    if not policy:
        errs.append(required("spec.podManagementPolicy"))
    elif policy not in (ORDERED_READY, PARALLEL):
        errs.append(invalid("spec.podManagementPolicy", policy, f"must be '{ORDERED_READY}' or '{PARALLEL}'"))
    strategy = spec.get("updateStrategy") or {}
    kind = strategy.get("type")
    if not kind:
        errs.append(required("spec.updateStrategy"))
    elif kind == ON_DELETE:
        if strategy.get("rollingUpdate") is not None:
            errs.append(invalid("spec.updateStrategy.rollingUpdate", strategy["rollingUpdate"],
                                f"only allowed for updateStrategy '{ROLLING_UPDATE}'"))
    elif kind == ROLLING_UPDATE:
        if isinstance(strategy.get("rollingUpdate"), dict):
            errs += _validate_rolling_update(strategy["rollingUpdate"], "spec.updateStrategy.rollingUpdate")
    else:
        errs.append(invalid("spec.updateStrategy", strategy, f"must be '{ROLLING_UPDATE}' or '{ON_DELETE}'"))
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if retention is not None:
        for key in ("whenDeleted", "whenScaled"):
            if retention.get(key) not in (RETAIN, DELETE):
                errs.append(not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{key}", retention.get(key) or "",
                                          [RETAIN, DELETE]))
    errs += _nonnegative(spec.get("replicas"), "spec.replicas")
    errs += _nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    if spec.get("ordinals") is not None:
        errs += _nonnegative((spec.get("ordinals") or {}).get("start", 0), "spec.ordinals.start")
    selector = spec.get("selector")
    template = spec.get("template") or {}
    tmeta = template.get("metadata") or {}
    selector_ok = True
    if selector is None:
        errs.append(required("spec.selector"))
    else:
        label_errs = validate_labels(selector.get("matchLabels"), "spec.selector.matchLabels")
        errs += label_errs
        selector_ok = not label_errs
        if not (selector.get("matchLabels") or selector.get("matchExpressions")):
            errs.append(invalid("spec.selector", selector, "empty selector is invalid for statefulset"))
    if not selector_ok:
        errs.append(invalid("spec.selector", selector, ""))
    else:
        # ValidatePodTemplateSpecForStatefulSet (a missing selector selects nothing)
        labels = tmeta.get("labels") or {}
        sel = from_label_selector_object(selector) if selector is not None else None
        empty = selector is not None and not (selector.get("matchLabels") or selector.get("matchExpressions"))
        if not empty and (sel is None or not sel.matches(labels)):
            errs.append(FieldError("Invalid", "spec.template.metadata.labels", workloads._Raw(workloads.go_map(labels)),
                                   "`selector` does not match template `labels`"))
        errs += validate_labels(tmeta.get("labels"), "spec.template.labels")
        errs += validate_annotations(tmeta.get("annotations"), "spec.template.annotations")
    pod_spec = template.get("spec") or {}
    if pod_spec.get("restartPolicy") != "Always":
        errs.append(not_supported("spec.template.spec.restartPolicy", pod_spec.get("restartPolicy") or "", ["Always"]))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        errs.append(forbidden("spec.template.spec.activeDeadlineSeconds",
                              "activeDeadlineSeconds in StatefulSet is not Supported"))
    return errs


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs = validate_spec(spec)
    if old is not None:
        old_spec = old.get("spec") or {}

        def frozen(s: dict) -> dict:
            return {k: v for k, v in s.items() if k not in MUTABLE_SPEC_FIELDS}

        if frozen(spec) != frozen(old_spec):
            errs.append(forbidden("spec", UPDATE_FORBIDDEN))
    return errs


def row(sts: dict) -> list:
    spec, status, meta = sts.get("spec") or {}, sts.get("status") or {}, sts.get("metadata") or {}
    containers, images = containers_images((spec.get("template") or {}).get("spec"))
    return [meta.get("name", ""), f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            age(meta.get("creationTimestamp")), containers, images]


RESOURCE = ResourceType(
    group="apps", version="v1", resource="statefulsets", kind="StatefulSet", short_names=("sts",),
    categories=("all",), subresources=("status", "scale"), model="V1StatefulSet", name_rule="label",
    defaults=defaults, validate=validate, columns=COLUMNS, row=row, has_generation=True,
)
