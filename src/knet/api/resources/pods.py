"""core/v1 Pod: defaults, validation and kubectl's columns (printPod)."""

from __future__ import annotations

import re

from knet.api.errors import FieldError, duplicate, invalid, not_supported, required
from knet.api.printing import age, parse_time
from knet.api.registry import Column, ResourceType, SubresourceWrite
from knet.api.resources import ephemeralcontainers
from knet.api.validation import DNS1123_LABEL, IANA_SVC_NAME, LABEL_MSG, validate_port

QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")

COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", description="The aggregate status of the containers in this pod."),
    Column("Restarts", description="The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    Column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."),
    Column("IP", priority=1, description="IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    Column("Node", priority=1, description="NodeName is a request to schedule this pod onto a specific node."),
    Column("Nominated Node", priority=1, description="nominatedNodeName is set only when this pod preempts other pods on the node."),
    Column("Readiness Gates", priority=1, description="If specified, all readiness gates will be evaluated for pod readiness."),
)

FIELD_LABELS = ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName")


def _probe_defaults(probe: dict | None) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("scheme", "HTTP")
        probe["httpGet"].setdefault("path", "/")


def _container_defaults(c: dict) -> None:
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe_defaults(c.get(kind))
    for env in c.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(ref, dict):
            ref.setdefault("apiVersion", "v1")
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = c.get("image", "")
    tag = image.rsplit("/", 1)[-1]
    if "imagePullPolicy" not in c:
        c["imagePullPolicy"] = "Always" if (":" not in tag or tag.endswith(":latest")) and "@" not in image else "IfNotPresent"
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")


# The mode of the files of configMap, secret, downwardAPI and projected volumes (0644).
VOLUME_DEFAULT_MODE = 420
# VolumeSource fields that name a source (a volume with none of them is an emptyDir).
_NOT_A_SOURCE = ("name",)


def _field_ref_defaults(items: list | None) -> None:
    for item in items or []:
        if isinstance(item, dict) and isinstance(item.get("fieldRef"), dict):
            item["fieldRef"].setdefault("apiVersion", "v1")


def _volume_defaults(v: dict) -> None:
    """pkg/apis/core/v1/defaults.go: SetDefaults_Volume, _HostPathVolumeSource, _SecretVolumeSource,
    _ConfigMapVolumeSource, _DownwardAPIVolumeSource, _ProjectedVolumeSource (and their
    ObjectFieldSelector and ServiceAccountTokenProjection), so `kubectl get -o yaml` and
    `describe` read as on kube-apiserver (`defaultMode: 420`, `HostPathType:` empty)."""
    if not any(k not in _NOT_A_SOURCE for k in v):
        v["emptyDir"] = {}
    if isinstance(v.get("hostPath"), dict):
        v["hostPath"].setdefault("type", "")
    for kind in ("secret", "configMap", "downwardAPI", "projected"):
        if isinstance(v.get(kind), dict):
            v[kind].setdefault("defaultMode", VOLUME_DEFAULT_MODE)
    if isinstance(v.get("downwardAPI"), dict):
        _field_ref_defaults(v["downwardAPI"].get("items"))
    if isinstance(v.get("projected"), dict):
        for source in v["projected"].get("sources") or []:
            if not isinstance(source, dict):
                continue
            if isinstance(source.get("downwardAPI"), dict):
                _field_ref_defaults(source["downwardAPI"].get("items"))
            if isinstance(source.get("serviceAccountToken"), dict):
                source["serviceAccountToken"].setdefault("expirationSeconds", 3600)


def defaults(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    for v in spec.get("volumes") or []:
        if isinstance(v, dict):
            _volume_defaults(v)
    for c in spec.get("containers") or []:
        _container_defaults(c)
    for c in spec.get("initContainers") or []:
        _container_defaults(c)
    for c in spec.get("ephemeralContainers") or []:
        _container_defaults(c)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    # The ServiceAccount admission plugin names `default`, except in mirror pods: a static pod
    # may not use a service account (NodeRestriction refuses mirror pods that reference one).
    if "kubernetes.io/config.mirror" not in ((obj.get("metadata") or {}).get("annotations") or {}):
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    if spec.get("serviceAccountName"):
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    tolerations = spec.setdefault("tolerations", [])
    # The DefaultTolerationSeconds admission plugin: tolerate not-ready/unreachable for 300s.
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    status = obj.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", _qos(spec))


SA_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def admit(pod: dict) -> None:
    """kube-apiserver's ServiceAccount admission for pods (the projected kube-api-access-XXXXX
    volume with the token, the cluster CA and the namespace, mounted read-only in every
    container). Priority is an admission plugin of its own (knet.api.admission.priority)."""
    import random

    spec = pod.setdefault("spec", {})
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if spec.get("automountServiceAccountToken") is False or "kubernetes.io/config.mirror" in annotations:
        return  # mirror pods of static pods get no service-account volume (as in kube-apiserver)
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    if all(any(m.get("mountPath") == SA_MOUNT_PATH for m in c.get("volumeMounts") or []) for c in containers):
        return
    # A pod that has the volume already (a copy of a pod: `kubectl debug --copy-to`) keeps it and
    # gets it mounted in its other containers, as upstream's mountServiceAccountToken.
    name = next((v.get("name") for v in spec.get("volumes") or [] if str(v.get("name", "")).startswith(
        "kube-api-access-")), None)
    if name is None:
        name = "kube-api-access-" + "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        spec.setdefault("volumes", []).append({"name": name, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}})
    for c in containers:
        if not any(m.get("mountPath") == SA_MOUNT_PATH for m in c.get("volumeMounts") or []):
            c.setdefault("volumeMounts", []).append({"mountPath": SA_MOUNT_PATH, "name": name, "readOnly": True})


def _qos(spec: dict) -> str:
    reqs = lims = 0
    guaranteed = True
    for c in spec.get("containers") or []:
        r = (c.get("resources") or {}).get("requests") or {}
        lim = (c.get("resources") or {}).get("limits") or {}
        reqs += len(r)
        lims += len(lim)
        if not ("cpu" in lim and "memory" in lim) or any(r.get(k, lim.get(k)) != lim.get(k) for k in ("cpu", "memory")):
            guaranteed = False
    if reqs == 0 and lims == 0:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _validate_containers(containers, path: str, names: set[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, c in enumerate(containers):
        p = f"{path}[{i}]"
        if not isinstance(c, dict):
            errs.append(invalid(p, c, "must be an object"))
            continue
        name = c.get("name")
        if not name:
            errs.append(required(f"{p}.name"))
        elif not DNS1123_LABEL.match(name) or len(name) > 63:
            errs.append(invalid(f"{p}.name", name, LABEL_MSG))
        elif name in names:
            errs.append(duplicate(f"{p}.name", name))
        else:
            names.add(name)
        if not c.get("image"):
            errs.append(required(f"{p}.image"))
        for j, port in enumerate(c.get("ports") or []):
            pp = f"{p}.ports[{j}]"
            errs += validate_port(port.get("containerPort"), f"{pp}.containerPort")
            if "hostPort" in port and port["hostPort"] not in (0, None):
                errs += validate_port(port["hostPort"], f"{pp}.hostPort")
            if port.get("protocol") not in ("TCP", "UDP", "SCTP"):
                errs.append(not_supported(f"{pp}.protocol", port.get("protocol"), ["SCTP", "TCP", "UDP"]))
            pname = port.get("name")
            if pname and (len(pname) > 15 or not IANA_SVC_NAME.match(pname) or "--" in pname):
                errs.append(invalid(f"{pp}.name", pname, "must be no more than 15 characters"
                                    if len(pname) > 15 else "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"))
        for kind in ("limits", "requests"):
            for rname, qty in ((c.get("resources") or {}).get(kind) or {}).items():
                if not QUANTITY.match(str(qty)):
                    errs.append(invalid(f"{p}.resources.{kind}[{rname}]", qty,
                                        "quantities must match the regular expression "
                                        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"))
        if c.get("imagePullPolicy") not in ("Always", "IfNotPresent", "Never"):
            errs.append(not_supported(f"{p}.imagePullPolicy", c.get("imagePullPolicy"), ["Always", "IfNotPresent", "Never"]))
    return errs


def validate(obj: dict, old: dict | None) -> list[FieldError]:
    if old is not None and "spec" in obj and obj["spec"] is old.get("spec"):
        # The stored spec itself (a status write shares it): validated when it was stored, and
        # unchanged, as kube-apiserver's status update validation does not look at the spec.
        return []
    errs = validate_spec(obj)
    if old is None:
        errs += ephemeralcontainers.validate_create(obj.get("spec") or {})
    else:
        errs += _validate_immutable(obj, old)
    return errs


def validate_spec(obj: dict) -> list[FieldError]:
    """validatePodMetadataAndSpec's spec part."""
    spec = obj.get("spec") or {}
    errs: list[FieldError] = []
    containers = spec.get("containers")
    if not containers:
        errs.append(required("spec.containers"))
    else:
        names: set[str] = set()
        errs += _validate_containers(spec.get("initContainers") or [], "spec.initContainers", names)
        errs += _validate_containers(containers, "spec.containers", names)
    if spec.get("restartPolicy") not in ("Always", "OnFailure", "Never"):
        errs.append(not_supported("spec.restartPolicy", spec.get("restartPolicy"), ["Always", "OnFailure", "Never"]))
    if spec.get("dnsPolicy") not in ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"):
        errs.append(not_supported("spec.dnsPolicy", spec.get("dnsPolicy"),
                                  ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]))
    errs += ephemeralcontainers.validate_containers(spec)
    return errs


def _validate_immutable(obj: dict, old: dict) -> list[FieldError]:
    """Pod updates may only change images, activeDeadlineSeconds, tolerations (additions) and a
    first nodeName binding; the rest of the spec is immutable (ephemeral containers included:
    they come through pods/ephemeralcontainers)."""
    def mutable_view(s: dict) -> dict:
        v = {k: val for k, val in s.items() if k not in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")}
        v["containers"] = [{k: val for k, val in c.items() if k != "image"} for c in s.get("containers") or []]
        v["initContainers"] = [{k: val for k, val in c.items() if k != "image"} for c in s.get("initContainers") or []]
        return v
    if mutable_view(obj.get("spec") or {}) != mutable_view(old.get("spec") or {}):
        return [FieldError("Forbidden", "spec", None,
                           "pod updates may not change fields other than `spec.containers[*].image`,"
                           "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                           "`spec.tolerations` (only additions to existing tolerations),"
                           "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)")]
    return []


def _ephemeral_merge(new: dict, old: dict) -> dict:
    return ephemeralcontainers.merge(new, old, _container_defaults)


def _ephemeral_validate(new: dict, old: dict) -> list[FieldError]:
    """ValidatePodEphemeralContainersUpdate: the whole pod as on create, then the update's rules."""
    return validate_spec(new) + ephemeralcontainers.validate_update(new, old)


def row(pod: dict) -> list:
    """printPod with Wide: the server always fills every column; kubectl hides priority 1."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}

    def restartable(name: str | None) -> bool:
        return (init_specs.get(name) or {}).get("restartPolicy") == "Always"

    total = len(spec.get("containers") or []) + sum(1 for c in init_specs.values() if c.get("restartPolicy") == "Always")
    ready = restarts = restartable_restarts = 0
    last_restart = None
    last_restartable = None
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    def later(a, b):
        return b if a is None or (b is not None and b > a) else a

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        restarts += cs.get("restartCount", 0)
        term_last = ((cs.get("lastState") or {}).get("terminated") or {})
        if term_last:
            last_restart = later(last_restart, parse_time(term_last.get("finishedAt")))
        if restartable(cs.get("name")):
            restartable_restarts += cs.get("restartCount", 0)
            if term_last:
                last_restartable = later(last_restartable, parse_time(term_last.get("finishedAt")))
        state = cs.get("state") or {}
        term, waiting = state.get("terminated"), state.get("waiting")
        if term is not None and term.get("exitCode", 0) == 0:
            continue
        if restartable(cs.get("name")) and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            if not term.get("reason"):
                reason = f"Init:Signal:{term['signal']}" if term.get("signal") else f"Init:ExitCode:{term.get('exitCode', 0)}"
            else:
                reason = "Init:" + term["reason"]
        elif waiting is not None and waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        initializing = True
        break

    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True" for c in status.get("conditions") or [])
    if not initializing or initialized:
        restarts = restartable_restarts
        last_restart = last_restartable
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += cs.get("restartCount", 0)
            term_last = ((cs.get("lastState") or {}).get("terminated") or {})
            if term_last:
                last_restart = later(last_restart, parse_time(term_last.get("finishedAt")))
            state = cs.get("state") or {}
            waiting, term = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif term is not None and term.get("reason"):
                reason = term["reason"]
            elif term is not None:
                reason = f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode', 0)}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            has_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
            reason = "Running" if has_ready else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({age(last_restart.strftime('%Y-%m-%dT%H:%M:%SZ'))} ago)"
    pod_ips = status.get("podIPs") or []
    ip = pod_ips[0].get("ip") if pod_ips else ""
    gates = spec.get("readinessGates") or []
    gates_text = "<none>"
    if gates:
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        gates_text = f"{sum(1 for g in gates if conds.get(g.get('conditionType')) == 'True')}/{len(gates)}"
    return [meta.get("name", ""), f"{ready}/{total}", reason, restarts_text, age(meta.get("creationTimestamp")),
            ip or "<none>", spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>", gates_text]


DEFAULT_GRACE_SECONDS = 30


def grace_period(pod: dict, requested: int | None) -> int:
    """How long a deleted pod stays (upstream podStrategy.CheckGracefulDeleteAndUpdate): a pod
    bound to a node and not finished gets the request's gracePeriodSeconds, else its
    terminationGracePeriodSeconds (30); an unbound or finished one, or a request for 0, goes at once."""
    if requested == 0:
        return 0
    spec = pod.get("spec") or {}
    if not spec.get("nodeName") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    seconds = requested if requested is not None else spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    return DEFAULT_GRACE_SECONDS if seconds is None or seconds < 0 else seconds


def deletion_held(pod: dict) -> bool:
    """A pod marked for deletion with a grace period stays until its kubelet deletes it with 0."""
    return bool((pod.get("metadata") or {}).get("deletionGracePeriodSeconds"))


RESOURCE = ResourceType(
    group="", version="v1", resource="pods", kind="Pod", short_names=("po",), categories=("all",),
    subresources=("status", "binding", "log", "exec", "attach", "portforward", "eviction", "proxy",
                  "ephemeralcontainers"),
    subresource_writes=(("ephemeralcontainers", SubresourceWrite(_ephemeral_merge, _ephemeral_validate)),),
    model="V1Pod", defaults=defaults, validate=validate, columns=COLUMNS, row=row, field_labels=FIELD_LABELS,
    admit=admit, grace_period=grace_period, deletion_held=deletion_held,
)
