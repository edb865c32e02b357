"""Conntrack cleanup of stale UDP (and SCTP) flows, as upstream's conntrack.CleanStaleEntries.

UDP has no connection teardown: a flow DNATed to an endpoint that went away keeps black-holing
the client until conntrack times it out, and a flow created while a Service had no endpoints
keeps being rejected. `plan_cleanup` (pure) says which entries to delete; `ConntrackCli` runs
`conntrack -D ...` for them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from knet.proxy.model import EndpointsUpdateResult, ServicePort, ServicePortName, ServiceUpdateResult

NEEDS_CLEANUP = ("UDP", "SCTP")


def plan_cleanup(services: Mapping[ServicePortName, ServicePort], svc_result: ServiceUpdateResult,
                 ep_result: EndpointsUpdateResult) -> list[list[str]]:
    """`conntrack` argument lists, in upstream's order."""
    out: list[list[str]] = []
    for sp in svc_result.deleted_udp_ports:
        out.append(["-D", "--orig-dst", sp.cluster_ip, "-p", sp.protocol.lower()])
    for spn in sorted(ep_result.newly_active):
        sp = services.get(spn)
        if sp is None or sp.protocol not in NEEDS_CLEANUP:
            continue
        proto = sp.protocol.lower()
        for ip in (sp.cluster_ip, *sp.external_ips, *sp.load_balancer_ips):
            out.append(["-D", "--orig-dst", ip, "-p", proto])
        if sp.node_port:
            out.append(["-D", "-p", proto, "--dport", str(sp.node_port)])
    for spn, ep in ep_result.deleted_endpoints:
        sp = services.get(spn)
        if sp is None or sp.protocol not in NEEDS_CLEANUP:
            continue
        proto = sp.protocol.lower()
        for ip in (sp.cluster_ip, *sp.external_ips, *sp.load_balancer_ips):
            out.append(["-D", "--orig-dst", ip, "--dst-nat", ep.ip, "-p", proto])
        if sp.node_port:
            out.append(["-D", "-p", proto, "--dport", str(sp.node_port), "--dst-nat", ep.ip])
    return out


class Conntrack(Protocol):
    def run(self, args: list[str]) -> None: ...


@dataclass
class ConntrackCli:
    netns: str | None = None

    def run(self, args: list[str]) -> None:
        argv = ["conntrack", *args]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        # exit status 1 with "0 flow entries have been deleted" is the normal "nothing to do"
        subprocess.run(argv, capture_output=True, check=False)


@dataclass
class FakeConntrack:
    calls: list[list[str]] = field(default_factory=list)

    def run(self, args: list[str]) -> None:
        self.calls.append(args)
