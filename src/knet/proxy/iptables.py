"""The iptables renderer: the model -> iptables-restore input, as upstream kube-proxy v1.29+ writes it.

Pure: no I/O. Same chains (KUBE-SERVICES, KUBE-SVC-/SVL-/EXT-/FW-/SEP-, KUBE-NODEPORTS,
KUBE-MARK-MASQ, KUBE-POSTROUTING, KUBE-FORWARD, KUBE-FIREWALL, KUBE-PROXY-FIREWALL,
KUBE-EXTERNAL-SERVICES), same rule order, --comment texts and probabilities.

Partial syncs (KEP-3453): `Renderer.render(state, changed=...)` writes every top-level chain but
only the per-service chains of the Services in `changed`; iptables-restore --noflush leaves the
other chains as they are. Per-service fragments are cached so a partial sync costs O(changed).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from knet.proxy import names, restore
from knet.proxy.model import Endpoint, NamespacedName, ProxyState, ServicePort, ServicePortName
from knet.proxy.options import LARGE_CLUSTER_ENDPOINTS_THRESHOLD, RenderOptions
from knet.proxy.topology import categorize_endpoints

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_FIREWALL = "KUBE-FIREWALL"  # kubelet's chain; kube-proxy fills it when localhost NodePorts are on
KUBE_PROXY_CANARY = "KUBE-PROXY-CANARY"

FILTER_TOP_CHAINS = (KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_PROXY_FIREWALL)
NAT_TOP_CHAINS = (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ)
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-")


@dataclass(frozen=True)
class JumpRule:
    """A rule in a built-in chain jumping to one of ours (upstream iptablesJumpChains)."""
    table: str
    chain: str  # ours
    source: str  # built-in chain
    comment: str
    extra: tuple[str, ...] = ()

    def args(self) -> list[str]:
        # upstream's order (proxier.go: extraArgs, then the comment), so `iptables --list` reads
        # `ctstate NEW /* kubernetes service portals */` as on a kubeadm node
        out = list(self.extra)
        if self.comment:
            out += ["-m", "comment", "--comment", self.comment]
        return out + ["-j", self.chain]

    def save_line(self) -> str:
        """The rule as iptables-save prints it (matches in insertion order, spaced comments quoted)."""
        return " ".join(["-A", self.source, *(quote(a) for a in self.args())])


_NEW = ("-m", "conntrack", "--ctstate", "NEW")
JUMP_RULES = (
    JumpRule("filter", KUBE_EXTERNAL_SERVICES, "INPUT", "kubernetes externally-visible service portals", _NEW),
    JumpRule("filter", KUBE_EXTERNAL_SERVICES, "FORWARD", "kubernetes externally-visible service portals", _NEW),
    JumpRule("filter", KUBE_NODEPORTS, "INPUT", "kubernetes health check service ports"),
    JumpRule("filter", KUBE_SERVICES, "FORWARD", "kubernetes service portals", _NEW),
    JumpRule("filter", KUBE_SERVICES, "OUTPUT", "kubernetes service portals", _NEW),
    JumpRule("filter", KUBE_FORWARD, "FORWARD", "kubernetes forwarding rules"),
    JumpRule("filter", KUBE_PROXY_FIREWALL, "INPUT", "kubernetes load balancer firewall", _NEW),
    JumpRule("filter", KUBE_PROXY_FIREWALL, "OUTPUT", "kubernetes load balancer firewall", _NEW),
    JumpRule("filter", KUBE_PROXY_FIREWALL, "FORWARD", "kubernetes load balancer firewall", _NEW),
    JumpRule("nat", KUBE_SERVICES, "OUTPUT", "kubernetes service portals"),
    JumpRule("nat", KUBE_SERVICES, "PREROUTING", "kubernetes service portals"),
    JumpRule("nat", KUBE_POSTROUTING, "POSTROUTING", "kubernetes postrouting rules"),
    # the kubelet's firewall chain: created by kube-proxy too, never deleted by its cleanup
    JumpRule("filter", KUBE_FIREWALL, "INPUT", ""),
    JumpRule("filter", KUBE_FIREWALL, "OUTPUT", ""),
)


def quote(comment: str) -> str:
    return f'"{comment}"' if " " in comment else comment


@lru_cache(maxsize=1001)
def probability(n: int) -> str:
    return f"{1.0 / n:0.10f}"


@lru_cache(maxsize=65536)
def _chain_names(spn: ServicePortName) -> tuple[str, str, str, str]:
    s, proto = str(spn), spn.protocol.lower()
    h = names.port_proto_hash(s, proto)
    return "KUBE-SVC-" + h, "KUBE-SVL-" + h, "KUBE-EXT-" + h, "KUBE-FW-" + h


def sep_chain(spn: ServicePortName, ep: Endpoint) -> str:
    return names.iptables_endpoint_chain(str(spn), spn.protocol.lower(), str(ep))


@dataclass
class ServiceRules:
    """One service port's part of the ruleset."""
    filter_rules: dict[str, list[str]] = field(default_factory=dict)  # top-level filter chain -> rules
    nat_top_rules: dict[str, list[str]] = field(default_factory=dict)  # KUBE-SERVICES / KUBE-NODEPORTS
    nat_chains: list[str] = field(default_factory=list)  # per-service chains, in creation order
    nat_rules: list[str] = field(default_factory=list)  # rules of those chains
    no_local_internal: bool = False
    no_local_external: bool = False

    def add_filter(self, chain: str, rule: str) -> None:
        self.filter_rules.setdefault(chain, []).append(rule)

    def add_nat_top(self, chain: str, rule: str) -> None:
        self.nat_top_rules.setdefault(chain, []).append(rule)


def render_service(svc: ServicePort, endpoints: list[Endpoint], opts: RenderOptions,
                   large_cluster: bool = False) -> ServiceRules:
    """Upstream syncProxyRules' loop body for one service port."""
    out = ServiceRules()
    spn = svc.name
    name = str(spn)
    proto = svc.protocol.lower()
    pm = f"-m {proto} -p {proto}"
    port = str(svc.port)
    cat = categorize_endpoints(endpoints, svc)
    cluster_chain, local_chain, ext_chain, fw_chain = _chain_names(spn)
    uses_cluster_chain = bool(cat.cluster) and svc.uses_cluster_endpoints
    uses_local_chain = bool(cat.local) and svc.uses_local_endpoints

    internal_chain, has_internal = cluster_chain, cat.has_any
    if svc.internal_policy_local:
        internal_chain = local_chain
        if not cat.local:
            has_internal = False
    external_policy_chain, has_external = cluster_chain, cat.has_any
    if svc.external_policy_local:
        external_policy_chain = local_chain
        if not cat.local:
            has_external = False
    uses_ext_chain = cat.has_any and svc.externally_accessible
    lb_chain = ext_chain
    uses_fw = cat.has_any and bool(svc.load_balancer_ips) and bool(svc.load_balancer_source_ranges)
    if uses_fw:
        lb_chain = fw_chain

    int_target = int_comment = ext_target = ext_comment = ""
    if not cat.has_any:
        int_target = ext_target = "REJECT"
        int_comment = ext_comment = f'"{name} has no endpoints"'
    else:
        if not has_internal:
            int_target, int_comment = "DROP", f'"{name} has no local endpoints"'
            out.no_local_internal = True
        if not has_external:
            ext_target, ext_comment = "DROP", f'"{name} has no local endpoints"'
            out.no_local_external = True

    # Capture the clusterIP.
    if has_internal:
        out.add_nat_top(KUBE_SERVICES, f'-A KUBE-SERVICES -m comment --comment "{name} cluster IP" {pm} '
                                       f'-d {svc.cluster_ip} --dport {port} -j {internal_chain}')
    else:
        out.add_filter(KUBE_SERVICES, f"-A KUBE-SERVICES -m comment --comment {int_comment} {pm} "
                                      f"-d {svc.cluster_ip} --dport {port} -j {int_target}")
    # Capture externalIPs.
    for ip in svc.external_ips:
        if cat.has_any:
            out.add_nat_top(KUBE_SERVICES, f'-A KUBE-SERVICES -m comment --comment "{name} external IP" {pm} '
                                           f"-d {ip} --dport {port} -j {ext_chain}")
        if not has_external:
            out.add_filter(KUBE_EXTERNAL_SERVICES, f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {ext_comment} "
                                                   f"{pm} -d {ip} --dport {port} -j {ext_target}")
    # Capture load-balancer ingress.
    for ip in svc.load_balancer_ips:
        if cat.has_any:
            out.add_nat_top(KUBE_SERVICES, f'-A KUBE-SERVICES -m comment --comment "{name} loadbalancer IP" '
                                           f"{pm} -d {ip} --dport {port} -j {lb_chain}")
        if uses_fw:
            out.add_filter(KUBE_PROXY_FIREWALL,
                           f'-A KUBE-PROXY-FIREWALL -m comment --comment "{name} traffic not accepted by {fw_chain}" '
                           f"{pm} -d {ip} --dport {port} -j DROP")
    if not has_external:
        for ip in svc.load_balancer_ips:
            out.add_filter(KUBE_EXTERNAL_SERVICES, f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {ext_comment} "
                                                   f"{pm} -d {ip} --dport {port} -j {ext_target}")
    # Capture nodeports.
    if svc.node_port:
        np = str(svc.node_port)
        if cat.has_any:
            if opts.nfacct and opts.effective_localhost_node_ports:
                out.add_nat_top(KUBE_NODEPORTS, f"-A KUBE-NODEPORTS -m comment --comment {name} {pm} "
                                                f"-d 127.0.0.0/8 --dport {np} -m nfacct --nfacct-name "
                                                f"localhost_nps_accepted_pkts -j {ext_chain}")
            out.add_nat_top(KUBE_NODEPORTS, f"-A KUBE-NODEPORTS -m comment --comment {name} {pm} "
                                            f"--dport {np} -j {ext_chain}")
        if not has_external:
            out.add_filter(KUBE_EXTERNAL_SERVICES, f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {ext_comment} "
                                                   f"-m addrtype --dst-type LOCAL {pm} --dport {np} -j {ext_target}")
    # Capture healthCheckNodePorts.
    if svc.health_check_node_port:
        out.add_filter(KUBE_NODEPORTS, f'-A KUBE-NODEPORTS -m comment --comment "{name} health check node port" '
                                       f"-m tcp -p tcp --dport {svc.health_check_node_port} -j ACCEPT")

    rules = out.nat_rules
    chains = out.nat_chains
    # Set up internal traffic handling.
    if has_internal:
        match = f'-m comment --comment "{name} cluster IP" {pm} -d {svc.cluster_ip} --dport {port}'
        if opts.masquerade_all:
            rules.append(f"-A {internal_chain} {match} -j KUBE-MARK-MASQ")
        elif opts.cluster_cidr:
            # off-cluster traffic to a ClusterIP may be routed back out: masquerade it
            rules.append(f"-A {internal_chain} {match} ! -s {opts.cluster_cidr} -j KUBE-MARK-MASQ")
    # Set up external traffic handling.
    if uses_ext_chain:
        chains.append(ext_chain)
        if not svc.external_policy_local:
            rules.append(f'-A {ext_chain} -m comment --comment "masquerade traffic for {name} external destinations" '
                         f"-j KUBE-MARK-MASQ")
        else:
            if opts.cluster_cidr:
                rules.append(f'-A {ext_chain} -m comment --comment "pod traffic for {name} external destinations" '
                             f"-s {opts.cluster_cidr} -j {cluster_chain}")
            rules.append(f'-A {ext_chain} -m comment --comment "masquerade LOCAL traffic for {name} external '
                         f'destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ')
            rules.append(f'-A {ext_chain} -m comment --comment "route LOCAL traffic for {name} external '
                         f'destinations" -m addrtype --src-type LOCAL -j {cluster_chain}')
        if has_external:
            rules.append(f"-A {ext_chain} -j {external_policy_chain}")
    # Set up the firewall chain.
    if uses_fw:
        chains.append(fw_chain)
        head = f'-A {fw_chain} -m comment --comment "{name} loadbalancer IP"'
        allow_from_node = False
        for cidr in svc.load_balancer_source_ranges:
            rules.append(f"{head} -s {cidr} -j {ext_chain}")
            if opts.node_ip and _contains(cidr, opts.node_ip):
                allow_from_node = True
        if allow_from_node:
            for ip in svc.load_balancer_ips:
                rules.append(f"{head} -s {ip} -j {ext_chain}")
        rules.append(f'-A {fw_chain} -m comment --comment "other traffic to {name} will be dropped by '
                     f'KUBE-PROXY-FIREWALL"')
    if uses_cluster_chain:
        chains.append(cluster_chain)
        _service_to_endpoint_rules(rules, name, svc, cluster_chain, cat.cluster, large_cluster)
    if uses_local_chain:
        chains.append(local_chain)
        _service_to_endpoint_rules(rules, name, svc, local_chain, cat.local, large_cluster)
    # The per-endpoint chains.
    comment = "" if large_cluster else f" -m comment --comment {name}"
    for ep in cat.all_reachable:
        chain = sep_chain(spn, ep)
        chains.append(chain)
        rules.append(f"-A {chain}{comment} -s {ep.ip} -j KUBE-MARK-MASQ")
        affinity = f" -m recent --name {chain} --set" if svc.session_affinity_client_ip else ""
        rules.append(f"-A {chain}{comment}{affinity} {pm} -j DNAT --to-destination {ep}")
    return out


def _contains(cidr: str, ip: str) -> bool:
    import ipaddress
    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)


def _service_to_endpoint_rules(rules: list[str], name: str, svc: ServicePort, chain: str,
                               endpoints: list[Endpoint], large_cluster: bool) -> None:
    spn = svc.name
    def comment(ep: Endpoint) -> str:
        return "" if large_cluster else f' -m comment --comment "{name} -> {ep}"'
    if svc.session_affinity_client_ip:
        for ep in endpoints:
            sep = sep_chain(spn, ep)
            rules.append(f"-A {chain}{comment(ep)} -m recent --name {sep} --rcheck --seconds "
                         f"{svc.sticky_seconds} --reap -j {sep}")
    n = len(endpoints)
    for i, ep in enumerate(endpoints):
        stat = f" -m statistic --mode random --probability {probability(n - i)}" if i < n - 1 else ""
        rules.append(f"-A {chain}{comment(ep)}{stat} -j {sep_chain(spn, ep)}")


@dataclass
class RenderResult:
    text: str
    nat_chains: set[str]  # every per-service chain that should exist after this sync
    written_services: int  # how many service ports' chains are in `text`
    no_local_internal: int = 0
    no_local_external: int = 0


class Renderer:
    """Renders a state; caches per-service fragments between syncs (invalidate what changed)."""

    def __init__(self, opts: RenderOptions) -> None:
        self.opts = opts
        self._cache: dict[ServicePortName, ServiceRules] = {}
        self._large_cluster: bool | None = None
        # what the last successful render put in each top-level chain: partial syncs rewrite only
        # the chains that changed, and a few changed rules as -D/-I instead of the whole chain
        self._top: dict[tuple[str, str], list[str]] = {}

    @property
    def large_cluster(self) -> bool:
        """Large-cluster mode as of the last render (upstream's largeClusterMode)."""
        return bool(self._large_cluster)

    def invalidate(self, services: Iterable[NamespacedName] | None = None) -> None:
        if services is None:
            self._cache.clear()
            self._top.clear()
            return
        wanted = set(services)
        # (namespace, name) equals the NamespacedName (a NamedTuple) without building one per port
        for spn in [s for s in self._cache if (s[0], s[1]) in wanted]:
            del self._cache[spn]

    def render(self, state: ProxyState, changed: set[NamespacedName] | None = None,
               stale_chains: Iterable[str] = ()) -> RenderResult:
        """changed=None: a full sync (every chain); else only the chains of the changed Services."""
        if self._prepare(state):
            changed = None
        large = bool(self._large_cluster)
        if changed is not None:
            self.invalidate(changed)

        nat_chain_lines: list[str] = []
        nat_rules: list[str] = []
        written = 0
        parts = _TopParts()
        for spn, frag in self._fragments(state, large):
            parts.add(frag)
            if changed is None or (spn[0], spn[1]) in changed:
                written += 1
                nat_chain_lines.extend(f":{c} - [0:0]" for c in frag.nat_chains)
                nat_rules.extend(frag.nat_rules)

        top = self._top_level(parts.filter_rules, parts.nat_top)
        active = parts.active
        decl: dict[str, list[str]] = {"filter": [], "nat": []}
        body: dict[str, list[str]] = {"filter": [], "nat": []}
        for (table, chain), rules in top.items():
            old = self._top.get((table, chain)) if changed is not None else None
            if old is None:
                decl[table].append(f":{chain} - [0:0]")
                body[table].extend(rules)
            elif old != rules:
                body[table].extend(_chain_delta(chain, old, rules) or [])
                if not _chain_delta(chain, old, rules):
                    decl[table].append(f":{chain} - [0:0]")
                    body[table].extend(rules)
        self._top = top
        # a set difference: the proxier passes the ~110k chains of the last sync at 10,000 Services
        gone = (stale_chains if isinstance(stale_chains, set | frozenset) else set(stale_chains)) - active
        stale = sorted(c for c in gone if c.startswith(SERVICE_CHAIN_PREFIXES))
        lines = ["*filter", *decl["filter"], *body["filter"], "COMMIT", "*nat", *decl["nat"], *nat_chain_lines]
        lines.extend(f":{c} - [0:0]" for c in stale)
        lines.extend(body["nat"])
        lines.extend(nat_rules)
        lines.extend(f"-X {c}" for c in stale)
        lines.append("COMMIT")
        return RenderResult("\n".join(lines) + "\n", active, written, parts.nli, parts.nle)

    def _fragments(self, state: ProxyState, large: bool) -> Iterator[tuple[ServicePortName, ServiceRules]]:
        """Every Service port's rules in order, rendered again only when not cached."""
        opts = self.opts
        for spn in sorted(state.services):
            frag = self._cache.get(spn)
            if frag is None:
                frag = render_service(state.services[spn], state.endpoints.get(spn, []), opts, large)
                self._cache[spn] = frag
            yield spn, frag

    def _top_level(self, filter_rules: dict[str, list[str]],
                   nat_top: dict[str, list[str]]) -> dict[tuple[str, str], list[str]]:
        """The top-level chains' rules, (table, chain) -> rules, from the services' part of them."""
        opts = self.opts
        mark = opts.masquerade_mark
        chains_in_filter = list(FILTER_TOP_CHAINS)
        if opts.effective_localhost_node_ports:
            chains_in_filter.append(KUBE_FIREWALL)
            filter_rules[KUBE_FIREWALL].append(
                '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 '
                "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")
        if not opts.tcp_be_liberal:
            acct = " -m nfacct --nfacct-name ct_state_invalid_dropped_pkts" if opts.nfacct else ""
            filter_rules[KUBE_FORWARD].append(f"-A KUBE-FORWARD -m conntrack --ctstate INVALID{acct} -j DROP")
        filter_rules[KUBE_FORWARD].append(
            f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark {mark}/{mark} -j ACCEPT')
        filter_rules[KUBE_FORWARD].append(
            '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack '
            "--ctstate RELATED,ESTABLISHED -j ACCEPT")
        nat_top_all = {
            KUBE_NODEPORTS: nat_top[KUBE_NODEPORTS],
            KUBE_SERVICES: nat_top[KUBE_SERVICES] + _nodeports_tail(opts),
            KUBE_MARK_MASQ: [f"-A KUBE-MARK-MASQ -j MARK --or-mark {mark}"],
            KUBE_POSTROUTING: [
                f"-A KUBE-POSTROUTING -m mark ! --mark {mark}/{mark} -j RETURN",
                f"-A KUBE-POSTROUTING -j MARK --xor-mark {mark}",
                '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
                "-j MASQUERADE" + (" --random-fully" if opts.random_fully else "")],
        }
        return {**{("filter", c): filter_rules[c] for c in chains_in_filter},
                **{("nat", c): nat_top_all[c] for c in NAT_TOP_CHAINS}}

    def _prepare(self, state: ProxyState) -> bool:
        """Large-cluster mode for this state (its change drops the cache); drops deleted services."""
        large = state.total_endpoints() > LARGE_CLUSTER_ENDPOINTS_THRESHOLD
        changed_mode = large != self._large_cluster
        if changed_mode:
            self._cache.clear()
            self._large_cluster = large
        for spn in [s for s in self._cache if s not in state.services]:
            del self._cache[spn]
        return changed_mode

    def whole_tables(self, state: ProxyState, saved: dict[str, str]) -> WholeTables:
        """A full sync's input for a restore without --noflush (see merge_with_foreign: the same
        lines, other components' chains and rules kept), produced as it is consumed."""
        return WholeTables(self, state, saved)


class WholeTables:
    """A full sync's restore input (no --noflush), line by line: `lines()` renders the services as
    iptables-restore reads them, so the tool parses while Python renders; `result` is set once
    the lines are exhausted. The same lines as merge_with_foreign(saved, render(state).text), in
    another order: *nat first, each Service's chains declared right before their rules (iptables
    1.8's nft backend finds a chain by name in a 512-bucket hash whose newest entry comes first:
    with all 110k chains declared up front, each rule's lookup walked ~200 names), the top-level
    chains' rules last, then *filter, whose rules come from every Service."""

    def __init__(self, renderer: Renderer, state: ProxyState, saved: dict[str, str]) -> None:
        self.renderer = renderer
        self.state = state
        self.saved = saved
        self.result: RenderResult | None = None

    def lines(self) -> Iterator[str]:
        r, state, opts = self.renderer, self.state, self.renderer.opts
        r._prepare(state)
        large = bool(r._large_cluster)
        own_filter = [*FILTER_TOP_CHAINS, *([KUBE_FIREWALL] if opts.effective_localhost_node_ports else [])]
        foreign = {t: _foreign_part(t, self.saved.get(t, ""), set(own))
                   for t, own in (("nat", NAT_TOP_CHAINS), ("filter", own_filter))}
        yield from _table_head("nat", foreign["nat"], NAT_TOP_CHAINS)
        parts = _TopParts()
        for _, frag in r._fragments(state, large):
            parts.add(frag)
            for c in frag.nat_chains:
                yield f":{c} - [0:0]"
            yield from frag.nat_rules
        top = r._top_level(parts.filter_rules, parts.nat_top)
        r._top = top
        for (table, _), rules in top.items():
            if table == "nat":
                yield from rules
        yield "COMMIT"
        yield from _table_head("filter", foreign["filter"], own_filter)
        for (table, _), rules in top.items():
            if table == "filter":
                yield from rules
        yield "COMMIT"
        self.result = RenderResult("", parts.active, len(state.services), parts.nli, parts.nle)


class _TopParts:
    """What the Services add to the top-level chains, gathered over one pass: their rules in
    KUBE-SERVICES/KUBE-NODEPORTS and the filter chains, the chains in use, and the counts of
    Services with no local endpoints (the sync metrics)."""

    def __init__(self) -> None:
        self.filter_rules: dict[str, list[str]] = {c: [] for c in (*FILTER_TOP_CHAINS, KUBE_FIREWALL)}
        self.nat_top: dict[str, list[str]] = {KUBE_SERVICES: [], KUBE_NODEPORTS: []}
        self.active: set[str] = set()
        self.nli = self.nle = 0

    def add(self, frag: ServiceRules) -> None:
        for chain, rules in frag.filter_rules.items():
            self.filter_rules[chain].extend(rules)
        for chain, rules in frag.nat_top_rules.items():
            self.nat_top[chain].extend(rules)
        self.active.update(frag.nat_chains)
        self.nli += frag.no_local_internal
        self.nle += frag.no_local_external


def _table_head(table: str, foreign: tuple[list[str], list[str], list[str]], own: Iterable[str]) -> Iterator[str]:
    """A whole-table restore's start: built-in chains, the other components' chains, our top-level
    chains, the jump targets nobody declared, then the other components' rules with our jumps."""
    builtin, foreign_chains, foreign_rules = foreign
    yield f"*{table}"
    yield from builtin
    yield from foreign_chains
    for chain in own:
        yield f":{chain} - [0:0]"
    yield from _undeclared_jump_targets(table, {c.split()[0][1:] for c in foreign_chains} | set(own))
    yield from foreign_rules


def _undeclared_jump_targets(table: str, declared: set[str]) -> list[str]:
    """Declarations of the JUMP_RULES targets of `table` not in `declared`: a jump's target must
    exist (KUBE-FIREWALL may not be rendered)."""
    out = []
    for jump in JUMP_RULES:
        if jump.table == table and jump.chain not in declared:
            out.append(f":{jump.chain} - [0:0]")
            declared.add(jump.chain)
    return out


# our own per-service chains and rules, and the rules of the top-level chains we own in both tables,
# in a saved table: skipped before parsing (a full sync over 10,000 Services reads 434k of them back)
_OWN_SAVED_LINES = (tuple(f"-A {p}" for p in SERVICE_CHAIN_PREFIXES) + tuple(f":{p}" for p in SERVICE_CHAIN_PREFIXES)
                    + (f"-A {KUBE_SERVICES} ", f"-A {KUBE_NODEPORTS} "))


def _foreign_part(table: str, saved: str, own: set[str]) -> tuple[list[str], list[str], list[str]]:
    """From `iptables-save -t table`: the built-in chains' declarations (policy kept), the other
    components' chains, and their rules with the missing JUMP_RULES prepended (_with_jumps)."""
    text = "\n".join(line for line in saved.splitlines() if not line.startswith(_OWN_SAVED_LINES))
    return _saved_parts(table, [e for t in restore.parse(text, strict=False) if t.name == table for e in t.entries],
                        own)


def _saved_parts(table: str, saved: Iterable[restore.Entry], own: set[str]) -> tuple[list[str], list[str], list[str]]:
    """A saved table's entries split into the built-in chains' declarations (policy kept), the
    chains that are not ours, and their rules with the missing JUMP_RULES prepended (_with_jumps)."""
    builtin: dict[str, str] = {}
    foreign_chains: list[str] = []
    foreign_rules: list[str] = []
    for e in saved:
        if e.op == ":":
            if e.rest != "-":
                builtin[e.chain] = f":{e.chain} {e.rest} [0:0]"
            elif not _owned(table, e.chain, own):
                foreign_chains.append(f":{e.chain} - [0:0]")
        elif e.op == "-A" and not _owned(table, e.chain, own):
            foreign_rules.append(e.line)
    for name in BUILTIN_CHAINS[table]:
        builtin.setdefault(name, f":{name} ACCEPT [0:0]")
    return list(builtin.values()), foreign_chains, _with_jumps(table, foreign_rules)


# Rules in these chains match disjoint traffic (one destination each), so their order does not matter
# and a changed rule can be deleted and inserted in place; KUBE-SERVICES' last rule stays last.
_ORDER_FREE = {KUBE_SERVICES, KUBE_NODEPORTS, KUBE_EXTERNAL_SERVICES, KUBE_PROXY_FIREWALL}


def _chain_delta(chain: str, old: list[str], new: list[str]) -> list[str] | None:
    """-D/-I lines turning old into new, when that is small and safe; else None (rewrite)."""
    if chain not in _ORDER_FREE or (old and new and old[-1] != new[-1] and chain == KUBE_SERVICES):
        return None
    old_set, new_set = set(old), set(new)
    removed = [r for r in old if r not in new_set]
    added = [r for r in new if r not in old_set]
    if len(removed) + len(added) > 100 or len(removed) + len(added) > len(new) // 2:
        return None
    prefix = f"-A {chain} "
    out = ["-D " + chain + " " + r[len(prefix):] for r in removed]
    out += [f"-I {chain} 1 " + r[len(prefix):] for r in added]
    return out


def _nodeports_tail(opts: RenderOptions) -> list[str]:
    head = ('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last '
            'rule in this chain"')
    if opts.node_ports_match_all:
        dest = "-m addrtype --dst-type LOCAL"
        if not opts.effective_localhost_node_ports:
            dest += " ! -d 127.0.0.0/8"
        return [f"{head} {dest} -j KUBE-NODEPORTS"]
    out = []
    for ip in opts.node_port_ips():
        if ip.startswith("127.") and not opts.effective_localhost_node_ports:
            continue
        out.append(f"{head} -d {ip} -j KUBE-NODEPORTS")
    return out


def render(state: ProxyState, opts: RenderOptions) -> str:
    """The full iptables-restore input kube-proxy would write for this state."""
    return Renderer(opts).render(state).text


OWNED_FILTER = set(FILTER_TOP_CHAINS)
OWNED_NAT = set(NAT_TOP_CHAINS)


def _owned(table: str, chain: str, rendered: set[str]) -> bool:
    if chain in rendered:
        return True
    return chain.startswith(SERVICE_CHAIN_PREFIXES) or chain in (OWNED_FILTER if table == "filter" else OWNED_NAT)


def merge_with_foreign(saved: dict[str, str], rendered: str) -> str:
    """A whole-table restore (no --noflush): kube-proxy's rendered chains plus every other chain and
    rule from `iptables-save` of the same table, verbatim. iptables-nft restores whole tables far
    faster than it declares many chains with --noflush (which grows quadratically), and the other
    components' rules (kubelet, CNI, network policy) are written back as they were. Our stale
    chains are simply left out."""
    out: list[str] = []
    saved_tables = {t.name: t for text in saved.values() for t in restore.parse(text, strict=False)}
    for ours in restore.parse(rendered, strict=False):
        table = ours.name
        chain_lines = [e.line for e in ours.entries if e.op == ":"]
        rule_lines = [e.line for e in ours.entries if e.op == "-A"]
        rendered_chains = set(ours.chains())
        builtin, foreign_chains, foreign_rules = _saved_parts(
            table, saved_tables[table].entries if table in saved_tables else (), rendered_chains)
        foreign_chains += _undeclared_jump_targets(table, rendered_chains | {c.split()[0][1:] for c in foreign_chains})
        out.append(f"*{table}")
        out += builtin
        out += foreign_chains
        out += chain_lines
        out += foreign_rules
        out += rule_lines
        out.append("COMMIT")
    return "\n".join(out) + "\n"


BUILTIN_CHAINS = {"filter": ("INPUT", "FORWARD", "OUTPUT"), "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")}


def _with_jumps(table: str, rules: list[str]) -> list[str]:
    """The built-in chains' rules with every missing JUMP_RULES rule prepended, as upstream's
    EnsureRule(Prepend) would (`-I CHAIN 1` in JUMP_RULES order); rules already present keep their
    place. Done inside the whole-table restore because each separate `iptables -I` makes the kernel
    re-validate the whole jump graph (~0.3 s per insert with 10,000 Services)."""
    present = set(rules)
    out = list(rules)
    for jump in JUMP_RULES:
        if jump.table == table and (line := jump.save_line()) not in present:
            # -I CHAIN 1: before the chain's first rule
            first = next((i for i, r in enumerate(out) if r.split(" ", 2)[1] == jump.source), len(out))
            out.insert(first, line)
            present.add(line)
    return out
