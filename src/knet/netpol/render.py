"""NodeRules -> iptables-restore input or an nft script. Pure.

Where: pod traffic leaves and enters pods through the node's bridge `cni0`; knet's node namespaces
set `net.bridge.bridge-nf-call-iptables=1` (net/machines.py), so same-bridge traffic passes the
node's FORWARD hook like routed cross-node traffic does, and Service traffic reaches it already
DNATed to the endpoint by kube-proxy (nat PREROUTING comes first). So the rules hook FORWARD only:
traffic between a pod and its own node (kubelet probes, hostNetwork pods) passes INPUT/OUTPUT and is
not filtered, as upstream allows traffic from the node.

How: a packet of a new connection goes through the egress checks of its source pod (if that pod is
on this node and egress-isolated), then the ingress checks of its destination pod. Replies
(conntrack ESTABLISHED,RELATED) pass before any check.

  (isolated pods in several /24s; within one /24 the first level is the /28 blocks)
  FORWARD -> KNET-NPC: ESTABLISHED,RELATED -> RETURN
                       -> KNET-NPC-EGRESS   (dispatch on the source address), clear the mark
                       -> KNET-NPC-INGRESS  (dispatch on the destination address), clear the mark
  KNET-NPC-INGRESS     -d 10.244.1.0/24 -g KNET-IN-10.244.1.0/24    (one rule per block that holds
  KNET-IN-10.244.1.0/24  -d 10.244.1.16/28 -g KNET-IN-10.244.1.16/28  isolated pods, at most 16 per
  KNET-IN-10.244.1.16/28 -d 10.244.1.18/32 /* x/a */ -g KNET-IN-10.244.1.18   chain: 4 address bits)
  KNET-IN-10.244.1.18  (the pod's chain) /* x/a ingress x/deny */ -j KNET-I-<policy>   (per policy)
                       /* x/a ingress isolated */ DROP unless a policy chain set the mark
  KNET-I-<policy>      /* x/deny ingress rule 1 */ ports -> KNET-S-<peers> (or set the mark)
  KNET-S-<peers>       -s EXCEPT -j RETURN ...; -s CIDR -j MARK (mark bit 0x10000)

Dispatch: the isolated pods' addresses form a trie of chains on 4-bit steps (named after the block
they cover: `KNET-IN-`/`KNET-EG-` + CIDR); a chain dispatches on the next nibble that tells its
pods apart, a chain of at most 16 pods lists them, a block holding one pod goes straight to the
pod's chain (`KNET-IN-`/`KNET-EG-` + IP). So the first packet of a flow is checked against at most
16 rules per level (2 levels for a node's /24, 3 for 1,000 pods over four /24s), whether or not
its pod is isolated, instead of one rule per isolated pod and policy (~7 ns each: 1,000 isolated
pods cost every new connection +40 us, docs/performance.md); every jump is
a goto (`-g`), so when a pod's chain ends (or a packet matches no block) the walk returns straight
to KNET-NPC. A rule of a policy that allows the flow sets mark bit 0x10000 (kube-proxy uses 0x4000
and 0x8000); a pod whose policies set no mark drops the packet.

iptables: no ipsets (`ipset` is not one of knet's dependencies, ipset updates are not part of the
iptables-restore transaction, and iptables-nft cannot use nft sets): each distinct set of peer
addresses is a chain `KNET-S-<hash>` of one rule per address, shared by every policy rule that
names those peers, so the rule count grows with peers + ports, not peers x ports. nftables gets
real sets and verdict maps from pod address to pod chain.

Incremental: iptables_chains gives every chain's rules; the controller restores only the chains
that differ from what it programmed last (and deletes the ones gone), one transaction still.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from dataclasses import dataclass, field

from knet.netpol.compiler import EGRESS, INGRESS, Allow, Guard, IsolatedPod, NodeRules, PolicyRules

MARK = "0x10000"
TOP = "KNET-NPC"
INGRESS_CHAIN = "KNET-NPC-INGRESS"
EGRESS_CHAIN = "KNET-NPC-EGRESS"
JUMP_COMMENT = "knet network policies"
NFT_TABLE = "knet-netpol"
NFT_FAMILY = "ip"
CHAIN_PREFIXES = ("KNET-NPC", "KNET-I-", "KNET-E-", "KNET-S-", "KNET-IN-", "KNET-EG-")
FANOUT = 16          # rules per dispatch chain at most: one level per 4 address bits
NIBBLE = 4


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def policy_chain(policy: str, direction: str) -> str:
    return f"KNET-{'I' if direction == INGRESS else 'E'}-{_hash(policy)}"


def _q(text: str) -> str:
    return f'"{text}"'


def jump_rule() -> str:
    """The FORWARD rule (iptables-save form) that sends pod traffic to the policy chains."""
    return f"-m comment --comment {_q(JUMP_COMMENT)} -j {TOP}"


def _port_args(pm) -> str:
    if pm.port is None:
        return f"-p {pm.protocol}"
    span = f"{pm.port}:{pm.end_port}" if pm.end_port else str(pm.port)
    return f"-p {pm.protocol} -m {pm.protocol} --dport {span}"


def _allow_lines(chain: str, allow: Allow, direction: str, peer_chains: dict[str, list[str]],
                 lines: list[str]) -> None:
    """One rule per port match; the peer addresses sit in a chain of their own (one `-s`/`-d` rule
    per address, the `except`s RETURNing first), shared by every policy naming the same peers: rules
    grow with peers + ports, not peers x ports (what an ipset would give)."""
    local = f"-d {allow.local_ip}/32 " if allow.local_ip else ""
    ports = [_port_args(p) + " " for p in allow.ports] if allow.ports is not None else [""]
    comment = f"-m comment --comment {_q(allow.comment)} "
    if allow.peer is None:
        target = f"MARK --set-xmark {MARK}/{MARK}"
    else:
        target = peer_chain(allow.peer, direction)
        if target not in peer_chains:
            flag = "-s" if direction == INGRESS else "-d"
            peer_chains[target] = ([f"-A {target} {flag} {exc} -j RETURN" for exc in allow.peer.excepts]
                                   + [f"-A {target} {flag} {cidr} -j MARK --set-xmark {MARK}/{MARK}"
                                      for cidr in allow.peer.cidrs])
    for port in ports:
        lines.append(f"-A {chain} {comment}{local}{port}-j {target}")


def peer_chain(peer, direction: str) -> str:
    return f"KNET-S-{_hash(direction + ' ' + ' '.join(peer.cidrs) + ' except ' + ' '.join(peer.excepts))}"


def dispatch_chain(direction: str, block: str) -> str:
    """The chain of an address block (`10.244.1.16/28`) or of one pod address (`10.244.1.18`);
    at most 8 + 18 characters (iptables allows 28)."""
    return f"KNET-{'IN' if direction == INGRESS else 'EG'}-{block}"


def _pod_chain_lines(chain: str, pods: list[IsolatedPod], direction: str) -> list[str]:
    """A pod's checks: each policy selecting it until one set the mark, then DROP if none did
    (several pods with one address, as while one terminates: each pod's checks in turn)."""
    lines = []
    for pod in pods:
        for policy in pod.policies:
            lines.append(f"-A {chain} -m comment --comment {_q(f'{pod.pod} {direction} {policy}')} "
                         f"-m mark ! --mark {MARK}/{MARK} -j {policy_chain(policy, direction)}")
        lines.append(f"-A {chain} -m comment --comment {_q(f'{pod.pod} {direction} isolated')} "
                     f"-m mark ! --mark {MARK}/{MARK} -j DROP")
    return lines


def guard_chain(direction: str) -> str:
    return f"KNET-NPC-GUARD-{'IN' if direction == INGRESS else 'EG'}"


def _guard_comment(guard: Guard) -> str:
    names = ", ".join(guard.pending[:5]) + (f" +{len(guard.pending) - 5}" if len(guard.pending) > 5 else "")
    return f"{guard.direction} pending isolated: {names}"


def _guard_lines(guard: Guard) -> tuple[str, list[str]]:
    """(the KNET-NPC rule sending the node's podCIDR to the guard, the guard chain's rules): known
    pod addresses return to the normal dispatch, any other address of the podCIDR is dropped."""
    chain, flag = guard_chain(guard.direction), "-d" if guard.direction == INGRESS else "-s"
    body = [f"-A {chain} {flag} {ip}/32 -j RETURN" for ip in guard.known_ips]
    body.append(f"-A {chain} -m comment --comment {_q(_guard_comment(guard))} -j DROP")
    return f"-A {TOP} {flag} {guard.pod_cidr} -j {chain}", body


def _dispatch(root: str, pods: list[IsolatedPod], direction: str, chains: dict[str, list[str]]) -> None:
    """The trie of chains from `root` down to each isolated pod's chain (see the module doc)."""
    flag = "-d" if direction == INGRESS else "-s"
    by_ip: dict[int, list[IsolatedPod]] = {}
    for pod in pods:
        by_ip.setdefault(int(ipaddress.IPv4Address(pod.ip)), []).append(pod)

    def fill(chain: str, prefix: int, addrs: list[int]) -> None:
        lines = chains.setdefault(chain, [])
        if len(addrs) <= FANOUT:  # few enough: list the pods
            groups = [(32, [a]) for a in addrs]
        else:  # the first nibble below `prefix` that tells them apart
            step = prefix + NIBBLE
            while len({a >> (32 - step) for a in addrs}) == 1:
                step += NIBBLE
            split: dict[int, list[int]] = {}
            for a in addrs:
                split.setdefault(a >> (32 - step), []).append(a)
            groups = [(step, members) for members in split.values()]
        for length, members in groups:
            if len(members) == 1:
                ip = str(ipaddress.IPv4Address(members[0]))
                names = ", ".join(p.pod for p in by_ip[members[0]])
                lines.append(f"-A {chain} {flag} {ip}/32 -m comment --comment {_q(names)} "
                             f"-g {dispatch_chain(direction, ip)}")
                continue
            block = ipaddress.IPv4Network((members[0], length), strict=False)
            child = dispatch_chain(direction, str(block))
            lines.append(f"-A {chain} {flag} {block} -g {child}")
            fill(child, length, members)

    chains[root] = []
    addrs = sorted(by_ip)
    fill(root, 0, addrs)
    for addr in addrs:
        chain = dispatch_chain(direction, str(ipaddress.IPv4Address(addr)))
        chains[chain] = _pod_chain_lines(chain, by_ip[addr], direction)


def iptables_chains(rules: NodeRules) -> dict[str, list[str]]:
    """Every KNET chain of the filter table and its rules (iptables-restore `-A` lines), in a
    deterministic order: what the node's filter table must hold."""
    guards = {g.direction: _guard_lines(g) for g in rules.guards}
    chains: dict[str, list[str]] = {TOP: [
        f"-A {TOP} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        *(jump for jump, _ in guards.values()),   # only while a pod a policy isolates has no address yet
        f"-A {TOP} -j {EGRESS_CHAIN}",
        f"-A {TOP} -j MARK --set-xmark 0x0/{MARK}",  # what the source's policies allowed is not the destination's
        f"-A {TOP} -j {INGRESS_CHAIN}",
        f"-A {TOP} -j MARK --set-xmark 0x0/{MARK}",
    ]}
    dispatch: dict[str, list[str]] = {}
    _dispatch(INGRESS_CHAIN, rules.ingress, INGRESS, dispatch)
    _dispatch(EGRESS_CHAIN, rules.egress, EGRESS, dispatch)
    chains[INGRESS_CHAIN] = dispatch.pop(INGRESS_CHAIN)
    chains[EGRESS_CHAIN] = dispatch.pop(EGRESS_CHAIN)
    peer_chains: dict[str, list[str]] = {}
    for pr in rules.policies:
        name = policy_chain(pr.policy, pr.direction)
        body: list[str] = []
        if not pr.allows:  # a policy that allows nothing: a chain that says so
            body.append(f"-A {name} -m comment --comment {_q(f'{pr.policy} {pr.direction} allows nothing')} -j RETURN")
        for allow in pr.allows:
            _allow_lines(name, allow, pr.direction, peer_chains, body)
        chains[name] = body
    chains.update(peer_chains)
    chains.update(dispatch)
    for direction, (_, body) in guards.items():
        chains[guard_chain(direction)] = body
    return chains


def restore_text(chains: dict[str, list[str]], write: list[str] | None = None, stale: list[str] = ()) -> str:  # type: ignore[assignment]
    """The filter-table restore (with --noflush) of `write` (default: every chain; each declared
    chain is flushed and refilled) deleting `stale`, one transaction."""
    write = list(chains) if write is None else write
    lines = ["*filter"] + [f":{c} - [0:0]" for c in list(write) + list(stale)]
    for c in write:
        lines += chains[c]
    lines += [f"-X {c}" for c in stale] + ["COMMIT"]
    return "\n".join(lines) + "\n"


def stale_chains(existing_chains: set[str], chains: dict[str, list[str]]) -> list[str]:
    return sorted(c for c in existing_chains if c not in chains and c.startswith(CHAIN_PREFIXES))


def render_iptables(rules: NodeRules, existing_chains: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """The filter-table restore (with --noflush) that replaces every KNET chain at once: declared
    chains are flushed and refilled, chains gone (`existing_chains` minus the new ones) are
    deleted, all in one transaction. The FORWARD jump is ensured apart (controller)."""
    chains = iptables_chains(rules)
    return restore_text(chains, None, stale_chains(existing_chains, chains))


def cleanup_iptables(existing_chains: set[str], jump_present: bool) -> str:
    chains = sorted(c for c in existing_chains if c.startswith(CHAIN_PREFIXES))
    lines = ["*filter"]
    if jump_present:
        lines.append(f"-D FORWARD {jump_rule()}")
    lines += [f":{c} - [0:0]" for c in chains] + [f"-X {c}" for c in chains] + ["COMMIT"]
    return "\n".join(lines) + "\n"


# -- nftables ---------------------------------------------------------------------------------

def _nft_chain(policy: str, direction: str) -> str:
    return f"{direction}-{_hash(policy).lower()}"


def _nft_ports(allow: Allow) -> list[str]:
    if allow.ports is None:
        return [""]
    out = []
    for p in allow.ports:
        if p.port is None:
            out.append(f"meta l4proto {p.protocol} ")
        else:
            span = f"{p.port}-{p.end_port}" if p.end_port else str(p.port)
            out.append(f"{p.protocol} dport {span} ")
    return out


def _nft_peer(t: str, peer, sets: dict[str, list[str]]) -> str:
    """A peer's addresses: inline when one, else a named set shared by every rule naming them
    (anonymous sets per rule cost the kernel one set each: 1,000 policies took minutes to load)."""
    if len(peer.cidrs) == 1:
        return peer.cidrs[0]
    name = f"peers-{_hash(' '.join(peer.cidrs)).lower()}"
    if name not in sets:
        sets[name] = [f"add set {t} {name} {{ type ipv4_addr ; flags interval ; }}",
                      f"add element {t} {name} {{ {', '.join(peer.cidrs)} }}"]
    return f"@{name}"


def _nft_allow(table: str, chain: str, allow: Allow, direction: str, sets: dict[str, list[str]]) -> list[str]:
    field_ = "saddr" if direction == INGRESS else "daddr"
    local = f"ip daddr {allow.local_ip} " if allow.local_ip else ""
    peer = ""
    if allow.peer is not None:
        peer = f"ip {field_} {_nft_peer(table, allow.peer, sets)} "
        if allow.peer.excepts:
            peer += f"ip {field_} != {{ {', '.join(allow.peer.excepts)} }} "
    comment = f'comment "{allow.comment}"'
    return [f"add rule {table} {chain} {local}{peer}{port}meta mark set meta mark or {MARK} return {comment}"
            for port in _nft_ports(allow)]


def _nft_pod_chain(direction: str, pod: IsolatedPod) -> str:
    return f"pod-{direction}-{_hash(pod.pod).lower()}"


@dataclass
class NftTable:
    """Table `ip knet-netpol` as objects, so two of them can be compared: peer sets (named after
    their contents), chains (their `add chain` line and rules), and the isolated pods' map elements."""
    sets: dict[str, list[str]] = field(default_factory=dict)           # name -> add set, add element
    chains: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # name -> (add chain, rules)
    elements: dict[str, dict[str, str]] = field(default_factory=dict)  # map -> pod IP -> its chain
    guards: list[str] = field(default_factory=list)   # forward chain rules before the dispatch maps


def nft_table(rules: NodeRules) -> NftTable:
    t = f"{NFT_FAMILY} {NFT_TABLE}"
    out = NftTable(elements={f"{EGRESS}-pods": {}, f"{INGRESS}-pods": {}})
    for pr in rules.policies:
        name = _nft_chain(pr.policy, pr.direction)
        body: list[str] = []
        for allow in pr.allows:
            body += _nft_allow(t, name, allow, pr.direction, out.sets)
        out.chains[name] = (f"add chain {t} {name} {{ comment \"{pr.policy} {pr.direction}\" ; }}", body)
    for direction, pods in ((EGRESS, rules.egress), (INGRESS, rules.ingress)):
        for pod in pods:
            chain = _nft_pod_chain(direction, pod)
            body = [f"add rule {t} {chain} meta mark & {MARK} == 0 jump {_nft_chain(policy, direction)}"
                    for policy in pod.policies]
            body.append(f"add rule {t} {chain} meta mark & {MARK} == 0 counter drop comment \"{pod.pod} {direction} isolated\"")
            body.append(f"add rule {t} {chain} meta mark set meta mark & 0xfffeffff")
            out.chains[chain] = (f"add chain {t} {chain} {{ comment \"{pod.pod} {direction}\" ; }}", body)
            out.elements[f"{direction}-pods"].setdefault(pod.ip, chain)  # one address, one pod (the first)
    for guard in rules.guards:
        field_ = "daddr" if guard.direction == INGRESS else "saddr"
        known = f"ip {field_} != {{ {', '.join(guard.known_ips)} }} " if guard.known_ips else ""
        out.guards.append(f"add rule {t} forward ip {field_} {guard.pod_cidr} {known}counter drop "
                          f"comment \"{_guard_comment(guard)}\"")
    return out


def _nft_element(t: str, vmap: str, ip: str, chain: str) -> str:
    return f"add element {t} {vmap} {{ {ip} : jump {chain} }}"


def render_nftables(rules: NodeRules) -> str:
    """One atomic `nft -f` script that replaces table `ip knet-netpol`: a forward base chain, maps
    from isolated pods' IPs to their chains, one chain per policy and direction."""
    return nft_script(nft_table(rules))


def nft_script(table: NftTable) -> str:
    t = f"{NFT_FAMILY} {NFT_TABLE}"
    lines = [f"add table {t}", f"delete table {t}", f"add table {t}",
             f"add chain {t} forward {{ type filter hook forward priority filter - 5 ; policy accept ; }}",
             f"add map {t} egress-pods {{ type ipv4_addr : verdict ; }}",
             f"add map {t} ingress-pods {{ type ipv4_addr : verdict ; }}"]
    for set_lines in table.sets.values():
        lines += set_lines
    for declare, body in table.chains.values():
        lines += [declare, *body]
    for vmap, elements in table.elements.items():
        lines += [_nft_element(t, vmap, ip, chain) for ip, chain in elements.items()]
    lines += _nft_forward_rules(table)
    return "\n".join(lines) + "\n"


def _nft_forward_rules(table: NftTable) -> list[str]:
    t = f"{NFT_FAMILY} {NFT_TABLE}"
    return [f"add rule {t} forward ct state established,related accept", *table.guards,
            f"add rule {t} forward ip saddr vmap @egress-pods",
            f"add rule {t} forward ip daddr vmap @ingress-pods"]


def nft_update(old: NftTable, new: NftTable) -> str:
    """The `nft -f` script (one transaction) that turns table `old`, as programmed, into `new`:
    new sets and chains, changed chains flushed and refilled, map elements replaced, then the
    chains and sets gone flushed and deleted (nothing refers to them by then). "" when equal."""
    t = f"{NFT_FAMILY} {NFT_TABLE}"
    lines = [line for name, set_lines in new.sets.items() if name not in old.sets for line in set_lines]
    changed = [c for c, v in new.chains.items() if old.chains.get(c) != v]
    lines += [new.chains[c][0] for c in changed if c not in old.chains]  # every new chain before any jump to it
    for c in changed:
        if c in old.chains:
            lines.append(f"flush chain {t} {c}")
        lines += new.chains[c][1]
    for vmap, elements in new.elements.items():
        before = old.elements.get(vmap, {})
        lines += [f"delete element {t} {vmap} {{ {ip} }}" for ip, chain in before.items() if elements.get(ip) != chain]
        lines += [_nft_element(t, vmap, ip, chain) for ip, chain in elements.items() if before.get(ip) != chain]
    # pod chains jump to policy chains: delete them first
    gone = sorted((c for c in old.chains if c not in new.chains), key=lambda c: (not c.startswith("pod-"), c))
    lines += [f"flush chain {t} {c}" for c in gone] + [f"delete chain {t} {c}" for c in gone]
    lines += [f"delete set {t} {name}" for name in old.sets if name not in new.sets]
    if old.guards != new.guards:  # the forward chain refilled in the same transaction
        lines += [f"flush chain {t} forward", *_nft_forward_rules(new)]
    return "\n".join(lines) + "\n" if lines else ""


def cleanup_nftables() -> str:
    t = f"{NFT_FAMILY} {NFT_TABLE}"
    return f"add table {t}\ndelete table {t}\n"


def policy_rules_text(pr: PolicyRules) -> str:
    return f"{pr.policy} {pr.direction}: {len(pr.allows)} allow rule(s)"
