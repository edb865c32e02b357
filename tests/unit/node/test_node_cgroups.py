"""Pod and container cgroups (knet.node.cgroups, knet.node.podcgroups): QoS classes, the kubelet's
and runc's conversions, the kubepods layout, and the v1/v2 drivers over a fake cgroupfs in a
tmp dir (settings written, usage and OOM kills read, trees removed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from knet.node import cgroups
from knet.node.cgroups import Resources, V1Driver, V2Driver
from knet.node.podcgroups import NodeCgroups, Sample, cpu_rate


def rl(cpu: str = "", memory: str = "", **extra: str) -> dict:
    out = {}
    if cpu:
        out["cpu"] = cpu
    if memory:
        out["memory"] = memory
    out.update({k.replace("_", "-"): v for k, v in extra.items()})
    return out


def container(requests: dict, limits: dict, name: str = "c") -> dict:
    return {"name": name, "resources": {"requests": requests, "limits": limits}}


def pod(containers: list[dict], init: list[dict] | None = None, resources: dict | None = None) -> dict:
    spec: dict = {"containers": containers}
    if init:
        spec["initContainers"] = init
    if resources:
        spec["resources"] = resources
    return {"metadata": {"name": "p", "uid": "1234"}, "spec": spec}


# Ported from kubernetes pkg/apis/core/v1/helper/qos/qos_test.go TestComputePodQOS.
QOS_CASES = [
    ("guaranteed", pod([container(rl("100m", "100Mi"), rl("100m", "100Mi"))]), cgroups.GUARANTEED, False),
    ("guaranteed-guaranteed", pod([container(rl("100m", "100Mi"), rl("100m", "100Mi")),
                                   container(rl("100m", "100Mi"), rl("100m", "100Mi"))]), cgroups.GUARANTEED, False),
    ("best-effort-best-effort", pod([container(rl(), rl()), container(rl(), rl())]), cgroups.BEST_EFFORT, False),
    ("best-effort", pod([container(rl(), rl())]), cgroups.BEST_EFFORT, False),
    ("best-effort-burstable", pod([container(rl(), rl()), container(rl("1"), rl("2"))]), cgroups.BURSTABLE, False),
    ("best-effort-guaranteed", pod([container(rl(), rl()), container(rl("10m", "100Mi"), rl("10m", "100Mi"))]),
     cgroups.BURSTABLE, False),
    ("burstable-cpu-guaranteed-memory", pod([container(rl("", "100Mi"), rl("", "100Mi"))]), cgroups.BURSTABLE, False),
    ("burstable-no-limits", pod([container(rl("100m", "100Mi"), rl())]), cgroups.BURSTABLE, False),
    ("burstable-guaranteed", pod([container(rl("1", "100Mi"), rl("2", "100Mi")),
                                  container(rl("100m", "100Mi"), rl("100m", "100Mi"))]), cgroups.BURSTABLE, False),
    ("burstable-unbounded-but-requests-match-limits", pod([container(rl("100m", "100Mi"), rl("200m", "200Mi")),
                                                           container(rl("100m", "100Mi"), rl())]), cgroups.BURSTABLE, False),
    ("burstable-1", pod([container(rl("10m", "100Mi"), rl("100m", "200Mi"))]), cgroups.BURSTABLE, False),
    ("burstable-2", pod([container(rl("0", "0"), rl("100m", "200Mi"))]), cgroups.BURSTABLE, False),
    ("best-effort-hugepages", pod([container(rl("0", "0", hugepages_2Mi="1Gi"), rl("0", "0", hugepages_2Mi="1Gi"))]),
     cgroups.BEST_EFFORT, False),
    ("init-container", pod([container(rl(), rl())], init=[container(rl("10m", "100Mi"), rl("100m", "200Mi"))]),
     cgroups.BURSTABLE, False),
    ("guaranteed-with-pod-level-resources", pod([container(rl(), rl())],
                                                resources={"requests": rl("10m", "100Mi"), "limits": rl("10m", "100Mi")}),
     cgroups.GUARANTEED, True),
    ("guaranteed-with-pod-and-container-level-resources", pod(
        [container(rl("3m", "10Mi"), rl("5m", "20Mi"))], resources={"requests": rl("10m", "100Mi"),
                                                                    "limits": rl("10m", "100Mi")}), cgroups.GUARANTEED, True),
    ("burstable-with-pod-level-resources", pod([container(rl(), rl())],
                                               resources={"requests": rl("10m", "10Mi"), "limits": rl("20m", "50Mi")}),
     cgroups.BURSTABLE, True),
    ("burstable-with-pod-and-container-level-resources", pod(
        [container(rl("5m", "10Mi"), rl("5m", "10Mi"))], resources={"requests": rl("10m", "10Mi"),
                                                                    "limits": rl("20m", "50Mi")}), cgroups.BURSTABLE, True),
    ("burstable-with-pod-and-container-level-requests", pod(
        [container(rl("5m", "10Mi"), rl())], resources={"requests": rl("10m", "10Mi"), "limits": rl()}),
     cgroups.BURSTABLE, True),
    ("burstable-with-pod-and-container-level-resources-2", pod(
        [container(rl("5m", "10Mi"), rl()), container(rl("5m", "10Mi"), rl("5m", "10Mi"))],
        resources={"requests": rl("10m", "10Mi"), "limits": rl("5m")}), cgroups.BURSTABLE, True),
]


@pytest.mark.parametrize(("name", "p", "expected", "pod_level"), QOS_CASES, ids=[c[0] for c in QOS_CASES])
def test_compute_pod_qos_upstream_table(name, p, expected, pod_level):
    assert cgroups.compute_pod_qos(p, pod_level_resources=pod_level) == expected


def test_pod_qos_prefers_the_status_the_apiserver_set():
    p = pod([container(rl(), rl("100m", "100Mi"))])  # limits only: requests default to them in the apiserver
    assert cgroups.compute_pod_qos(p) == cgroups.BURSTABLE
    p["status"] = {"qosClass": "Guaranteed"}
    assert cgroups.pod_qos(p) == cgroups.GUARANTEED


# pkg/kubelet/cm/helpers_linux_test.go TestMilliCPUToQuota (quota 0 = no limit).
@pytest.mark.parametrize(("milli", "quota"), [(0, 0), (5, 1000), (9, 1000), (10, 1000), (200, 20000),
                                              (500, 50000), (1000, 100000), (1500, 150000)])
def test_milli_cpu_to_quota(milli, quota):
    assert cgroups.milli_cpu_to_quota(milli) == quota


@pytest.mark.parametrize(("milli", "shares"), [(0, 2), (1, 2), (2, 2), (3, 3), (100, 102), (250, 256), (1000, 1024),
                                               (1500, 1536), (256000, 262144), (300000, 262144)])
def test_milli_cpu_to_shares(milli, shares):
    assert cgroups.milli_cpu_to_shares(milli) == shares


# runc 1.1 libcontainer/cgroups TestConvertCPUSharesToCgroupV2Value, and the kubelet's getCPUWeight.
@pytest.mark.parametrize(("shares", "weight"), [(0, 0), (2, 1), (262144, 10000), (1024, 39), (102, 4), (300000, 10000)])
def test_shares_to_cgroup_v2_weight(shares, weight):
    assert cgroups.shares_to_weight(shares) == weight


def test_container_resources_as_the_kubelet_converts_them():
    r = cgroups.container_resources(container(rl("250m", "64Mi"), rl("500m", "128Mi")))
    assert r == Resources(cpu_shares=256, cpu_quota=50000, cpu_period=100000, memory_limit=128 << 20)
    # A CPU limit alone: the request defaults to it (shares), quota from it.
    assert cgroups.container_resources(container({}, rl("100m"))) == Resources(
        cpu_shares=102, cpu_quota=10000, cpu_period=100000)
    # Nothing: the minimum shares, no quota, no memory limit.
    assert cgroups.container_resources({"name": "x"}) == Resources(cpu_shares=2)
    assert cgroups.oci_resources(container(rl("250m"), rl("1", "1Gi"))) == {
        "cpu": {"shares": 256, "quota": 100000, "period": 100000}, "memory": {"limit": 1 << 30}}


def test_pod_resources_as_resource_config_for_pod():
    # Guaranteed: summed requests as shares, summed limits as quota and memory.
    g = pod([container(rl("100m", "100Mi"), rl("100m", "100Mi")), container(rl("200m", "50Mi"), rl("200m", "50Mi"))])
    assert cgroups.pod_resources(g) == Resources(cpu_shares=307, cpu_quota=30000, cpu_period=100000,
                                                 memory_limit=150 << 20)
    # Burstable with a container without limits: no pod quota, no pod memory limit.
    b = pod([container(rl("100m", "100Mi"), rl("200m", "200Mi")), container(rl("100m"), {})])
    assert cgroups.pod_resources(b, pids_limit=1024) == Resources(cpu_shares=204, pids_limit=1024)
    # BestEffort: the minimum shares only.
    assert cgroups.pod_resources(pod([{"name": "x"}])) == Resources(cpu_shares=2)
    # An init container larger than the sum of the others sets the pod's figures.
    i = pod([container(rl("100m", "10Mi"), rl("100m", "10Mi"))], init=[container(rl("1", "1Gi"), rl("1", "1Gi"))])
    assert cgroups.pod_resources(i).cpu_quota == 100000 and cgroups.pod_resources(i).memory_limit == 1 << 30


def test_layout_is_kubepods_by_qos_under_the_nodes_root():
    root = cgroups.cgroup_root("demo", "node01")
    assert root == "/knet/demo/node01"
    g = pod([container(rl("1", "1Gi"), rl("1", "1Gi"))])
    b = pod([container(rl("1"), {})])
    e = pod([{"name": "c"}])
    assert cgroups.pod_cgroup(root, g) == "/knet/demo/node01/kubepods/pod1234"
    assert cgroups.pod_cgroup(root, b) == "/knet/demo/node01/kubepods/burstable/pod1234"
    assert cgroups.pod_cgroup(root, e) == "/knet/demo/node01/kubepods/besteffort/pod1234"
    assert cgroups.cgroups_path(root, b, "abc") == "/knet/demo/node01/kubepods/burstable/pod1234/abc"


MOUNTINFO_HYBRID = """\
30 23 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
37 30 0:33 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
38 30 0:34 /sub /mnt/elsewhere rw - cgroup cgroup rw,memory
"""


def test_detect_v1_from_a_hybrid_mountinfo():
    v1, v2 = cgroups.parse_mountinfo(MOUNTINFO_HYBRID)
    assert v1["cpu"] == v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert v1["memory"] == "/sys/fs/cgroup/memory" and v2 == "/sys/fs/cgroup/unified"
    assert isinstance(cgroups.detect(MOUNTINFO_HYBRID), V1Driver)


def test_detect_v2_on_a_unified_host(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    info = f"30 23 0:26 / {tmp_path} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    assert isinstance(cgroups.detect(info), V2Driver)
    assert cgroups.detect("") is None


def test_linux_cgroup_mounts_mirror_proc_self_cgroup():
    from knet.net.linux import cgroup_mounts

    hybrid = "12:pids:/\n4:memory:/x\n2:cpu,cpuacct:/\n1:name=systemd:/\n0::/\n"
    assert cgroup_mounts(hybrid) == [("pids", "cgroup", "pids"), ("memory", "cgroup", "memory"),
                                     ("cpu,cpuacct", "cgroup", "cpu,cpuacct"),
                                     ("systemd", "cgroup", "none,name=systemd"), ("unified", "cgroup2", None)]
    assert cgroup_mounts("0::/user.slice\n") == [("", "cgroup2", None)]


def _v1_tree(tmp_path: Path) -> V1Driver:
    mounts = {c: str(tmp_path / c) for c in ("cpu", "cpuacct", "memory", "pids")}
    for d in mounts.values():
        os.makedirs(d)
    return V1Driver(mounts)


def test_v1_driver_writes_settings_and_reads_usage(tmp_path):
    d = _v1_tree(tmp_path)
    path = "/knet/c/n/kubepods/burstable/pod1/abc"
    d.create(path, Resources(cpu_shares=102, cpu_quota=10000, cpu_period=100000, memory_limit=64 << 20, pids_limit=100))
    leaf = path.strip("/")
    assert (tmp_path / "cpu" / leaf / "cpu.shares").read_text() == "102"
    assert (tmp_path / "cpu" / leaf / "cpu.cfs_quota_us").read_text() == "10000"
    assert (tmp_path / "cpu" / leaf / "cpu.cfs_period_us").read_text() == "100000"
    assert (tmp_path / "memory" / leaf / "memory.limit_in_bytes").read_text() == str(64 << 20)
    assert (tmp_path / "pids" / leaf / "pids.max").read_text() == "100"
    d.add_process(path, 4242)
    for c in ("cpu", "cpuacct", "memory", "pids"):
        assert (tmp_path / c / leaf / "cgroup.procs").read_text() == "4242"
    (tmp_path / "cpuacct" / leaf / "cpuacct.usage").write_text("123456789\n")
    (tmp_path / "memory" / leaf / "memory.usage_in_bytes").write_text("10485760\n")
    (tmp_path / "memory" / leaf / "memory.stat").write_text(
        "cache 4096\nrss 2000\ninactive_file 999\ntotal_rss 8192\ntotal_inactive_file 2097152\n"
        "total_pgfault 7\ntotal_pgmajfault 1\n")
    u = d.usage(path)
    # cadvisor's working set: usage - total_inactive_file.
    assert (u.cpu_ns, u.memory_usage, u.working_set, u.rss, u.page_faults, u.major_page_faults) == \
        (123456789, 10485760, 10485760 - 2097152, 8192, 7, 1)
    assert d.pids(path) == [4242]


def test_v1_oom_kill_counter_and_failcnt_fallback(tmp_path):
    d = _v1_tree(tmp_path)
    path = "/p/c"
    d.create(path, Resources())
    mem = tmp_path / "memory" / "p" / "c"
    assert d.oom_kills(path) == 0
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert d.oom_kills(path) == 1
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")  # Linux < 4.13
    (mem / "memory.failcnt").write_text("3\n")
    assert d.oom_kills(path) == 3


def test_v1_working_set_never_negative(tmp_path):
    assert cgroups.working_set(100, {"total_inactive_file": 500}, v2=False) == 0
    assert cgroups.working_set(1000, {"inactive_file": 100}, v2=True) == 900


def test_v2_driver_enables_controllers_down_the_path_and_converts(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    d = V2Driver(str(tmp_path))
    path = "/knet/c/n/kubepods/pod1/abc"
    # A fake tree has no kernel to fill new directories' cgroup.controllers: pre-made here.
    parts = path.strip("/").split("/")
    current = tmp_path
    for part in parts:
        current = current / part
        current.mkdir()
        (current / "cgroup.controllers").write_text("cpu memory pids\n")
    d.create(path, Resources(cpu_shares=1024, cpu_quota=50000, cpu_period=100000, memory_limit=1 << 30,
                             pids_limit=64))
    leaf = tmp_path.joinpath(*parts)
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (leaf.parent / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (leaf / "cpu.weight").read_text() == "39"
    assert (leaf / "cpu.max").read_text() == "50000 100000"
    assert (leaf / "memory.max").read_text() == str(1 << 30)
    assert (leaf / "pids.max").read_text() == "64"
    d.add_process(path, 77)
    assert (leaf / "cgroup.procs").read_text() == "77"
    (leaf / "cpu.stat").write_text("usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n")
    (leaf / "memory.current").write_text("8388608\n")
    (leaf / "memory.stat").write_text("anon 4096\nfile 8192\ninactive_file 1048576\npgfault 3\npgmajfault 0\n")
    u = d.usage(path)
    assert (u.cpu_ns, u.memory_usage, u.working_set, u.rss) == (2500000, 8388608, 8388608 - 1048576, 4096)
    assert d.oom_kills(path) == 0
    (leaf / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    assert d.oom_kills(path) == 1
    assert d.remove("/knet/c") and not (tmp_path / "knet" / "c").exists()


def test_node_cgroups_pod_lifecycle_over_a_fake_v1_tree(tmp_path):
    import asyncio

    d = _v1_tree(tmp_path)
    node = NodeCgroups(d, "/knet/demo/node01", pids_limit=512)
    p = pod([container(rl("100m", "64Mi"), rl("100m", "64Mi"), name="main")])
    node.create_pod(p)
    pod_dir = tmp_path / "memory" / "knet/demo/node01/kubepods/pod1234"
    assert (pod_dir / "memory.limit_in_bytes").read_text() == str(64 << 20)
    assert (tmp_path / "pids" / "knet/demo/node01/kubepods/pod1234/pids.max").read_text() == "512"
    assert (tmp_path / "cpu" / "knet/demo/node01/kubepods/besteffort/cpu.shares").read_text() == "2"
    node.add_process(node.create_container(p, p["spec"]["containers"][0], "cid1"), os.getpid() + 10**6)
    assert (pod_dir / "cid1" / "memory.limit_in_bytes").read_text() == str(64 << 20)
    assert not node.oom_killed(p, "cid1")
    (pod_dir / "cid1" / "memory.oom_control").write_text("oom_kill 1\n")
    assert node.oom_killed(p, "cid1")
    (pod_dir / "cid1" / "cgroup.procs").write_text("")  # the process is gone
    for c in ("cpu", "cpuacct", "pids"):
        (tmp_path / c / "knet/demo/node01/kubepods/pod1234/cid1/cgroup.procs").write_text("")
    node.remove_container(p, "cid1")
    assert not (pod_dir / "cid1").exists()
    asyncio.run(node.remove_pod(p))
    assert not pod_dir.exists() and (tmp_path / "memory" / "knet/demo/node01/kubepods").is_dir()


def test_node_without_cgroups_does_nothing():
    none = NodeCgroups.none()
    p = pod([{"name": "c"}])
    none.create_pod(p)
    assert none.create_container(p, {"name": "c"}, "x") is None
    assert not none.enabled and not none.oom_killed(p, "x") and none.sample("/") is None


def test_cpu_rate_between_two_samples():
    u = cgroups.Usage
    a = Sample(u(cpu_ns=1_000_000_000, memory_usage=0, working_set=0), 100.0)
    b = Sample(u(cpu_ns=1_500_000_000, memory_usage=0, working_set=0), 105.0)
    assert cpu_rate(a, b) == pytest.approx(0.1)
    assert cpu_rate(b, a) is None  # time went back
    assert cpu_rate(a, Sample(u(cpu_ns=0, memory_usage=0, working_set=0), 101.0)) is None  # counter reset


def test_summary_api_shape_from_a_fake_tree(tmp_path):
    import asyncio
    from types import SimpleNamespace

    from knet.node import summary
    from knet.node.status import ContainerRecord

    d = _v1_tree(tmp_path)
    node = NodeCgroups(d, "/knet/demo/node01")
    p = pod([container(rl("100m"), rl("200m"), name="main")])
    p["metadata"]["namespace"] = "d"
    node.create_pod(p)
    node.add_process(node.create_container(p, p["spec"]["containers"][0], "cid"), 1)

    def write(path: str, cpu: int, mem: int) -> None:
        (tmp_path / "cpuacct" / path / "cpuacct.usage").write_text(str(cpu))
        (tmp_path / "memory" / path / "memory.usage_in_bytes").write_text(str(mem))
        (tmp_path / "memory" / path / "memory.stat").write_text("total_inactive_file 4096\n")

    base = "knet/demo/node01/kubepods"
    for path in (base, f"{base}/burstable/pod1234", f"{base}/burstable/pod1234/cid"):
        write(path, 5_000_000, 1 << 20)
    rec = ContainerRecord("main", "python", container_id="cid", state="running", started_at="2026-01-01T00:00:00Z")
    worker = SimpleNamespace(sandbox=object(), stopping=asyncio.Event(), runs_processes=True, pod=p,
                             start_time="2026-01-01T00:00:00Z",
                             runs={"main": SimpleNamespace(record=rec, process=object())})
    agent = SimpleNamespace(name="node01", cgroups=node, workers={"1234": worker})
    out = summary.summary(agent, "2026-01-01T00:00:00Z")
    assert out["node"]["nodeName"] == "node01"
    assert out["node"]["cpu"]["usageCoreNanoSeconds"] == 5_000_000 and "usageNanoCores" not in out["node"]["cpu"]
    assert out["node"]["memory"]["workingSetBytes"] == (1 << 20) - 4096
    [p_stats] = out["pods"]
    assert p_stats["podRef"] == {"name": "p", "namespace": "d", "uid": "1234"}
    [c_stats] = p_stats["containers"]
    assert c_stats["name"] == "main" and c_stats["memory"]["usageBytes"] == 1 << 20
    # The next read (>= 1 s later) has a rate: usageNanoCores.
    node._last = {k: Sample(v.usage, v.timestamp - 2.0) for k, v in node._last.items()}
    write(base, 1_005_000_000, 1 << 20)
    again = summary.summary(agent, "2026-01-01T00:00:00Z")
    assert 0.4e9 < again["node"]["cpu"]["usageNanoCores"] <= 0.5e9 + 1
    # A node without cgroups (simulated) has no figures at all.
    bare = summary.summary(SimpleNamespace(name="sim", cgroups=NodeCgroups.none(), workers={}), "t")
    assert bare == {"node": {"nodeName": "sim", "startTime": "t"}, "pods": []}


def test_remove_cluster_takes_every_node_of_the_cluster_only(tmp_path):
    d = _v1_tree(tmp_path)
    # runc makes a container's cgroup in every hierarchy, also those the driver sets nothing in
    mountinfo = "\n".join([
        f"30 25 0:26 / {tmp_path}/blkio rw - cgroup cgroup rw,blkio",
        f"31 25 0:27 / {tmp_path}/systemd rw - cgroup cgroup rw,name=systemd",
        f"32 25 0:28 / {tmp_path}/unified rw - cgroup2 cgroup2 rw",
        f"33 25 0:29 /nested {tmp_path}/elsewhere rw - cgroup cgroup rw,cpu",  # not a whole hierarchy
        "40 25 0:30 / /proc rw - proc proc rw"])
    assert cgroups.hierarchy_mount_points(mountinfo) == sorted(
        str(tmp_path / h) for h in ("blkio", "systemd", "unified"))
    d = V1Driver({c: str(p) for c, p in d.mounts.items()}, cgroups.hierarchy_mount_points(mountinfo))
    for cluster, node in (("a", "n1"), ("a", "n2"), ("b", "n1")):
        NodeCgroups(d, cgroups.cgroup_root(cluster, node)).create_pod(pod([{"name": "c"}]))
    for hierarchy in ("blkio", "systemd", "unified"):
        for cluster in ("a", "b"):
            (tmp_path / hierarchy / "knet" / cluster / "n1" / "kubepods" / "pod1234" / "cid").mkdir(parents=True)
    assert cgroups.remove_cluster("a", d)
    for hierarchy in ("memory", "blkio", "systemd", "unified"):
        assert not (tmp_path / hierarchy / "knet" / "a").exists(), hierarchy
    assert (tmp_path / "memory" / "knet" / "b" / "n1" / "kubepods" / "besteffort" / "pod1234").is_dir()
    assert (tmp_path / "blkio" / "knet" / "b" / "n1" / "kubepods" / "pod1234" / "cid").is_dir()
    assert not cgroups.remove_cluster("a", d)  # nothing left
    # the last cluster to go takes knet's top cgroup with it, in every hierarchy
    assert (tmp_path / "memory" / "knet").is_dir() and (tmp_path / "unified" / "knet").is_dir()
    assert cgroups.remove_cluster("b", d)
    for hierarchy in ("memory", "cpu", "blkio", "systemd", "unified"):
        assert not (tmp_path / hierarchy / "knet").exists(), hierarchy


def test_burstable_parent_weight_follows_its_pods_requests(tmp_path):
    import asyncio

    d = _v1_tree(tmp_path)
    node = NodeCgroups(d, "/knet/demo/node01")
    shares = tmp_path / "cpu" / "knet/demo/node01/kubepods/burstable/cpu.shares"
    a = pod([container(rl("500m"), {})])
    b = pod([container(rl("250m"), rl("1"))])
    b["metadata"]["uid"] = "5678"
    node.create_pod(a)
    assert shares.read_text() == "512"
    node.create_pod(b)
    assert shares.read_text() == "768"
    asyncio.run(node.remove_pod(a))
    assert shares.read_text() == "256"
    asyncio.run(node.remove_pod(b))
    assert shares.read_text() == "2"


def test_a_container_that_already_exited_is_not_an_error(tmp_path):
    class GoneV1(V1Driver):
        def add_process(self, path: str, pid: int) -> None:
            raise ProcessLookupError(3, "No such process")  # what the kernel answers for a reaped pid

    mounts = {c: str(tmp_path / c) for c in ("cpu", "cpuacct", "memory", "pids")}
    node = NodeCgroups(GoneV1(mounts), "/knet/demo/node01")
    p = pod([{"name": "c"}])
    node.create_pod(p)
    node.add_process(node.create_container(p, {"name": "c"}, "cid"), 999999)
    assert not node.oom_killed(p, "cid")


def test_default_cgroup_root_follows_the_state_dir():
    from knet.node.podcgroups import default_cgroup_root

    assert default_cgroup_root("/var/lib/knet/demo/nodes/node01", "node01") == "/knet/demo/node01"
    other = default_cgroup_root("/tmp/x/kd1", "kd1")
    assert other.startswith("/knet/kubelet-") and other.endswith("/kd1")
    assert other != default_cgroup_root("/tmp/y/kd1", "kd1")


def test_an_oom_notification_makes_the_exit_oom_killed_after_the_runtime_removed_its_cgroup(tmp_path):
    # cgroup v1 counts an OOM kill only in the victim's own memcg (runc's, removed with the
    # container); the container cgroup's OOM notification (an eventfd) is what stays.
    events: list[int] = []

    class NotifyingV1(V1Driver):
        def oom_notifier(self, path: str) -> int | None:
            events.append(os.eventfd(0, os.EFD_NONBLOCK))
            return events[-1]

    mounts = {c: str(tmp_path / c) for c in ("cpu", "cpuacct", "memory", "pids")}
    node = NodeCgroups(NotifyingV1(mounts), "/knet/demo/node01")
    p = pod([{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}])
    node.create_pod(p)
    node.create_container(p, p["spec"]["containers"][0], "quiet")
    node.create_container(p, p["spec"]["containers"][0], "hog")
    os.eventfd_write(events[1], 1)  # what the kernel does when the hog's cgroup runs out of memory
    assert not node.oom_killed(p, "quiet")
    assert node.oom_killed(p, "hog")
    node.remove_container(p, "hog")
    with pytest.raises(OSError):
        os.fstat(events[1])  # closed with its cgroup


def test_an_adopted_container_gets_its_oom_watch_again(tmp_path):
    armed: list[str] = []

    class NotifyingV1(V1Driver):
        def oom_notifier(self, path: str) -> int | None:
            armed.append(path)
            return os.eventfd(0, os.EFD_NONBLOCK)

    mounts = {c: str(tmp_path / c) for c in ("cpu", "cpuacct", "memory", "pids")}
    p = pod([{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}])
    first = NodeCgroups(NotifyingV1(mounts), "/knet/demo/node01")
    first.create_pod(p)
    first.create_container(p, p["spec"]["containers"][0], "cid")
    restarted = NodeCgroups(NotifyingV1(mounts), "/knet/demo/node01")  # a new kubelet, same cgroups
    restarted.watch_oom(p, "cid")
    restarted.watch_oom(p, "cid")  # once only
    restarted.watch_oom(p, "gone")  # no cgroup: nothing to watch
    assert armed == [first.container_path(p, "cid")] * 2
