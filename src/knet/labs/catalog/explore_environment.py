"""Explore the environment (the CKA networking section's first lab): the nodes, the
controlplane's address and interface, its default route, the scheduler's port. Read from the
live cluster and from inside the controlplane node (`ip`, `ss`), as a kubeadm node shows them."""

from __future__ import annotations

from knet.labs import kit
from knet.labs.access import ClusterAccess, LabClusterError
from knet.labs.facts import parse_default_gateway, parse_ip_addr, parse_listeners
from knet.labs.model import (
    Facts,
    Lab,
    Question,
    Verdict,
    judge_choice,
    judge_count,
    normalise_word,
    right,
    wrong,
)


def _node_cmd(cluster: ClusterAccess, node: str, argv: list[str]) -> str:
    out = cluster.node_run(node, argv)
    if out.rc != 0:
        raise LabClusterError(f"{' '.join(argv)} in node {node}: {out.output}")
    return out.stdout


def observe_nodes(cluster: ClusterAccess, answer: str | None) -> Facts:
    cp = kit.control_plane_node(cluster)
    return {"addresses": kit.node_addresses(cluster), "controlplane": cp}


def judge_node_count(facts: Facts, answer: str | None) -> Verdict:
    return judge_count(len(facts["addresses"]), answer, "nodes", "kubectl get nodes")


def judge_cp_ip(facts: Facts, answer: str | None) -> Verdict:
    want = facts["addresses"][facts["controlplane"]]
    got = normalise_word(answer)
    if got == want:
        return right(f"{facts['controlplane']}'s InternalIP is {want}")
    other = [n for n, ip in facts["addresses"].items() if ip == got]
    if other:
        return wrong(f"{got} is node {other[0]}'s address, not {facts['controlplane']}'s")
    return wrong(f"{got or 'that'} is not {facts['controlplane']}'s InternalIP (kubectl get nodes -o wide)")


def observe_interface(cluster: ClusterAccess, answer: str | None) -> Facts:
    cp = kit.control_plane_node(cluster)
    ip = kit.node_addresses(cluster)[cp]
    ifaces = parse_ip_addr(_node_cmd(cluster, cp, ["ip", "-o", "-4", "addr", "show"]))
    return {"controlplane": cp, "ip": ip, "interfaces": {name: str(i) for name, i in ifaces},
            "holder": next((name for name, i in ifaces if str(i.ip) == ip), None)}


def judge_interface(facts: Facts, answer: str | None) -> Verdict:
    if facts["holder"] is None:
        return wrong(f"no interface of {facts['controlplane']} holds {facts['ip']}")
    misses = {name: f"it holds {addr}, not the node's InternalIP {facts['ip']}"
              for name, addr in facts["interfaces"].items() if name != facts["holder"]}
    return judge_choice(facts["holder"], answer, f"the interface holding {facts['ip']} on {facts['controlplane']}",
                        near_misses=misses)


def observe_gateway(cluster: ClusterAccess, answer: str | None) -> Facts:
    cp = kit.control_plane_node(cluster)
    return {"controlplane": cp,
            "gateway": parse_default_gateway(_node_cmd(cluster, cp, ["ip", "route", "show", "default"]))}


def judge_gateway(facts: Facts, answer: str | None) -> Verdict:
    if not facts["gateway"]:
        return wrong(f"{facts['controlplane']} has no default route")
    got = normalise_word(answer)
    if got == facts["gateway"]:
        return right(f"{facts['controlplane']}'s default route goes via {got}")
    return wrong(f"{got or 'that'} is not the gateway of {facts['controlplane']}'s default route")


def observe_scheduler_port(cluster: ClusterAccess, answer: str | None) -> Facts:
    cp = kit.control_plane_node(cluster)
    listeners = parse_listeners(_node_cmd(cluster, cp, ["ss", "-lntp"]))
    return {"ports": sorted({port for _addr, port, proc in listeners if proc == "kube-scheduler"}),
            "others": {port: proc for _addr, port, proc in listeners if proc != "kube-scheduler"}}


def judge_scheduler_port(facts: Facts, answer: str | None) -> Verdict:
    if not facts["ports"]:
        return wrong("kube-scheduler listens on no TCP port in the controlplane node")
    got = normalise_word(answer)
    if got.isdigit() and int(got) in facts["ports"]:
        return right(f"kube-scheduler listens on {got}")
    if got.isdigit() and int(got) in facts["others"]:
        return wrong(f"port {got} is {facts['others'][int(got)]}'s, not kube-scheduler's")
    return wrong(f'"{got}" is not a port kube-scheduler listens on')


LAB = Lab(
    name="explore-environment",
    title="Explore the environment: nodes, interfaces, routes, ports",
    summary="""
Look around the cluster with kubectl and from inside the controlplane node
(knet ssh controlplane, then ip addr, ip route, ss -lntp).""",
    questions=(
        Question("nodes", "How many nodes are part of this cluster?", observe_nodes, judge_node_count,
                 hints=("kubectl get nodes",)),
        Question("controlplane-ip", "What is the Internal IP address of the controlplane node?",
                 observe_nodes, judge_cp_ip, hints=("kubectl get nodes -o wide",)),
        Question("interface", "Which network interface of the controlplane node holds that address "
                 "(the node's link to the cluster)?",
                 observe_interface, judge_interface,
                 hints=("knet ssh controlplane -- ip addr: find the interface with the InternalIP.",)),
        Question("gateway", "If a process on the controlplane node sent a packet to an address outside the "
                 "cluster, which gateway would it go through?",
                 observe_gateway, judge_gateway, hints=("knet ssh controlplane -- ip route show default",)),
        Question("scheduler-port", "On which TCP port does kube-scheduler listen on the controlplane node?",
                 observe_scheduler_port, judge_scheduler_port,
                 hints=("knet ssh controlplane -- ss -lntp | grep scheduler",)),
    ),
)
