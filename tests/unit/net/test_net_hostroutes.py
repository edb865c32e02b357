"""The host's side of a cluster network (knet.net.hostroutes): routes into the cluster, the leak
guard rule, and their removal. The iproute2 JSON below is what `ip -j` printed on Debian 12
(iproute2 6.1) for a cluster bridge; FakeIp keeps rules and routes as the kernel would for the
few commands hostroutes uses."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence

import pytest

from knet.net import hostroutes

BR = "kn51bd95br"
OTHER = "knfeef5cbr"


class FakeIp:
    """The kernel's rule list and main table, driven by the `ip` argv hostroutes sends."""

    def __init__(self, rules: list[dict] | None = None, routes: list[dict] | None = None) -> None:
        self.rules = rules if rules is not None else [
            {"priority": 0, "src": "all", "table": "local"},
            {"priority": 32766, "src": "all", "table": "main"},
            {"priority": 32767, "src": "all", "table": "default"},
        ]
        self.routes = routes if routes is not None else [
            {"dst": "172.30.1.0/24", "dev": BR, "protocol": "kernel", "scope": "link", "prefsrc": "172.30.1.1"},
        ]
        self.calls: list[list[str]] = []
        self.sysctls: list[str] = []

    def __call__(self, argv: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.calls.append(argv)
        if argv[0] == "sysctl":
            self.sysctls.append(argv[-1])
            return subprocess.CompletedProcess(argv, 0, "", "")
        assert argv[0] == "ip"
        args = argv[1:]
        out, rc = "", 0
        if args[:4] == ["-j", "-4", "rule", "show"]:
            out = json.dumps(self.rules)
        elif args[:2] == ["rule", "add"]:
            opts = dict(zip(args[2:-1:2], args[3:-1:2], strict=True))
            self.rules.append({"priority": int(opts["priority"]), "src": "all", "iif": opts["iif"], "action": args[-1]})
            self.rules.sort(key=lambda r: r["priority"])
        elif args[:2] == ["rule", "del"]:
            opts = dict(zip(args[2::2], args[3::2], strict=True))
            match = [r for r in self.rules if r.get("iif") == opts["iif"] and r["priority"] == int(opts["priority"])]
            if match:
                self.rules.remove(match[0])
            else:
                rc = 2
        elif args[:4] == ["-j", "-4", "route", "show"]:
            dev = args[args.index("dev") + 1]
            out = json.dumps([{k: v for k, v in r.items() if k != "dev"} for r in self.routes if r["dev"] == dev])
        elif args[:2] == ["route", "replace"]:
            dst, via, dev = args[2], args[4], args[6]
            self.routes = [r for r in self.routes if r["dst"] != dst]
            self.routes.append({"dst": dst, "gateway": via, "dev": dev, "flags": []})
        elif args[:2] == ["route", "del"]:
            before = len(self.routes)
            self.routes = [r for r in self.routes if not (r["dst"] == args[2] and r["dev"] == args[4])]
            rc = 0 if len(self.routes) < before else 2
        else:
            raise AssertionError(f"unexpected command {argv}")
        return subprocess.CompletedProcess(argv, rc, out, "" if rc == 0 else "RTNETLINK answers: No such file")


def test_routes_go_to_the_controlplane_on_the_bridge():
    assert hostroutes.route_args(BR, "172.30.1.2", ["10.244.0.0/16", "10.96.0.0/12"]) == [
        ["route", "replace", "10.244.0.0/16", "via", "172.30.1.2", "dev", BR],
        ["route", "replace", "10.96.0.0/12", "via", "172.30.1.2", "dev", BR],
    ]


def test_guard_rule_is_looked_up_after_local_and_before_main():
    args = hostroutes.guard_rule_args(BR)
    assert args == ["rule", "add", "iif", BR, "priority", str(hostroutes.LEAK_GUARD_PRIORITY), "prohibit"]
    assert 0 < hostroutes.LEAK_GUARD_PRIORITY < 32766


def test_guard_installed_once_then_forwarding_on_the_bridge():
    ip = FakeIp()
    hostroutes.install_leak_guard(BR, run=ip)
    hostroutes.install_leak_guard(BR, run=ip)
    assert [r for r in ip.rules if r.get("iif") == BR] == [
        {"priority": hostroutes.LEAK_GUARD_PRIORITY, "src": "all", "iif": BR, "action": "prohibit"}]
    assert ip.sysctls == [f"net.ipv4.conf.{BR}.forwarding=1"] * 2
    first_sysctl = next(i for i, c in enumerate(ip.calls) if c[0] == "sysctl")
    assert ["ip", *hostroutes.guard_rule_args(BR)] in ip.calls[:first_sysctl]


def test_no_forwarding_when_the_rule_does_not_appear():
    class RuleIgnored(FakeIp):
        def __call__(self, argv, stdin=None):
            if list(argv[1:3]) == ["rule", "add"]:
                return subprocess.CompletedProcess(list(argv), 0, "", "")  # says yes, does nothing
            return super().__call__(argv, stdin)

    ip = RuleIgnored()
    with pytest.raises(RuntimeError, match="not enabling forwarding"):
        hostroutes.install_leak_guard(BR, run=ip)
    assert ip.sysctls == []


def test_rules_of_bridge_include_a_detached_one_and_leave_other_bridges():
    # `ip -j rule` after the bridge was deleted (a kill -9'd cluster whose links are gone)
    rules = [
        {"priority": 0, "src": "all", "table": "local"},
        {"priority": 100, "src": "all", "iif": BR, "iif_detached": None, "action": "prohibit"},
        {"priority": 100, "src": "all", "iif": OTHER, "action": "prohibit"},
        {"priority": 32766, "src": "all", "table": "main"},
    ]
    assert hostroutes.rules_of_bridge(rules, BR) == [["rule", "del", "priority", "100", "iif", BR]]
    assert not hostroutes.has_guard(rules[:1], BR) and hostroutes.has_guard(rules, OTHER)


def test_added_routes_skip_the_kernels_connected_route():
    routes = [
        {"dst": "10.244.0.0/16", "gateway": "172.30.1.2", "flags": []},
        {"dst": "10.96.0.0/12", "gateway": "172.30.1.2", "flags": []},
        {"dst": "172.30.1.0/24", "protocol": "kernel", "scope": "link", "prefsrc": "172.30.1.1", "flags": []},
        {"type": "local", "dst": "172.30.1.1", "table": "local", "protocol": "kernel", "scope": "host"},
        {"dst": "10.9.0.0/16", "gateway": "172.30.1.3", "table": "7", "flags": []},
    ]
    assert hostroutes.added_routes_of_bridge(routes, BR) == [
        ["route", "del", "10.244.0.0/16", "dev", BR],
        ["route", "del", "10.96.0.0/12", "dev", BR],
        ["route", "del", "10.9.0.0/16", "dev", BR, "table", "7"],
    ]


def test_remove_host_side_leaves_nothing_of_the_bridge_and_everything_else():
    ip = FakeIp()
    hostroutes.install_leak_guard(OTHER, run=ip)
    hostroutes.route_into_cluster(OTHER, "172.30.0.2", ["10.245.0.0/16"], run=ip)
    other_state = (list(ip.rules), list(ip.routes))
    hostroutes.install_leak_guard(BR, run=ip)
    hostroutes.route_into_cluster(BR, "172.30.1.2", ["10.244.0.0/16", "10.96.0.0/12"], run=ip)
    done = hostroutes.remove_host_side(BR, run=ip)
    assert done == ["route 10.244.0.0/16", "route 10.96.0.0/12", f"rule iif {BR}"]
    # forwarding off before the rule goes
    off = ip.calls.index(["sysctl", "-qw", f"net.ipv4.conf.{BR}.forwarding=0"])
    assert off < ip.calls.index(["ip", "rule", "del", "priority", "100", "iif", BR])
    assert (ip.rules, ip.routes) == other_state
    assert hostroutes.remove_host_side(BR, run=ip) == []  # idempotent


def test_route_failure_is_an_error():
    def refuse(argv, stdin=None):
        return subprocess.CompletedProcess(list(argv), 2, "", "Error: Nexthop has invalid gateway.")

    with pytest.raises(RuntimeError, match="invalid gateway"):
        hostroutes.route_into_cluster(BR, "172.30.9.2", ["10.244.0.0/16"], run=refuse)


def test_host_access_masquerades_only_the_hosts_traffic_leaving_by_eth0():
    text = hostroutes.host_access_restore("172.30.1.1", "10.244.0.0/16")
    assert text.startswith("*nat\n:KNET-HOST-ACCESS - [0:0]\n") and text.endswith("COMMIT\n")
    rule = text.splitlines()[2]
    assert rule.startswith("-A KNET-HOST-ACCESS -s 172.30.1.1/32 -d 10.244.0.0/16 -o eth0 ")
    assert rule.endswith("-j MASQUERADE")


def test_host_access_adds_its_jump_once():
    calls: list[list[str]] = []
    has_jump = {"value": False}

    def iptables(argv, stdin=None):
        argv = list(argv)
        calls.append(argv)
        if "-C" in argv:
            return subprocess.CompletedProcess(argv, 0 if has_jump["value"] else 1, "", "")
        if "-A" in argv:
            has_jump["value"] = True
        return subprocess.CompletedProcess(argv, 0, "", "")

    hostroutes.install_host_access("knet-a-controlplane", "172.30.1.1", "10.244.0.0/16", run=iptables)
    hostroutes.install_host_access("knet-a-controlplane", "172.30.1.1", "10.244.0.0/16", run=iptables)
    appends = [c for c in calls if "-A" in c]
    assert appends == [["ip", "netns", "exec", "knet-a-controlplane", "iptables", "-w", "-t", "nat", "-A",
                        "POSTROUTING", "-j", "KNET-HOST-ACCESS"]]


def test_nodes_get_an_unreachable_route_to_each_nameserver_they_cannot_reach():
    text = "nameserver 10.255.255.53\nnameserver 127.0.0.53\nnameserver 172.30.1.1\nnameserver 10.255.255.53\n" \
           "nameserver fd00::1\n#nameserver 1.1.1.1\n"
    assert hostroutes.nameserver_addresses(text) == ["10.255.255.53", "127.0.0.53", "172.30.1.1", "10.255.255.53"]
    # loopback is the node's own; the node network is on the link; each once
    assert hostroutes.node_nameserver_routes(hostroutes.nameserver_addresses(text), "172.30.1.0/24") == [
        "route replace unreachable 10.255.255.53/32"]
