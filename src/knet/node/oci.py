"""The OCI runtime spec (a bundle's config.json) of one container, as containerd's CRI plugin
builds it for runc. Pure: every host fact (which system directories exist, where Python and
knet live, the sandbox's namespace paths) comes in as an argument.

knet has no images. A container's root filesystem is an empty per-container directory on which
runc mounts, read-only, the host's system directories (/usr, /bin, /lib*, /sbin, /etc), the
interpreter and knet's source tree (knet's workloads, agnhost included, are Python programs of
the host), then the pod's own files: /etc/hosts, /etc/resolv.conf, /etc/hostname, the
service-account token and the volumes at their mount paths. Nothing else of the host -- /root,
/home, /var, the cluster's state directory -- exists in it. The directory itself is the
container's writable layer (/tmp lives there), unless readOnlyRootFilesystem.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# containerd's default capability set (oci/spec.go populateDefaultUnixSpec; the same as
# Docker's): what a container has unless securityContext.capabilities changes it.
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
# Every capability of linux/capability.h, in bit order (bit = index): `ALL` and privileged.
ALL_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

# containerd's defaults (oci/spec.go populateDefaultUnixSpec), hidden from non-privileged
# containers: masked paths are covered (/dev/null or an empty tmpfs), readonly paths remounted.
MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# `seccompProfile: RuntimeDefault`. Not all of moby's/containerd's default profile (an allow
# list of ~350 syscalls, default EPERM): its complement as a deny list, default allow. These
# are the syscalls that profile refuses a container without extra capabilities: kernel modules,
# kexec, reboot, swap, mounts and namespaces, tracing and other processes' memory, BPF, keyrings,
# clocks, accounting, quotas, NUMA policy, userfaultfd, perf. Each is refused with EPERM, as the
# profile's defaultErrnoRet. Syscalls libseccomp does not know on this architecture are ignored
# by runc.
SECCOMP_DENIED = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
    "finit_module", "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "get_mempolicy",
    "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
    "mbind", "mount", "mount_setattr", "move_mount", "move_pages", "name_to_handle_at", "nfsservctl",
    "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "process_vm_readv",
    "process_vm_writev", "ptrace", "query_module", "quotactl", "quotactl_fd", "reboot", "request_key",
    "set_mempolicy", "setns", "settimeofday", "stime", "swapoff", "swapon", "syslog", "_sysctl", "sysfs",
    "umount", "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vhangup", "vm86", "vm86old",
)
EPERM = 1


class ContainerConfigError(ValueError):
    """The kubelet refuses to start the container (CreateContainerConfigError)."""


@dataclass(frozen=True)
class HostLayout:
    """What of the host a container's root filesystem is made of (facts gathered by the caller).

    system_dirs: host directories shown read-only at the same path (/usr, /bin, /lib, /etc, ...);
    runtime_dirs: the interpreter's prefix and knet's source tree, read-only at the same path;
    python_path: PYTHONPATH inside the container (knet's source tree)."""

    system_dirs: tuple[str, ...]
    runtime_dirs: tuple[str, ...] = ()
    python_path: str = ""
    extra_path: tuple[str, ...] = field(default=())  # PATH entries after DEFAULT_PATH
    # What `privileged` and `add: [ALL]` give: the kubelet's own bounding set (containerd's
    # WithAllCurrentCapabilities), which may lack some where knet itself runs confined.
    all_capabilities: tuple[str, ...] = ALL_CAPABILITIES


@dataclass(frozen=True)
class SandboxNamespaces:
    """The pod sandbox's namespaces to join: `/proc/<pause pid>/ns/<kind>` (None: the host's,
    i.e. the kubelet's, for hostNetwork/hostIPC/hostPID pods)."""

    pause_pid: int | None
    network: bool = True   # the pod has its own network (and UTS) namespace
    ipc: bool = True       # the pod has its own IPC namespace
    pid: bool = False      # the pause holds a PID namespace the containers share
    # An ephemeral container's targetContainerName: the init pid of that container, whose PID
    # namespace it joins (containerd's NamespaceMode TARGET), so `ps` shows the target's processes.
    pid_target: int | None = None


def pod_ref(pod: Obj) -> str:
    """`format.Pod`: name_namespace(uid), as the kubelet names a pod in its messages."""
    meta = pod["metadata"]
    return f"{meta['name']}_{meta.get('namespace', 'default')}({meta.get('uid', '')})"


def effective_security_context(pod: Obj, container: Obj) -> Obj:
    """securitycontext.DetermineEffectiveSecurityContext: the container's own fields over the
    pod's (runAsUser, runAsGroup, runAsNonRoot, seccompProfile, seLinuxOptions)."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    out = {k: pod_sc[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile", "seLinuxOptions")
           if k in pod_sc}
    out.update(container.get("securityContext") or {})
    return out


IMAGE_USER = 0  # every image knet maps runs as root (the USER of upstream's test images)


def verify_run_as_non_root(pod: Obj, container: Obj, image_uid: int | None = IMAGE_USER) -> None:
    """kuberuntime's verifyRunAsNonRoot, with its messages."""
    sc = effective_security_context(pod, container)
    if not sc.get("runAsNonRoot"):
        return
    if sc.get("runAsUser") is not None:
        if int(sc["runAsUser"]) == 0:
            raise ContainerConfigError(f"container's runAsUser breaks non-root policy (pod: \"{pod_ref(pod)}\", "
                                       f"container: {container['name']})")
        return
    if image_uid == 0:
        raise ContainerConfigError(f"container has runAsNonRoot and image will run as root (pod: \"{pod_ref(pod)}\", "
                                   f"container: {container['name']})")


def capabilities(container: Obj, all_caps: Iterable[str] = ALL_CAPABILITIES) -> list[str]:
    """containerd's WithCapabilities: the default set, `ALL` added, `ALL` dropped, then the
    individual adds and drops (names without CAP_, any case); privileged: every capability
    (`all_caps`: those the runtime has itself)."""
    sc = container.get("securityContext") or {}
    all_caps = list(all_caps)
    if sc.get("privileged"):
        return all_caps
    spec = sc.get("capabilities") or {}
    add = [str(c).upper() for c in spec.get("add") or []]
    drop = [str(c).upper() for c in spec.get("drop") or []]
    caps = list(DEFAULT_CAPABILITIES)
    if "ALL" in add:
        caps = list(all_caps)
    if "ALL" in drop:
        caps = []
    for name in add:
        if name != "ALL" and f"CAP_{name}" not in caps:
            caps.append(f"CAP_{name}")
    drops = {f"CAP_{name}" for name in drop if name != "ALL"}
    return [c for c in caps if c not in drops]


def capability_names(mask: int) -> tuple[str, ...]:
    """The capabilities of a /proc/PID/status CapBnd-style mask (bits knet has no name for are
    left out)."""
    return tuple(c for bit, c in enumerate(ALL_CAPABILITIES) if mask >> bit & 1)


def capability_mask(caps: Iterable[str]) -> int:
    """The bit mask /proc/PID/status shows as CapEff for `caps`."""
    return sum(1 << ALL_CAPABILITIES.index(c) for c in caps if c in ALL_CAPABILITIES)


def no_new_privileges(container: Obj) -> bool:
    """securitycontext.AddNoNewPrivileges: only allowPrivilegeEscalation: false sets it (and
    never for a privileged container or one with CAP_SYS_ADMIN, which validation refuses)."""
    sc = container.get("securityContext") or {}
    if sc.get("privileged") or "CAP_SYS_ADMIN" in capabilities(container):
        return False
    return sc.get("allowPrivilegeEscalation") is False


def seccomp(pod: Obj, container: Obj) -> Obj | None:
    """The linux.seccomp section: RuntimeDefault -> the deny list above; Unconfined (and no
    profile at all: the kubelet's default, as upstream) -> none; privileged -> none (containerd
    applies no profile to a privileged container)."""
    sc = effective_security_context(pod, container)
    if sc.get("privileged"):
        return None
    profile = sc.get("seccompProfile") or {}
    kind = profile.get("type")
    if kind == "RuntimeDefault":
        return {"defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": list(SECCOMP_DENIED), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}]}
    if kind == "Localhost":
        raise ContainerConfigError(f"localhost seccomp profiles are not supported by knet "
                                   f"({profile.get('localhostProfile', '')!r})")
    return None


def _bind(source: str, destination: str, read_only: bool, recursive: bool = True) -> Obj:
    return {"destination": destination, "type": "bind", "source": source,
            "options": ["rbind" if recursive else "bind", "ro" if read_only else "rw"]}


def missing_mount_points(mounts: list[tuple[str, str, bool]], system_dirs: Iterable[str],
                         exists) -> dict[str, list[str]]:
    """system dir -> the mount destinations inside it that the host lacks (`exists(path)`):
    those need an overlay layer holding them."""
    out: dict[str, list[str]] = {}
    for _, dst, _ in mounts:
        for d in system_dirs:
            if dst.startswith(d.rstrip("/") + "/") and not exists(dst):
                out.setdefault(d, []).append(dst)
    return out


def kernel_mounts(privileged: bool, readonly_sys: bool = True, dev_shm: str | None = None) -> list[Obj]:
    """/proc, /dev and its pts/shm/mqueue, /sys, as containerd's default spec has them. dev_shm:
    the pod's shared /dev/shm to bind (knet.node.podshm), else a tmpfs of the container's own."""
    sys_mode = "ro" if readonly_sys and not privileged else "rw"
    shm = _bind(dev_shm, "/dev/shm", False) if dev_shm else {
        "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
        "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755",
                                                                               "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        shm,
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", sys_mode]},
    ]


def _namespaces(pod: Obj, ns: SandboxNamespaces) -> list[Obj]:
    spec = pod.get("spec") or {}
    out: list[Obj] = [{"type": "mount"}]
    if not spec.get("hostPID"):
        if spec.get("shareProcessNamespace") and ns.pid and ns.pause_pid is not None:
            # The pause unshared it for its children and forked its PID 1 into it.
            out.append({"type": "pid", "path": f"/proc/{ns.pause_pid}/ns/pid_for_children"})
        elif ns.pid_target is not None:
            out.append({"type": "pid", "path": f"/proc/{ns.pid_target}/ns/pid"})
        else:
            out.append({"type": "pid"})
    if ns.pause_pid is not None:
        if ns.network and not spec.get("hostNetwork"):
            out += [{"type": "network", "path": f"/proc/{ns.pause_pid}/ns/net"},
                    {"type": "uts", "path": f"/proc/{ns.pause_pid}/ns/uts"}]
        if ns.ipc and not spec.get("hostIPC"):
            out.append({"type": "ipc", "path": f"/proc/{ns.pause_pid}/ns/ipc"})
    return out


def _user(pod: Obj, container: Obj) -> Obj:
    sc = effective_security_context(pod, container)
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    uid = int(sc.get("runAsUser", IMAGE_USER))
    gid = int(sc.get("runAsGroup", 0))  # containerd: the image's group of that user; root's here
    extra = [int(g) for g in pod_sc.get("supplementalGroups") or []]
    if pod_sc.get("fsGroup") is not None:
        extra.append(int(pod_sc["fsGroup"]))
    user: Obj = {"uid": uid, "gid": gid}
    groups = sorted(set(extra) - {gid})
    if groups:
        user["additionalGids"] = groups
    return user


def container_spec(pod: Obj, container: Obj, *, argv: list[str], env: dict[str, str],
                   mounts: list[tuple[str, str, bool]], layout: HostLayout, namespaces: SandboxNamespaces,
                   overlays: dict[str, str] | None = None, cgroups_path: str | None = None,
                   dev_shm: str | None = None) -> Obj:
    """config.json for one container. `mounts`: the pod's (source, destination, read_only)
    binds (its /etc files and volumes, volumes.bind_mounts), parents first. `overlays`: system
    dir -> a directory of the mount points it lacks (a configMap at /etc/coredns: runc cannot
    create one in a read-only bind), shown as a read-only overlay over the host's. `cgroups_path`:
    linux.cgroupsPath (None: runc's default, a cgroup named after the container below runc's
    own); limits go in linux.resources, which this builder leaves to the cgroup layer. `dev_shm`:
    the pod's /dev/shm, shared by its containers (None: one of the container's own)."""
    verify_run_as_non_root(pod, container)
    overlays = overlays or {}
    sc = container.get("securityContext") or {}
    privileged = bool(sc.get("privileged"))
    caps = capabilities(container, layout.all_capabilities)
    path = ":".join([DEFAULT_PATH, *layout.extra_path])
    full_env = {"PATH": path, "HOME": "/root"}
    if layout.python_path:
        full_env["PYTHONPATH"] = layout.python_path
    tty = bool(container.get("tty"))
    if tty:  # containerd's WithTTY
        full_env["TERM"] = "xterm"
    full_env.update(env)
    process: Obj = {
        "terminal": tty,
        "user": _user(pod, container),
        "args": list(argv),
        "env": [f"{k}={v}" for k, v in full_env.items()],
        "cwd": container.get("workingDir") or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": no_new_privileges(container),
    }
    all_mounts = kernel_mounts(privileged, dev_shm=dev_shm)
    if privileged:  # the host's devices (containerd adds each host device to the spec)
        all_mounts[1] = _bind("/dev", "/dev", False)
        all_mounts = [m for m in all_mounts if m["destination"] not in ("/dev/pts",)]
    for d in layout.system_dirs:
        if d in overlays:  # the host's dir under a layer holding mount points it lacks; read-only
            all_mounts.append({"destination": d, "type": "overlay", "source": "overlay",
                               "options": [f"lowerdir={overlays[d]}:{d}"]})
        else:
            # Without what the node mounted below it: a node's /etc/kubernetes (its pki, admin.conf)
            # and /etc/cni are the node's, not every container's (a hostPath volume shows them).
            all_mounts.append(_bind(d, d, True, recursive=False))
    all_mounts += [_bind(d, d, True) for d in layout.runtime_dirs]
    all_mounts += [_bind(src, dst, ro) for src, dst, ro in mounts]
    linux: Obj = {"namespaces": _namespaces(pod, namespaces)}
    if not privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    else:  # every device node usable (runc's default device rules allow only the standard ones)
        linux["resources"] = {"devices": [{"allow": True, "access": "rwm"}]}
    profile = seccomp(pod, container)
    if profile is not None:
        linux["seccomp"] = profile
    if cgroups_path is not None:
        linux["cgroupsPath"] = cgroups_path
    return {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": "rootfs", "readonly": bool(sc.get("readOnlyRootFilesystem"))},
        "mounts": all_mounts,
        "linux": linux,
    }
