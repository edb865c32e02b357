"""Node networks for e2e clusters that run beside other clusters on the same host."""

from __future__ import annotations

import contextlib
import ipaddress
import random
import subprocess

NODE_NETWORK_POOL = ipaddress.IPv4Network("172.30.64.0/18")


def free_node_networks(count: int = 1) -> list[str]:
    """`count` distinct /24s of NODE_NETWORK_POOL overlapping no host route (other clusters may be up meanwhile);
    picked at random so that concurrent test runs rarely race for the same one."""
    routes = subprocess.run(["ip", "-o", "-4", "route", "show"], capture_output=True, text=True).stdout
    used = []
    for line in routes.splitlines():
        with contextlib.suppress(ValueError, IndexError):
            used.append(ipaddress.IPv4Network(line.split()[0], strict=False))
    candidates = [c for c in NODE_NETWORK_POOL.subnets(new_prefix=24) if not any(c.overlaps(u) for u in used if u.prefixlen)]
    return [str(c) for c in random.sample(candidates, count)]
