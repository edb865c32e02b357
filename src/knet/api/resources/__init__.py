"""One module per kind (defaults, validation, table columns); `build_registry()` lists them in
the order discovery serves them."""

from __future__ import annotations

from knet.api.registry import Registry


def build_registry() -> Registry:
    from knet.api.resources import (
        configmaps,
        controllerrevisions,
        crds,
        cronjobs,
        daemonsets,
        deployments,
        endpoints,
        endpointslices,
        events,
        events_v1,
        horizontalpodautoscalers,
        ingressclasses,
        ingresses,
        jobs,
        leases,
        metrics,
        namespaces,
        networkpolicies,
        nodes,
        poddisruptionbudgets,
        pods,
        priorityclasses,
        rbac,
        replicasets,
        replicationcontrollers,
        reviews,
        secrets,
        serviceaccounts,
        services,
        statefulsets,
    )

    registry = Registry()
    for module in (configmaps, endpoints, events, namespaces, nodes, pods, secrets, serviceaccounts, services,
                   daemonsets, deployments, replicasets, events_v1, networkpolicies, endpointslices, leases,
                   poddisruptionbudgets, priorityclasses, replicationcontrollers, jobs, cronjobs,
                   ingresses, ingressclasses):
        registry.add(module.RESOURCE)
    for module in (statefulsets, controllerrevisions):
        registry.add(module.RESOURCE)
    for rt in rbac.RESOURCES:
        registry.add(rt)
    for rt in reviews.RESOURCES:
        registry.add(rt)
    for rt in horizontalpodautoscalers.RESOURCES:
        registry.add(rt)
    for rt in metrics.RESOURCES:
        registry.add(rt)
    registry.add(crds.RESOURCE)
    return registry
