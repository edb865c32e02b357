"""Scheduling decisions as pure functions: which nodes a pod fits (filters, with upstream's
reason strings) and how good each one is (least-allocated + spreading of a workload's pods)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from knet.scheduler.quantity import bytes_of, milli_cpu
from knet.selectors import Requirement, field_value, labels_match_selector

Obj = dict[str, Any]
DEFAULT_MILLI_CPU = 100          # upstream's non-zero defaults for scoring pods without requests
DEFAULT_MEMORY = 200 * 1024 * 1024


@dataclass(frozen=True)
class Resources:
    milli_cpu: int = 0
    memory: int = 0
    pods: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.milli_cpu + other.milli_cpu, self.memory + other.memory, self.pods + other.pods)


_POD_FACTS_CACHE: dict[str, tuple[str, tuple[Resources, tuple[Any, ...] | None]]] = {}


def pod_requests(pod: Obj) -> Resources:
    """Sum of containers, at least the largest init container, plus overhead (upstream semantics)."""
    return _pod_facts(pod)[0]


def _pod_facts(pod: Obj) -> tuple[Resources, tuple[Any, ...] | None]:
    """(requests, workload_key) of a pod, cached per uid for one resourceVersion: the scheduler
    reads them for every pod of a node each time it recounts the node."""
    meta = pod.get("metadata") or {}
    uid, rv = meta.get("uid"), meta.get("resourceVersion")
    cached = _POD_FACTS_CACHE.get(uid) if uid and rv else None
    if cached is not None and cached[0] == rv:
        return cached[1]
    facts = (_compute_pod_requests(pod), workload_key(pod))
    if uid and rv:
        if len(_POD_FACTS_CACHE) > 50_000 and uid not in _POD_FACTS_CACHE:
            _POD_FACTS_CACHE.clear()
        _POD_FACTS_CACHE[uid] = (rv, facts)
    return facts


def _compute_pod_requests(pod: Obj) -> Resources:
    spec = pod.get("spec") or {}

    def req(container: Obj) -> tuple[int, int]:
        r = (container.get("resources") or {}).get("requests") or {}
        return milli_cpu(r.get("cpu")), bytes_of(r.get("memory"))

    cpu = sum(req(c)[0] for c in spec.get("containers") or [])
    mem = sum(req(c)[1] for c in spec.get("containers") or [])
    for init in spec.get("initContainers") or []:
        icpu, imem = req(init)
        cpu, mem = max(cpu, icpu), max(mem, imem)
    overhead = spec.get("overhead") or {}
    return Resources(cpu + milli_cpu(overhead.get("cpu")), mem + bytes_of(overhead.get("memory")), 1)


_ALLOCATABLE_CACHE: dict[tuple[str, str], Resources | None] = {}


def node_allocatable(node: Obj) -> Resources | None:
    meta = node.get("metadata") or {}
    key = (meta.get("name") or "", meta.get("resourceVersion") or "")
    if key[1] and key in _ALLOCATABLE_CACHE:
        return _ALLOCATABLE_CACHE[key]
    result = _compute_allocatable(node)
    if key[1]:
        if len(_ALLOCATABLE_CACHE) > 20_000:
            _ALLOCATABLE_CACHE.clear()
        _ALLOCATABLE_CACHE[key] = result
    return result


def _compute_allocatable(node: Obj) -> Resources | None:
    alloc = (node.get("status") or {}).get("allocatable") or (node.get("status") or {}).get("capacity")
    if not alloc:
        return None
    return Resources(milli_cpu(alloc.get("cpu")) if alloc.get("cpu") else 10**9,
                     bytes_of(alloc.get("memory")) if alloc.get("memory") else 10**18,
                     int(alloc.get("pods") or 110))


# (plain: not unschedulable and no NoSchedule/NoExecute taint, has allocatable, allocatable pods,
#  milli-cpu, memory, requested pods, milli-cpu, memory, workload counts): the per-node facts a
# scheduling decision reads, flattened so the loop over hundreds of nodes does no attribute walks.
NodeSummary = tuple[bool, bool, int, int, int, int, int, int, Counter[tuple[Any, ...]]]


@dataclass
class NodeInfo:
    node: Obj
    pods: list[Obj] = field(default_factory=list)
    name: str = field(init=False)  # read for every node of every decision: a plain attribute

    def __post_init__(self) -> None:
        self.name = self.node["metadata"]["name"]

    @property
    def allocatable(self) -> Resources | None:
        """node_allocatable(node), memoised while the NodeInfo holds the same node object."""
        cached = self.__dict__.get("_allocatable")
        if cached is not None and cached[0] is self.node:
            return cached[1]
        alloc = node_allocatable(self.node)
        self.__dict__["_allocatable"] = (self.node, alloc)
        return alloc

    @property
    def requested(self) -> Resources:
        """Sum of the pods' requests (from the memoised summary)."""
        _, _, _, _, _, pods, cpu, mem, _ = self.summary()
        return Resources(cpu, mem, pods)

    def summary(self) -> NodeSummary:
        """What a decision reads of this node, as one tuple (see NodeSummary), memoised while the
        node object and the pod count stay the same: schedule() asks it of hundreds of nodes per pod."""
        cached = self.__dict__.get("_summary")
        if cached is not None and cached[0] is self.node and cached[1] == len(self.pods):
            return cached[2]
        node = self.node
        spec = node.get("spec") or {}
        plain = not spec.get("unschedulable") and not any(
            t.get("effect") in ("NoSchedule", "NoExecute") for t in spec.get("taints") or [])
        alloc = self.allocatable
        # One pass over the pods for requests and workloads (a NodeInfo is rebuilt each time a
        # pod lands on its node, so this runs about twice per scheduled pod).
        cpu = mem = 0
        counts: Counter[tuple[Any, ...]] = Counter()
        for p in self.pods:
            requests, key = _pod_facts(p)
            cpu += requests.milli_cpu
            mem += requests.memory
            if key is not None:
                counts[key] += 1
        result: NodeSummary = (plain, alloc is not None,
                               alloc.pods if alloc else 0, alloc.milli_cpu if alloc else 0, alloc.memory if alloc else 0,
                               len(self.pods), cpu, mem, counts)
        self.__dict__["_summary"] = (node, len(self.pods), result)
        return result

    @property
    def workload_counts(self) -> Counter[tuple[Any, ...]]:
        """How many of the node's pods belong to each workload (see workload_key), from the
        memoised summary: spreading asks this of every feasible node for every pod."""
        return self.summary()[8]


# -- filters: None = fits, else the reason upstream prints ------------------------------------

def filter_node_name(pod: Obj, info: NodeInfo) -> str | None:
    want = (pod.get("spec") or {}).get("nodeName")
    return None if not want or want == info.name else "node(s) didn't match the requested node name"


def filter_unschedulable(pod: Obj, info: NodeInfo) -> str | None:
    if not (info.node.get("spec") or {}).get("unschedulable"):
        return None
    taint = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    if any(tolerates(t, taint) for t in (pod.get("spec") or {}).get("tolerations") or []):
        return None
    return "node(s) were unschedulable"


def _node_selector_term_matches(term: Obj, node: Obj) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches nothing (upstream)
    for e in exprs:
        if not Requirement(e["key"], e["operator"], tuple(e.get("values") or ())).matches(labels):
            return False
    for f in fields:
        value = field_value(node, f["key"]) if f["key"] != "metadata.name" else node["metadata"]["name"]
        if not Requirement("f", f["operator"], tuple(f.get("values") or ())).matches({"f": value}):
            return False
    return True


def node_matches_selector_and_affinity(pod: Obj, node: Obj) -> bool:
    spec = pod.get("spec") or {}
    selector = spec.get("nodeSelector") or {}
    if selector and not labels_match_selector({"matchLabels": selector}, (node.get("metadata") or {}).get("labels")):
        return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution")) or {}
    terms = required.get("nodeSelectorTerms")
    if terms is not None and required:
        return any(_node_selector_term_matches(t, node) for t in terms)
    return True


def filter_node_affinity(pod: Obj, info: NodeInfo) -> str | None:
    return None if node_matches_selector_and_affinity(pod, info.node) else \
        "node(s) didn't match Pod's node affinity/selector"


def tolerates(toleration: Obj, taint: Obj) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    op = toleration.get("operator") or "Equal"
    if not toleration.get("key"):
        return op == "Exists"  # empty key + Exists tolerates everything
    if toleration["key"] != taint.get("key"):
        return False
    return op == "Exists" or (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taint(pod: Obj, node: Obj, effects: tuple[str, ...] = ("NoSchedule", "NoExecute")) -> Obj | None:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in effects and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def filter_taints(pod: Obj, info: NodeInfo) -> str | None:
    taint = untolerated_taint(pod, info.node)
    if taint is None:
        return None
    return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"


def filter_resources(pod: Obj, info: NodeInfo) -> list[str]:
    alloc = info.allocatable
    if alloc is None:
        return []
    want, used = pod_requests(pod), info.requested
    reasons = []
    if used.pods + 1 > alloc.pods:
        reasons.append("Too many pods")
    if want.milli_cpu and used.milli_cpu + want.milli_cpu > alloc.milli_cpu:
        reasons.append("Insufficient cpu")
    if want.memory and used.memory + want.memory > alloc.memory:
        reasons.append("Insufficient memory")
    return reasons


def _host_ports(pod: Obj) -> set[tuple[str, str, int]]:
    out = set()
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.add((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(p["hostPort"])))
    return out


def filter_host_ports(pod: Obj, info: NodeInfo) -> str | None:
    want = _host_ports(pod)
    if not want:
        return None
    used = set().union(*(_host_ports(p) for p in info.pods)) if info.pods else set()
    for ip, proto, port in want:
        for uip, uproto, uport in used:
            same_port = (proto, port) == (uproto, uport)
            if same_port and (ip == uip or "0.0.0.0" in (ip, uip)):
                return "node(s) didn't have free ports for the requested pod ports"
    return None


_FILTERS = (filter_node_name, filter_unschedulable, filter_node_affinity, filter_taints, filter_host_ports)


def filters_for(pod: Obj) -> tuple[Callable[[Obj, NodeInfo], str | None], ...]:
    """The filters that can reject this pod somewhere: one that passes every node for this pod
    (no nodeName, no node selector or required affinity, no host ports) is left out, as it is
    asked of hundreds of nodes per decision."""
    spec = pod.get("spec") or {}
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    skip = set()
    if not spec.get("nodeName"):
        skip.add(filter_node_name)
    if not spec.get("nodeSelector") and not required:
        skip.add(filter_node_affinity)
    if not _host_ports(pod):
        skip.add(filter_host_ports)
    return tuple(f for f in _FILTERS if f not in skip)


def compute_filter_reasons(pod: Obj, info: NodeInfo,
                           filters: tuple[Callable[[Obj, NodeInfo], str | None], ...] = _FILTERS) -> list[str]:
    """Every reason this node does not fit (empty list: it fits)."""
    reasons: list[str] = []
    for check in filters:
        reason = check(pod, info)
        if reason:
            reasons.append(reason)
            return reasons  # upstream stops at the first failing plugin
    return filter_resources(pod, info)


# Filter failures that evicting pods could never fix (upstream: UnschedulableAndUnresolvable).
_UNRESOLVABLE_PREFIXES = ("node(s) had untolerated taint", "node(s) didn't match Pod's node affinity/selector",
                          "node(s) didn't match the requested node name", "node(s) were unschedulable")


def format_unschedulable_message(total_nodes: int, reasons_per_node: dict[str, list[str]],
                                 pod: Obj | None = None) -> str:
    """`0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {...}.
    preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption
    is not helpful for scheduling.` -- the preemption part as DefaultPreemption words it when it finds
    nothing to evict (knet does not preempt: with no PriorityClasses there is never a lower-priority
    victim, so this is what upstream prints too)."""
    counts: Counter[str] = Counter()
    for reasons in reasons_per_node.values():
        counts.update(set(reasons))
    if total_nodes == 0:
        return "no nodes available to schedule pods"
    parts = sorted(f"{n} {reason}" for reason, n in counts.items())
    message = f"0/{total_nodes} nodes are available: {', '.join(parts)}."
    if pod is None:
        return message
    if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
        return f"{message} preemption: not eligible due to preemptionPolicy=Never."
    preempt: Counter[str] = Counter()
    for reasons in reasons_per_node.values():
        hopeless = any(r.startswith(_UNRESOLVABLE_PREFIXES) for r in reasons)
        preempt["Preemption is not helpful for scheduling" if hopeless
                else "No preemption victims found for incoming pod"] += 1
    preempt_parts = sorted(f"{n} {reason}" for reason, n in preempt.items())
    return f"{message} preemption: 0/{total_nodes} nodes are available: {', '.join(preempt_parts)}."


# -- scores: higher is better, each 0..100 -----------------------------------------------------

def score_least_allocated(pod: Obj, info: NodeInfo) -> float:
    alloc = info.allocatable
    if alloc is None or alloc.milli_cpu <= 0 or alloc.memory <= 0:
        return 50.0
    want = pod_requests(pod)
    cpu = info.requested.milli_cpu + (want.milli_cpu or DEFAULT_MILLI_CPU)
    mem = info.requested.memory + (want.memory or DEFAULT_MEMORY)
    free_cpu = max(alloc.milli_cpu - cpu, 0) * 100 / alloc.milli_cpu
    free_mem = max(alloc.memory - mem, 0) * 100 / alloc.memory
    return (free_cpu + free_mem) / 2


def workload_key(pod: Obj) -> tuple[Any, ...] | None:
    """Two pods are of the same workload when their keys are equal and not None: same namespace
    and either the same controller (by uid) or, neither having one, the same non-empty labels."""
    meta = pod["metadata"]
    ref = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
    if ref is not None:
        return (meta.get("namespace"), "controller", ref.get("uid"))
    labels = meta.get("labels")
    return (meta.get("namespace"), "labels", frozenset(labels.items())) if labels else None


def compute_spread_counts(pod: Obj, infos: list[NodeInfo]) -> dict[str, int]:
    key = workload_key(pod)
    if key is None:
        return {i.name: 0 for i in infos}
    return {i.name: i.workload_counts.get(key, 0) for i in infos}


def compute_scores(pod: Obj, feasible: list[NodeInfo], spread_weight: float = 2.0) -> dict[str, float]:
    """least-allocated (weight 1) + selector spread (weight 2, as PodTopologySpread's default)."""
    counts = compute_spread_counts(pod, feasible)
    most = max(counts.values(), default=0)
    scores = {}
    for info in feasible:
        spread = 100.0 if most == 0 else 100.0 * (most - counts[info.name]) / most
        scores[info.name] = score_least_allocated(pod, info) + spread_weight * spread
    return scores


def select_host(scores: dict[str, float]) -> str:
    """Highest score; ties go to the first node by name, so decisions are reproducible."""
    return min(scores, key=lambda name: (-scores[name], name))


def num_feasible_nodes_to_find(total: int, percentage: int = 0) -> int:
    """Upstream's percentageOfNodesToScore: small clusters are searched whole; big ones stop after
    max(100, adaptive %) feasible nodes (adaptive: 50% - nodes/125, at least 5%)."""
    if total < 100:
        return total
    if percentage <= 0:
        percentage = max(5, 50 - total // 125)
    return min(total, max(100, total * percentage // 100))


def schedule(pod: Obj, infos: Sequence[NodeInfo], start: int = 0,
             summaries: Sequence[NodeSummary] | None = None) -> tuple[str | None, dict[str, list[str]]]:
    """(chosen node or None, reasons per rejected node). The search begins at `start` (rotated by
    the caller, like upstream's nextStartNodeIndex) so a partial search still covers every node.
    `summaries[i]` is `infos[i].summary()`, when the caller keeps them.

    Same decisions as compute_filter_reasons + compute_scores + select_host, but with the common
    case inlined: a node with no taint or cordon, for a pod that only needs resources checked, costs
    a few integer comparisons instead of a chain of calls (this loop runs ~400 times per pod on a
    1,000-node cluster)."""
    if summaries is None:
        summaries = [info.summary() for info in infos]
    rejected: dict[str, list[str]] = {}
    n = len(infos)
    wanted = num_feasible_nodes_to_find(n)
    filters = filters_for(pod)
    # Filters other than cordon/taints (node name, affinity, host ports) can reject a plain node too.
    plain_suffices = all(f in (filter_unschedulable, filter_taints) for f in filters)
    want = pod_requests(pod)
    want_cpu, want_mem = want.milli_cpu, want.memory
    score_cpu, score_mem = want_cpu or DEFAULT_MILLI_CPU, want_mem or DEFAULT_MEMORY
    key = workload_key(pod)
    # The spreading score of a node depends on its count of the workload's pods relative to the
    # largest count among the feasible nodes, known only at the end; the least-allocated score
    # does not. So one pass keeps, per count, the node with the best least-allocated score.
    best: dict[int, tuple[float, str]] = {}
    feasible = 0
    for j in chain(range(start, n), range(min(start, n))):
        plain, has_alloc, alloc_pods, alloc_cpu, alloc_mem, used_pods, used_cpu, used_mem, counts = summaries[j]
        if not (plain and plain_suffices):
            info = infos[j]
            reasons = compute_filter_reasons(pod, info, filters)
            if reasons:
                rejected[info.name] = reasons
                continue
        elif has_alloc and (used_pods >= alloc_pods or (want_cpu and used_cpu + want_cpu > alloc_cpu)
                            or (want_mem and used_mem + want_mem > alloc_mem)):
            info = infos[j]
            rejected[info.name] = filter_resources(pod, info)
            continue
        if not has_alloc or alloc_cpu <= 0 or alloc_mem <= 0:
            least = 50.0
        else:
            free_cpu = alloc_cpu - used_cpu - score_cpu
            free_mem = alloc_mem - used_mem - score_mem
            least = ((free_cpu * 100 / alloc_cpu if free_cpu > 0 else 0)
                     + (free_mem * 100 / alloc_mem if free_mem > 0 else 0)) / 2
        count = counts.get(key, 0) if key is not None else 0
        held = best.get(count)
        if held is None or least >= held[0]:
            name = infos[j].name
            if held is None or least > held[0] or name < held[1]:
                best[count] = (least, name)
        feasible += 1
        if feasible >= wanted:
            break
    if not feasible:
        return None, rejected
    return _best_host(best), rejected


def _best_host(best: dict[int, tuple[float, str]], spread_weight: float = 2.0) -> str:
    """select_host(compute_scores(...)) from the best node per count of the workload's pods."""
    most = max(best)
    best_name, best_score = "", -1.0
    for count, (least, name) in best.items():
        spread = 100.0 if most == 0 else 100.0 * (most - count) / most
        score = least + spread_weight * spread
        if score > best_score or (score == best_score and name < best_name):
            best_name, best_score = name, score
    return best_name
