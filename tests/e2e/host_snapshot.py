"""What this host holds, as sets of text lines, to compare before `knet up` and after `knet down`:
network namespaces, links and addresses, routes of every table, policy rules, the host's
iptables (nft and legacy, v4 and v6) and nft rulesets, forwarding sysctls, mounts, knet's cgroup
directories, /run, and the processes that belong to a cluster.

Other clusters may come and go on the same host meanwhile (other engineers' tests share it), so
`foreign` drops the lines that name another knet cluster's pieces (its namespaces
`knet-OTHER-*`, links `knXXXXXX*`, cgroups `/knet/OTHER`); everything else must match exactly.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from knet.cluster.processes import proc_cmdline
from knet.net.names import link_prefix

# Counters change while the host lives: `[packets:bytes]` of iptables-save, nft's `counter packets N bytes M`.
_COUNTERS = re.compile(r"\[\d+:\d+\]|counter packets \d+ bytes \d+")
# An IPv6 route's remaining lifetime ticks down.
_EXPIRES = re.compile(r" expires \d+sec")
_KNET_LINK = re.compile(r"\bkn[0-9a-f]{6}")
_KNET_NETNS = re.compile(r"\bknet-([A-Za-z0-9][A-Za-z0-9-]*?)-(?:controlplane|node\d+)\b")
_KNET_CGROUP = re.compile(r"/knet/([^/\s]+)")

# Where a node's kubeadm files live inside the node (knet.cluster.nodefs): the host's own must not
# change (the node sees them through an overlay), nor root's home or /run beyond its top.
HOST_PATHS = ("/etc/kubernetes", "/etc/cni", "/opt/cni", "/var/lib/kubelet", "/var/lib/etcd", "/var/lib/cni",
              "/var/log/pods", "/var/log/containers", "/root/.kube", "/root/.ssh", "/run/containerd", "/run/sshd",
              "/run/netns")
# kubectl's own discovery and HTTP caches (the test's kubectl fills them, as it would on kubeadm's host).
SKIP = ("/root/.kube/cache", "/root/.kube/http-cache")
SYSCTLS = ("net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding", "net/ipv4/conf/default/forwarding",
           "net/ipv6/conf/all/forwarding", "net/bridge/bridge-nf-call-iptables")


def _lines(*argv: str, optional: bool = False) -> set[str]:
    """The output lines of a command; a missing tool fails the test, unless `optional` (a host
    without iptables-legacy has no legacy tables to compare)."""
    if shutil.which(argv[0]) is None:
        assert optional, f"{argv[0]} is missing: the host cannot be compared"
        return set()
    out = subprocess.run(list(argv), capture_output=True, text=True, timeout=30).stdout
    return {line.rstrip() for line in out.splitlines() if line.strip()}


def _tables(save: str, optional: bool = False) -> set[str]:
    """An `*-save` listing without its timestamps and counters."""
    return {_COUNTERS.sub("", line) for line in _lines(save, optional=optional) if not line.startswith("#")}


def _cgroup_dirs() -> set[str]:
    """knet's cgroup directories (`/knet/...`) in every mounted hierarchy."""
    found = set()
    root = Path("/sys/fs/cgroup")
    tops = [root / "knet", *(d / "knet" for d in root.iterdir() if d.is_dir())] if root.is_dir() else []
    for top in tops:
        if top.is_dir():
            for dirpath, _, _ in os.walk(top):
                found.add(dirpath)
    return found


def _files(top: str, depth: int = 3) -> set[str]:
    found = set()
    if not os.path.lexists(top):
        return found
    found.add(top)
    base = top.rstrip("/").count("/")
    for dirpath, dirnames, filenames in os.walk(top):
        if dirpath.count("/") - base >= depth:
            dirnames[:] = []
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in SKIP]
        found.update(os.path.join(dirpath, n) for n in dirnames + filenames)
    return found


def _mounts() -> set[str]:
    """Mount point, type and source of each mount of this mount namespace (not the ids, which
    are new for every mount)."""
    found = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        found.add(f"{fields[4]} {fields[sep + 1]} {fields[sep + 2]}")
    return found


def _sysctls() -> set[str]:
    found = set()
    for name in SYSCTLS:
        try:
            found.add(f"{name}={Path('/proc/sys', name).read_text().strip()}")
        except OSError:
            pass
    return found


def take() -> dict[str, set[str]]:
    links = {line.split(":", 2)[1].strip().split("@")[0] for line in _lines("ip", "-o", "link", "show")}
    return {
        "netns": {line.split()[0] for line in _lines("ip", "netns", "list")},
        "/run/netns": set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set(),
        "links": links,
        "addresses": {" ".join(line.split()[1:4]) for line in _lines("ip", "-o", "addr", "show")},
        "routes": {_EXPIRES.sub("", line) for line in
                   _lines("ip", "-4", "route", "show", "table", "all") | _lines("ip", "-6", "route", "show", "table", "all")},
        "rules": _lines("ip", "-4", "rule", "show") | _lines("ip", "-6", "rule", "show"),
        # neighbour entries on knet's links only (the host's own come and go): a LoadBalancer
        # address the host reached through a node's ARP answer (knet.net.arp)
        "neigh": {" ".join(line.split()[:3]) for line in _lines("ip", "-4", "neigh", "show")
                  if _KNET_LINK.search(line)},
        "iptables": _tables("iptables-save") | _tables("ip6tables-save"),
        "iptables-legacy": _tables("iptables-legacy-save", True) | _tables("ip6tables-legacy-save", True),
        "nft": {_COUNTERS.sub("", line) for line in _lines("nft", "list", "ruleset")},
        "sysctl": _sysctls(),
        "mounts": _mounts(),
        "cgroups": _cgroup_dirs(),
        "/run": set(os.listdir("/run")),
        "files": set().union(*(_files(p) for p in HOST_PATHS)),
    }


def foreign(line: str, cluster: str) -> bool:
    """Whether a line names a piece of another knet cluster (not `cluster`)."""
    if any(m.group(0) != link_prefix(cluster) for m in _KNET_LINK.finditer(line)):
        return True
    if any(m.group(1) != cluster for m in _KNET_NETNS.finditer(line)):
        return True
    return any(m.group(1) != cluster for m in _KNET_CGROUP.finditer(line))


def difference(before: dict[str, set[str]], after: dict[str, set[str]], cluster: str) -> dict[str, dict[str, list[str]]]:
    """Per section, the lines `after` gained and lost, leaving out other clusters' lines."""
    out = {}
    for section in before:
        gained = sorted(x for x in after[section] - before[section] if not foreign(x, cluster))
        lost = sorted(x for x in before[section] - after[section] if not foreign(x, cluster))
        if gained or lost:
            out[section] = {"gained": gained, "lost": lost}
    return out


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _environ(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _ns(pid: int | str, kind: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def _ns_file(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def namespaces_now() -> set[int]:
    """The inodes of every net, mnt and pid namespace some process is in now."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            for kind in ("net", "mnt", "pid"):
                ino = _ns(entry, kind)
                if ino is not None:
                    found.add(ino)
    return found


def processes_of(cluster: str, state_dir: Path, known_namespaces: set[int] = frozenset()) -> dict[int, str]:
    """pid -> command line of every process that belongs to the cluster: its command line or
    environment names the state dir, its cgroup is the cluster's (/knet/CLUSTER/...), it runs in
    one of the cluster's node network namespaces, or (with `known_namespaces`, from
    namespaces_now() before the cluster) it lives in a net/mnt/pid namespace that none of the
    host's processes were in before (a node's or a pod's, also after its name is gone)."""
    marker = str(state_dir)
    me = {os.getpid(), os.getppid()}
    others = {ino for ns in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else [])
              if ns.startswith("knet-") and not ns.startswith(f"knet-{cluster}-")
              and (ino := _ns_file(f"/run/netns/{ns}")) is not None}
    mine = {ino for ns in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else [])
            if ns.startswith(f"knet-{cluster}-") and (ino := _ns_file(f"/run/netns/{ns}")) is not None}
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in me:
            continue
        pid = int(entry)
        argv = proc_cmdline(pid)
        if not argv:  # a kernel thread, or gone already
            continue
        cgroup = _read(f"/proc/{pid}/cgroup")
        if "/knet/" in cgroup and f"/knet/{cluster}/" not in cgroup and not cgroup.rstrip().endswith(f"/knet/{cluster}"):
            continue  # another cluster's
        why = None
        if any(marker in a for a in argv) or any(marker in e for e in _environ(pid)):
            why = "names the state dir"
        elif f"/knet/{cluster}/" in cgroup or f"/knet/{cluster}\n" in cgroup:
            why = "in the cluster's cgroup"
        elif _ns(pid, "net") in mine:
            why = "in a node's network namespace"
        elif known_namespaces and _ns(pid, "net") not in others and any((ino := _ns(pid, kind)) is not None and ino not in known_namespaces
                                      for kind in ("net", "mnt", "pid")):
            why = "in a namespace made since"
        if why:
            found[pid] = f"{' '.join(argv)[:200]} ({why})"
    return found
