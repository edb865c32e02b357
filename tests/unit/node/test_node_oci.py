"""The OCI spec knet hands runc for a container (knet.node.oci): security context, namespaces,
mounts. Capability cases follow containerd's TestPrivilegedAndCapabilities / WithCapabilities
(pkg/cri/server/container_create_linux_test.go); the runAsNonRoot ones kuberuntime's
TestVerifyRunAsNonRoot (pkg/kubelet/kuberuntime/security_context_others_test.go)."""

from __future__ import annotations

import pytest

from knet.node import oci
from knet.node.runtime import host_layout

LAYOUT = oci.HostLayout(system_dirs=("/usr", "/bin", "/lib", "/etc"),
                        runtime_dirs=("/root/.pyenv/versions/3.11.7", "/work/src"), python_path="/work/src")
NS = oci.SandboxNamespaces(pause_pid=42)


def pod(spec_extra=None, sc=None, name="web"):
    spec = {"containers": [{"name": "c", "image": "busybox"}], **(spec_extra or {})}
    if sc is not None:
        spec["securityContext"] = sc
    return {"metadata": {"name": name, "namespace": "ns1", "uid": "1234"}, "spec": spec}


def ctr(sc=None, **extra):
    c = {"name": "c", "image": "busybox", **extra}
    if sc is not None:
        c["securityContext"] = sc
    return c


def build(p=None, c=None, mounts=(), ns=NS, **kw):
    return oci.container_spec(p or pod(), c or ctr(), argv=["sleep", "1"], env={"A": "b"}, mounts=list(mounts),
                              layout=LAYOUT, namespaces=ns, **kw)


DEFAULT = set(oci.DEFAULT_CAPABILITIES)


@pytest.mark.parametrize("caps, expected", [
    (None, DEFAULT),
    ({"drop": ["NET_RAW"]}, DEFAULT - {"CAP_NET_RAW"}),
    ({"add": ["NET_ADMIN", "sys_time"]}, DEFAULT | {"CAP_NET_ADMIN", "CAP_SYS_TIME"}),
    ({"drop": ["ALL"]}, set()),
    ({"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}, {"CAP_NET_BIND_SERVICE"}),
    ({"add": ["ALL"]}, set(oci.ALL_CAPABILITIES)),
    ({"add": ["ALL"], "drop": ["CHOWN"]}, set(oci.ALL_CAPABILITIES) - {"CAP_CHOWN"}),
    ({"add": ["CHOWN"], "drop": ["CHOWN"]}, DEFAULT - {"CAP_CHOWN"}),  # drop wins, as containerd
])
def test_capabilities(caps, expected):
    spec = build(c=ctr({"capabilities": caps} if caps else None))
    got = spec["process"]["capabilities"]
    assert set(got["bounding"]) == set(got["effective"]) == set(got["permitted"]) == expected
    assert "inheritable" not in got and "ambient" not in got


def test_default_capability_mask_is_what_proc_status_shows():
    # Docker/containerd's default set is CapEff 00000000a80425fb.
    assert oci.capability_mask(oci.DEFAULT_CAPABILITIES) == 0xA80425FB


def test_privileged_gets_every_capability_host_devices_and_no_masking():
    spec = build(p=pod(sc={"seccompProfile": {"type": "RuntimeDefault"}}), c=ctr({"privileged": True}))
    assert set(spec["process"]["capabilities"]["effective"]) == set(oci.ALL_CAPABILITIES)
    linux = spec["linux"]
    assert "maskedPaths" not in linux and "readonlyPaths" not in linux
    assert "seccomp" not in linux  # containerd applies no profile to a privileged container
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    dev = next(m for m in spec["mounts"] if m["destination"] == "/dev")
    assert dev["type"] == "bind" and dev["source"] == "/dev"
    sys_mount = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert "rw" in sys_mount["options"]


def test_unprivileged_default_masks_and_readonly_paths():
    spec = build()
    assert "/proc/kcore" in spec["linux"]["maskedPaths"] and "/sys/firmware" in spec["linux"]["maskedPaths"]
    assert "/proc/sys" in spec["linux"]["readonlyPaths"] and "/proc/sysrq-trigger" in spec["linux"]["readonlyPaths"]
    assert "resources" not in spec["linux"]  # limits are the cgroup layer's
    dev = next(m for m in spec["mounts"] if m["destination"] == "/dev")
    assert dev["type"] == "tmpfs"
    assert "ro" in next(m for m in spec["mounts"] if m["destination"] == "/sys")["options"]


def test_read_only_root_filesystem_and_no_new_privs():
    assert build()["root"] == {"path": "rootfs", "readonly": False}
    assert build(c=ctr({"readOnlyRootFilesystem": True}))["root"]["readonly"] is True
    assert build()["process"]["noNewPrivileges"] is False
    assert build(c=ctr({"allowPrivilegeEscalation": False}))["process"]["noNewPrivileges"] is True
    assert build(c=ctr({"allowPrivilegeEscalation": True}))["process"]["noNewPrivileges"] is False


def test_tty_container_runs_on_a_terminal_with_term_xterm():
    # containerd's WithTTY: process.terminal and TERM=xterm (the container's own env wins).
    plain = build()["process"]
    assert plain["terminal"] is False and not any(e.startswith("TERM=") for e in plain["env"])
    tty = build(c=ctr(tty=True, stdin=True))["process"]
    assert tty["terminal"] is True and "TERM=xterm" in tty["env"]
    assert build(c=ctr(stdin=True))["process"]["terminal"] is False
    own = oci.container_spec(pod(), ctr(tty=True), argv=["sh"], env={"TERM": "vt100"}, mounts=[], layout=LAYOUT,
                             namespaces=NS)["process"]["env"]
    assert "TERM=vt100" in own and "TERM=xterm" not in own


@pytest.mark.parametrize("pod_sc, ctr_sc, message", [
    (None, None, None),
    ({"runAsNonRoot": False}, None, None),
    ({"runAsNonRoot": True}, None,
     'container has runAsNonRoot and image will run as root (pod: "web_ns1(1234)", container: c)'),
    (None, {"runAsNonRoot": True}, 'container has runAsNonRoot and image will run as root (pod: "web_ns1(1234)", '
                                   'container: c)'),
    ({"runAsNonRoot": True, "runAsUser": 1000}, None, None),
    ({"runAsNonRoot": True}, {"runAsUser": 1000}, None),
    ({"runAsNonRoot": True}, {"runAsUser": 0},
     "container's runAsUser breaks non-root policy (pod: \"web_ns1(1234)\", container: c)"),
    ({"runAsNonRoot": True, "runAsUser": 1000}, {"runAsNonRoot": False, "runAsUser": 0}, None),
])
def test_run_as_non_root(pod_sc, ctr_sc, message):
    p, c = pod(sc=pod_sc), ctr(ctr_sc)
    if message is None:
        oci.verify_run_as_non_root(p, c)
        build(p=p, c=c)
    else:
        with pytest.raises(oci.ContainerConfigError) as exc:
            build(p=p, c=c)
        assert str(exc.value) == message


def test_user_groups():
    p = pod(sc={"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000]})
    assert build(p=p)["process"]["user"] == {"uid": 1000, "gid": 3000, "additionalGids": [2000, 4000]}
    assert build(p=p, c=ctr({"runAsUser": 7}))["process"]["user"]["uid"] == 7
    assert build()["process"]["user"] == {"uid": 0, "gid": 0}


def test_namespaces_join_the_sandbox():
    ns = {n["type"]: n.get("path") for n in build()["linux"]["namespaces"]}
    assert ns == {"mount": None, "pid": None, "network": "/proc/42/ns/net", "uts": "/proc/42/ns/uts",
                  "ipc": "/proc/42/ns/ipc"}


def test_host_network_host_ipc_host_pid():
    p = pod({"hostNetwork": True})
    ns = {n["type"]: n.get("path") for n in build(p=p, ns=oci.SandboxNamespaces(42, network=False))["linux"]["namespaces"]}
    assert ns == {"mount": None, "pid": None, "ipc": "/proc/42/ns/ipc"}
    p = pod({"hostNetwork": True, "hostIPC": True, "hostPID": True})
    ns = {n["type"]: n.get("path") for n in build(p=p, ns=oci.SandboxNamespaces(42, network=False))["linux"]["namespaces"]}
    assert ns == {"mount": None}


def test_share_process_namespace_joins_the_pause_pid_namespace():
    p = pod({"shareProcessNamespace": True})
    ns = {n["type"]: n.get("path") for n in build(p=p, ns=oci.SandboxNamespaces(42, pid=True))["linux"]["namespaces"]}
    assert ns["pid"] == "/proc/42/ns/pid_for_children"


def test_seccomp_runtime_default_denies_dangerous_syscalls():
    assert "seccomp" not in build()["linux"]  # the kubelet's default: Unconfined, as upstream
    assert "seccomp" not in build(p=pod(sc={"seccompProfile": {"type": "Unconfined"}}))["linux"]
    for p, c in [(pod(sc={"seccompProfile": {"type": "RuntimeDefault"}}), ctr()),
                 (pod(), ctr({"seccompProfile": {"type": "RuntimeDefault"}}))]:
        profile = build(p=p, c=c)["linux"]["seccomp"]
        assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
        denied = profile["syscalls"][0]
        assert denied["action"] == "SCMP_ACT_ERRNO" and denied["errnoRet"] == 1
        for name in ("mount", "umount2", "ptrace", "kexec_load", "init_module", "finit_module", "delete_module",
                     "reboot", "swapon", "bpf", "unshare", "setns", "keyctl"):
            assert name in denied["names"]
    # the container's Unconfined overrides the pod's RuntimeDefault
    p = pod(sc={"seccompProfile": {"type": "RuntimeDefault"}})
    assert "seccomp" not in build(p=p, c=ctr({"seccompProfile": {"type": "Unconfined"}}))["linux"]


def test_mounts_system_dirs_read_only_pod_files_after_them():
    mounts = [("/var/lib/knet/c/nodes/n/pods/u/resolv.conf", "/etc/resolv.conf", False),
              ("/var/lib/knet/c/nodes/n/pods/u/volumes/data", "/data", True)]
    spec = build(mounts=mounts)
    by_dst = {m["destination"]: m for m in spec["mounts"]}
    # The host's system dirs without the node's own mounts below them (its /etc/kubernetes).
    for d in ("/usr", "/bin", "/lib", "/etc"):
        assert by_dst[d]["options"] == ["bind", "ro"] and by_dst[d]["source"] == d
    for d in ("/root/.pyenv/versions/3.11.7", "/work/src"):
        assert by_dst[d]["options"] == ["rbind", "ro"] and by_dst[d]["source"] == d
    assert by_dst["/etc/resolv.conf"]["options"] == ["rbind", "rw"]
    assert by_dst["/data"]["options"] == ["rbind", "ro"]
    order = [m["destination"] for m in spec["mounts"]]
    assert order.index("/etc") < order.index("/etc/resolv.conf")  # the pod's file covers the host's
    for kernel in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"):
        assert kernel in by_dst
    env = dict(e.split("=", 1) for e in spec["process"]["env"])
    assert env["A"] == "b" and env["PYTHONPATH"] == "/work/src" and env["PATH"].startswith("/usr/local/sbin")


def test_nothing_private_of_the_host_is_mounted():
    """The host layout of this machine: no /root (beyond the interpreter's prefix), /home, /var,
    or knet's state directory."""
    layout = host_layout()
    spec = oci.container_spec(pod(), ctr(), argv=["true"], env={}, mounts=[], layout=layout, namespaces=NS)
    for m in spec["mounts"]:
        if m["type"] != "bind":
            continue
        for private in ("/root", "/home", "/var", "/var/lib/knet", "/tmp"):
            assert m["destination"] != private and m["source"] != private
        if m["source"] in layout.runtime_dirs:
            continue  # the interpreter's prefix and knet's source tree, wherever they were installed
        assert not m["source"].startswith(("/root/", "/home/", "/var/", "/tmp/")), m


def test_cgroups_path_hook():
    assert "cgroupsPath" not in build()["linux"]
    assert build(cgroups_path="/kubepods/burstable/podu/c1")["linux"]["cgroupsPath"] == "/kubepods/burstable/podu/c1"


def test_privileged_and_add_all_get_the_runtimes_own_capabilities():
    """containerd's WithAllCurrentCapabilities: a kubelet without CAP_SYS_RESOURCE in its own
    bounding set cannot give it (runc would fail "unable to apply caps")."""
    own = oci.capability_names(0x1FFFEFFFFFF)
    assert "CAP_SYS_RESOURCE" not in own and "CAP_SYS_ADMIN" in own and len(own) == 40
    layout = oci.HostLayout(system_dirs=("/usr",), all_capabilities=own)
    for c in (ctr({"privileged": True}), ctr({"capabilities": {"add": ["ALL"]}})):
        spec = oci.container_spec(pod(), c, argv=["true"], env={}, mounts=[], layout=layout, namespaces=NS)
        assert spec["process"]["capabilities"]["bounding"] == list(own)


def test_missing_mount_points_inside_system_dirs():
    exists = {"/etc/hosts", "/etc"}.__contains__
    mounts = [("/p/hosts", "/etc/hosts", False), ("/p/cfg", "/etc/coredns", True), ("/p/x", "/data", False),
              ("/p/y", "/usr/share/nginx/html", True), ("/p/z", "/usrlocal/z", True)]
    assert oci.missing_mount_points(mounts, ("/usr", "/etc"), exists) == {
        "/usr": ["/usr/share/nginx/html"], "/etc": ["/etc/coredns"]}
    spec = build(mounts=mounts[:2], overlays={"/etc": "/b/layers/etc"})
    etc = next(m for m in spec["mounts"] if m["destination"] == "/etc")
    assert etc == {"destination": "/etc", "type": "overlay", "source": "overlay",
                   "options": ["lowerdir=/b/layers/etc:/etc"]}  # no upper layer: read-only
