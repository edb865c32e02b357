"""RBAC authorizer benchmark: the cost of one authorization decision, as the apiserver asks it
on every request.

    python bench/rbac_bench.py [--namespaces 100] [--users 200] [--requests 200000] [--json]

The policy: kube-apiserver's bootstrap policy (aggregated), kubeadm's objects, and per
namespace a RoleBinding of `edit` to a user and of `view` to a group, plus one ServiceAccount
binding. The request mix is a busy apiserver's: GET/LIST/WATCH of pods, services, configmaps,
secrets (some denied) by users and service accounts in their namespaces (and now and then in
another one), and kube-proxy's cluster-wide lists, with object names that vary. Reported: ns per decision when answered from the decision cache (`hit`), when
the subject's rules are cached but the decision is new (`miss`: another object name), and the
cost of gathering one subject's rules after an RBAC write (`resolve`). Budget: the apiserver
serves ~20k GET/s (50 us each); authorization should stay under 10 % of that, 5 us.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from knet.api.auth import User
from knet.api.authz import Attributes
from knet.api.authz.aggregation import aggregate_all
from knet.api.authz.bootstrappolicy import bootstrap_policy
from knet.api.authz.rbac import RBACAuthorizer, StaticRbacSource
from knet.cluster import addons

G = "rbac.authorization.k8s.io"


def policy(namespaces: int) -> list[dict]:
    objs = bootstrap_policy() + [o for _, _, o in addons.kubeadm_rbac_objects() + addons.kube_proxy_rbac_objects()
                                 + addons.coredns_rbac_objects()]
    roles = aggregate_all([o for o in objs if o["kind"] == "ClusterRole"])
    objs = roles + [o for o in objs if o["kind"] != "ClusterRole"]
    for i in range(namespaces):
        ns = f"ns{i}"
        for name, role, subject in (
                ("editors", "edit", {"kind": "User", "apiGroup": G, "name": f"user{i}"}),
                ("viewers", "view", {"kind": "Group", "apiGroup": G, "name": f"team{i % 10}"}),
                ("robot", "edit", {"kind": "ServiceAccount", "name": "robot", "namespace": ns})):
            objs.append({"kind": "RoleBinding", "metadata": {"name": name, "namespace": ns},
                         "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": role}, "subjects": [subject]})
    return objs


def requests(count: int, namespaces: int, users: int, rnd: random.Random) -> list[Attributes]:
    out = []
    for _ in range(count):
        i = rnd.randrange(namespaces)
        who = rnd.random()
        ns = f"ns{i}" if rnd.random() < 0.9 else f"ns{rnd.randrange(namespaces)}"
        if who < 0.4:
            user = User(f"user{i}", groups=(f"team{i % 10}", "system:authenticated"))
        elif who < 0.8:
            user = User(f"system:serviceaccount:ns{i}:robot",
                        groups=("system:serviceaccounts", f"system:serviceaccounts:ns{i}", "system:authenticated"))
        else:
            user, ns = User("system:kube-proxy", groups=("system:authenticated",)), ""
        verb = rnd.choice(("get", "get", "list", "watch"))
        resource = rnd.choice(("pods", "services", "configmaps", "secrets", "endpointslices"))
        group = "discovery.k8s.io" if resource == "endpointslices" else ""
        name = f"obj{rnd.randrange(50)}" if verb == "get" else ""
        out.append(Attributes(user=user, verb=verb, namespace=ns, api_group=group, resource=resource, name=name))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rnd = random.Random(1)
    source = StaticRbacSource(policy(args.namespaces))
    authz = RBACAuthorizer(source)
    reqs = requests(args.requests, args.namespaces, args.users, rnd)

    # resolve: every subject's rules gathered once (what an RBAC write costs, per active subject).
    subjects = list({(a.user.name, a.user.groups, a.namespace): a for a in reqs}.values())
    t0 = time.perf_counter()
    for a in subjects:
        authz.resolved(a.user, a.namespace)
    resolve_ns = (time.perf_counter() - t0) / len(subjects) * 1e9

    # miss: subject rules cached, decisions new (decision cache cleared before each request).
    allowed = 0
    t0 = time.perf_counter()
    for a in reqs:
        authz._decisions.clear()
        allowed += authz.authorize(a).allowed
    miss_ns = (time.perf_counter() - t0) / len(reqs) * 1e9

    # hit: the same mix again with the decision cache warm.
    for a in reqs:
        authz.authorize(a)
    t0 = time.perf_counter()
    for a in reqs:
        authz.authorize(a)
    hit_ns = (time.perf_counter() - t0) / len(reqs) * 1e9

    result = {"subjects": len(subjects), "objects": len(source.cluster_role_bindings()) + sum(len(source.role_bindings(f"ns{i}"))
                                                                    for i in range(args.namespaces)),
              "requests": len(reqs), "allowed_fraction": round(allowed / len(reqs), 3),
              "hit_ns": round(hit_ns), "miss_ns": round(miss_ns), "resolve_ns": round(resolve_ns),
              "budget_ns": 5000}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"bindings: {result['objects']}, requests: {len(reqs)} ({result['allowed_fraction']:.0%} allowed)")
        print(f"decision, cached:        {hit_ns:8.0f} ns")
        print(f"decision, new:           {miss_ns:8.0f} ns  (subject's rules cached)")
        print(f"subject rules, resolved: {resolve_ns:8.0f} ns  (after an RBAC write, once per subject;"
              f" {len(subjects)} subjects)")
        print("budget per decision:        5000 ns  (10 % of a 50 us GET)")


if __name__ == "__main__":
    main()
