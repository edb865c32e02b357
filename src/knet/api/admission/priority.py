"""The Priority admission plugin (plugin/pkg/admission/priority), on by default as upstream's:
a new pod's priorityClassName becomes its spec.priority and spec.preemptionPolicy (a pod
without one gets the global default class's, else priority 0 and PreemptLowerPriority); a class
that does not exist, or a priority the pod states that differs from its class's, is refused.
For PriorityClasses: only one may be the global default, and the system classes may not be
deleted."""

from __future__ import annotations

from knet.api.admission.noderestriction import _forbidden
from knet.api.resources.priorityclasses import SYSTEM_CLASSES
from knet.api.rest import AdmissionRequest

BUCKET = "scheduling.k8s.io/priorityclasses"
NO_DEFAULT_PRIORITY = 0  # scheduling.DefaultPriorityWhenNoDefaultClassExists
DEFAULT_PREEMPTION_POLICY = "PreemptLowerPriority"


class Priority:
    """`Priority(store)`: store (the apiserver's Store) holds the PriorityClasses."""

    def __init__(self, store) -> None:
        self.store = store

    def __call__(self, req: AdmissionRequest) -> None:
        group, resource = req.rt.group, req.rt.resource
        if group == "" and resource == "pods" and req.operation == "CREATE" and req.subresource is None:
            self._admit_pod(req)
        elif group == "scheduling.k8s.io" and resource == "priorityclasses":
            self._admit_class(req)

    def _classes(self) -> list[dict]:
        return [e.obj for e in self.store.list(BUCKET)[0]]

    def _admit_pod(self, req: AdmissionRequest) -> None:
        spec = (req.obj or {}).setdefault("spec", {})
        name = spec.get("priorityClassName") or ""
        if name:
            entry = self.store.get(BUCKET, "", name)
            if entry is None:
                raise _forbidden(req, f"no PriorityClass with name {name} was found")
            priority, policy = int(entry.obj.get("value") or 0), entry.obj.get("preemptionPolicy")
        else:
            default = max((pc for pc in self._classes() if pc.get("globalDefault")),
                          key=lambda pc: int(pc.get("value") or 0), default=None)
            if default is None:
                priority, policy = NO_DEFAULT_PRIORITY, DEFAULT_PREEMPTION_POLICY
            else:
                spec["priorityClassName"] = default["metadata"]["name"]
                priority, policy = int(default.get("value") or 0), default.get("preemptionPolicy")
        if spec.get("priority") is not None and spec["priority"] != priority:
            raise _forbidden(req, f"the integer value of priority ({spec['priority']}) must not be provided in pod "
                                  f"spec; priority admission controller computed {priority} from the given "
                                  "PriorityClass name")
        spec["priority"] = priority
        policy = policy or DEFAULT_PREEMPTION_POLICY
        if spec.get("preemptionPolicy") is not None and spec["preemptionPolicy"] != policy:
            raise _forbidden(req, f"the string value of PreemptionPolicy ({spec['preemptionPolicy']}) must not be "
                                  f"provided in pod spec; priority admission controller computed {policy} from the "
                                  "given PriorityClass name")
        spec["preemptionPolicy"] = policy

    def _admit_class(self, req: AdmissionRequest) -> None:
        if req.operation == "DELETE" and req.name in SYSTEM_CLASSES:
            raise _forbidden(req, "this is a system priority class and cannot be deleted")
        if req.operation in ("CREATE", "UPDATE") and (req.obj or {}).get("globalDefault"):
            name = (req.obj.get("metadata") or {}).get("name")
            for pc in self._classes():
                if pc.get("globalDefault") and pc["metadata"]["name"] != name:
                    raise _forbidden(req, f"PriorityClass {pc['metadata']['name']} is already marked as default. "
                                          "Only one default can exist")
