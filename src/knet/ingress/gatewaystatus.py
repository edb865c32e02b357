"""The status the gateway controller writes, from a compiled model (gateway.Compiled): the
GatewayClass's Accepted condition, the Gateway's Accepted/Programmed conditions, addresses and
listeners (conditions, supportedKinds, attachedRoutes), and an HTTPRoute's status.parents entries
for knet's Gateways (other controllers' entries are kept). A condition keeps its
lastTransitionTime while its status stays the same (metav1 Condition semantics). Pure."""

from __future__ import annotations

from typing import Any

from knet.ingress.gateway import CONTROLLER_NAME, Cond, GatewayState, ParentState

Obj = dict[str, Any]


def conditions(want: list[Cond], old: list[Obj] | None, generation: int, now: str) -> list[Obj]:
    before = {c.get("type"): c for c in old or []}
    out = []
    for c in want:
        status = "True" if c.status else "False"
        prev = before.get(c.type)
        since = prev["lastTransitionTime"] if prev and prev.get("status") == status and \
            prev.get("lastTransitionTime") else now
        out.append({"lastTransitionTime": since, "message": c.message or c.reason, "observedGeneration": generation,
                    "reason": c.reason, "status": status, "type": c.type})
    return out


def _generation(o: Obj) -> int:
    return int((o.get("metadata") or {}).get("generation") or 0)


def gateway_class_status(gc: Obj, want: list[Cond], now: str) -> Obj:
    status = dict(gc.get("status") or {})
    status["conditions"] = conditions(want, status.get("conditions"), _generation(gc), now)
    return status


def gateway_status(state: GatewayState, addresses: list[str], now: str) -> Obj:
    gw = state.obj
    old = gw.get("status") or {}
    gen = _generation(gw)
    old_listeners = {ls.get("name"): ls for ls in old.get("listeners") or []}
    status: Obj = {}
    if addresses:
        status["addresses"] = [{"type": "IPAddress", "value": a} for a in addresses]
    status["conditions"] = conditions(state.conditions, old.get("conditions"), gen, now)
    status["listeners"] = [{
        "attachedRoutes": len(ls.attached),
        "conditions": conditions(ls.conditions, (old_listeners.get(ls.name) or {}).get("conditions"), gen, now),
        "name": ls.name,
        "supportedKinds": ls.supported_kinds,
    } for ls in state.listeners]
    return status


def _same_parent(a: Obj, b: Obj, route_ns: str) -> bool:
    def norm(r: Obj) -> tuple:
        return (r.get("group") or "gateway.networking.k8s.io", r.get("kind") or "Gateway",
                r.get("namespace") or route_ns, r.get("name"), r.get("sectionName"), r.get("port"))
    return norm(a) == norm(b)


def route_status(route: Obj, parents: list[ParentState], now: str, controller: str = CONTROLLER_NAME) -> Obj:
    old = (route.get("status") or {}).get("parents") or []
    rns = route["metadata"]["namespace"]
    gen = _generation(route)
    out = [p for p in old if p.get("controllerName") != controller]
    for p in parents:
        prev = next((o for o in old if o.get("controllerName") == controller and
                     _same_parent(o.get("parentRef") or {}, p.parent_ref, rns)), None)
        out.append({"conditions": conditions(p.conditions, (prev or {}).get("conditions"), gen, now),
                    "controllerName": controller, "parentRef": dict(p.parent_ref)})
    return {"parents": out}
