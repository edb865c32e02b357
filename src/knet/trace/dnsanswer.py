"""A names' A records as the cluster DNS (knet.dns, CoreDNS's kubernetes plugin) answers them, from
the same objects, without a server. Pure."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from knet.trace.view import ClusterView


def lookup(view: ClusterView, qname: str) -> list[str]:
    import dns.rdatatype

    from knet.dns.answer import KubernetesZones, serve
    from knet.dns.cache import ClusterCache
    from knet.dns.lookup import KubernetesBackend
    from knet.dns.objects import to_endpoints, to_service

    cache = ClusterCache()
    for ns in view.namespaces:
        cache.add_namespace((ns.get("metadata") or {}).get("name", ""))
    for svc in view.services:
        cache.add_namespace((svc.get("metadata") or {}).get("namespace", ""))
        cache.upsert_service(to_service(svc))
    for sl in view.slices:
        cache.upsert_endpoints(to_endpoints(sl))
    cache.expect("all")
    cache.mark_synced("all")
    backend = KubernetesBackend(cache, [view.cluster_domain, "in-addr.arpa", "ip6.arpa"])
    reply = serve(KubernetesZones(backend), qname.rstrip(".") + ".", dns.rdatatype.A)
    if reply is None:
        return []
    return [rdata.to_text() for _, _, rdata in reply.answer if getattr(rdata, "rdtype", None) == dns.rdatatype.A]
