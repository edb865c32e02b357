"""What a sync took from the change trackers, kept until a sync that applies it succeeds.

The trackers are drained into the ServicePortMap / EndpointsMap before rendering (the renderers
read those maps). If the apply then fails, the maps already hold the new state, which the retry
(a full sync) writes; but the batch's other consequences, the stale-UDP conntrack cleanup and the
programming-latency samples, would be lost with it, and a UDP client would keep talking to a
deleted endpoint through its conntrack entry. A failed sync leaves its batch here; the next sync
merges its own batch in and, once its apply succeeds, acts on the union.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from knet.proxy.model import EndpointsUpdateResult, NamespacedName, ServiceUpdateResult


@dataclass
class PendingBatch:
    changed: set[NamespacedName] = field(default_factory=set)
    services: ServiceUpdateResult = field(default_factory=lambda: ServiceUpdateResult(set(), []))
    endpoints: EndpointsUpdateResult = field(default_factory=lambda: EndpointsUpdateResult(set(), [], set()))
    trigger_times: list[str] = field(default_factory=list)

    def merged(self, changed: set[NamespacedName], services: ServiceUpdateResult,
               endpoints: EndpointsUpdateResult, trigger_times: list[str]) -> PendingBatch:
        """This batch followed by a newer one. Cleanups add up: flushing conntrack entries for a
        flow whose endpoint came back only makes its next packet pick an endpoint anew."""
        return PendingBatch(
            self.changed | changed,
            ServiceUpdateResult(self.services.updated_services | services.updated_services,
                                self.services.deleted_udp_ports + services.deleted_udp_ports),
            EndpointsUpdateResult(self.endpoints.updated_services | endpoints.updated_services,
                                  self.endpoints.deleted_endpoints + endpoints.deleted_endpoints,
                                  self.endpoints.newly_active | endpoints.newly_active),
            self.trigger_times + trigger_times)

