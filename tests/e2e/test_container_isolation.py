"""A container's isolation under runc, tried from inside pods of the real cluster as an attacker
would (issue #13): what of the host it sees, what it may write, mount, ptrace or open, its PID
namespace and capabilities, and the kubelet refusing runAsNonRoot with a root image user.
Every test makes its own namespace and deletes it, also on failure."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import yaml

import knet

from .cluster_namespaces import busybox_pod, cluster_namespace, wait_running

pytestmark = pytest.mark.e2e

DEFAULT_CAP_EFF = "00000000a80425fb"  # containerd's (and Docker's) default set


@pytest.fixture
def iso_ns(knet_cluster):
    with cluster_namespace(knet_cluster, f"iso-{secrets.token_hex(3)}") as ns:
        yield ns


def run_pod(cluster, ns: str, name: str, *, container_sc: dict | None = None, pod_sc: dict | None = None) -> None:
    pod = busybox_pod(name, ns)
    if container_sc:
        pod["spec"]["containers"][0]["securityContext"] = container_sc
    if pod_sc:
        pod["spec"]["securityContext"] = pod_sc
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
    wait_running(cluster, ns, name)


def sh(cluster, ns: str, pod: str, script: str):
    return cluster.kubectl("exec", "-n", ns, pod, "--", "sh", "-c", script, check=False, timeout=30)


def test_the_hosts_private_files_and_the_cluster_state_are_invisible(knet_cluster, iso_ns):
    marker = Path("/root") / f"knet-e2e-secret-{secrets.token_hex(4)}"
    marker.write_text("secret\n")
    try:
        run_pod(knet_cluster, iso_ns, "client")
        state = knet_cluster.state_dir
        # knet's own source directory is shown read-only (its workloads run it), nothing else of
        # the checkout it lives in
        checkout = Path(knet.__file__).resolve().parent.parent.parent
        for path in ("/var/lib/knet", str(state), str(state / knet_cluster.name / "pki" / "ca.key"), str(marker),
                     "/home", "/var/lib", str(checkout / "README.md"), str(checkout / ".git")):
            p = sh(knet_cluster, iso_ns, "client", f"test -e {path} && echo VISIBLE || echo absent")
            assert p.stdout.strip() == "absent", (path, p.stdout, p.stderr)
        listing = sh(knet_cluster, iso_ns, "client", "ls -A /root").stdout.split()
        assert listing == [".pyenv"] or listing == [], listing  # only the interpreter's prefix, if it lives there
        # the pod's own files are there
        p = sh(knet_cluster, iso_ns, "client", "cat /etc/hostname; grep -c nameserver /etc/resolv.conf; "
                                               "test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo tok")
        assert p.stdout.split() == ["client", "1", "tok"], p.stdout + p.stderr
    finally:
        marker.unlink()


def test_writes_outside_the_writable_paths_fail(knet_cluster, iso_ns):
    run_pod(knet_cluster, iso_ns, "client")
    for path in ("/usr/bin/evil", "/etc/evil", "/bin/evil", "/var/run/secrets/kubernetes.io/serviceaccount/evil",
                 "/etc/kubernetes-evil"):
        p = sh(knet_cluster, iso_ns, "client", f"echo x > {path}")
        assert p.returncode != 0 and "Read-only file system" in p.stderr, (path, p.stderr)
    p = sh(knet_cluster, iso_ns, "client", "echo ok > /tmp/f && cat /tmp/f && echo ok > /scratch && cat /scratch")
    assert p.stdout.split() == ["ok", "ok"], p.stderr  # the container's own writable layer


def test_read_only_root_filesystem(knet_cluster, iso_ns):
    run_pod(knet_cluster, iso_ns, "ro", container_sc={"readOnlyRootFilesystem": True})
    for path in ("/scratch", "/tmp/f"):
        p = sh(knet_cluster, iso_ns, "ro", f"echo x > {path}")
        assert p.returncode != 0 and "Read-only file system" in p.stderr, (path, p.stderr)


def test_mount_and_module_loading_fail(knet_cluster, iso_ns):
    run_pod(knet_cluster, iso_ns, "client")
    p = sh(knet_cluster, iso_ns, "client", "mkdir -p /mnt && mount -t tmpfs none /mnt")
    assert p.returncode != 0 and "permission denied" in p.stderr.lower(), p.stderr
    p = sh(knet_cluster, iso_ns, "client", "mount --bind /tmp /mnt")
    assert p.returncode != 0, p.stderr
    p = sh(knet_cluster, iso_ns, "client", "python3 -c 'import ctypes; libc = ctypes.CDLL(None); "
                                           "print(libc.init_module(b\"\", 0, b\"\"), ctypes.get_errno())'")
    assert p.stdout.split()[0] == "-1", p.stdout + p.stderr  # no CAP_SYS_MODULE


def test_processes_of_the_node_and_other_containers_are_invisible(knet_cluster, iso_ns):
    run_pod(knet_cluster, iso_ns, "client")
    run_pod(knet_cluster, iso_ns, "other")
    p = sh(knet_cluster, iso_ns, "client", "ps -eo pid,args --no-headers")
    rows = [line.split(None, 1) for line in p.stdout.strip().splitlines()]
    commands = {args for _, args in rows}
    assert ("1", "sleep 3600") in [(pid, args) for pid, args in rows], p.stdout
    assert all(a == "sleep 3600" or a.startswith(("sh -c", "ps -eo")) for a in commands), p.stdout
    # ptrace of another container's process: there is none to see; of one's own PID 1 the
    # default capabilities allow nothing beyond the container.
    p = sh(knet_cluster, iso_ns, "client", "test -e /proc/1/cmdline && cat /proc/1/cmdline | tr '\\0' ' '")
    assert p.stdout.strip() == "sleep 3600"


def test_default_capabilities_and_net_raw(knet_cluster, iso_ns):
    run_pod(knet_cluster, iso_ns, "client")
    p = sh(knet_cluster, iso_ns, "client", "grep CapEff /proc/self/status")
    assert p.stdout.split() == ["CapEff:", DEFAULT_CAP_EFF], p.stdout
    raw = "python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); print(1)'"
    assert sh(knet_cluster, iso_ns, "client", raw).stdout.strip() == "1"
    assert sh(knet_cluster, iso_ns, "client", "ping -c1 -W2 127.0.0.1").returncode == 0

    run_pod(knet_cluster, iso_ns, "noraw", container_sc={"capabilities": {"drop": ["NET_RAW"]}})
    p = sh(knet_cluster, iso_ns, "noraw", "grep CapEff /proc/self/status")
    assert p.stdout.split() == ["CapEff:", f"{int(DEFAULT_CAP_EFF, 16) & ~(1 << 13):016x}"], p.stdout
    p = sh(knet_cluster, iso_ns, "noraw", raw)
    assert p.returncode != 0 and "Operation not permitted" in p.stderr, p.stderr
    assert sh(knet_cluster, iso_ns, "noraw", "ping -c1 -W2 127.0.0.1").returncode != 0

    run_pod(knet_cluster, iso_ns, "admin", container_sc={"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}})
    p = sh(knet_cluster, iso_ns, "admin", "grep CapEff /proc/self/status")
    assert p.stdout.split() == ["CapEff:", f"{1 << 12:016x}"], p.stdout


def test_seccomp_runtime_default_refuses_what_unconfined_allows(knet_cluster, iso_ns):
    # A user namespace needs no capability: only the profile stands between a container and it.
    run_pod(knet_cluster, iso_ns, "unconfined")
    assert sh(knet_cluster, iso_ns, "unconfined", "unshare --user true").returncode == 0
    run_pod(knet_cluster, iso_ns, "confined", pod_sc={"seccompProfile": {"type": "RuntimeDefault"}})
    p = sh(knet_cluster, iso_ns, "confined", "unshare --user true")
    assert p.returncode != 0 and "Operation not permitted" in p.stderr, p.stderr


def test_allow_privilege_escalation_false_sets_no_new_privs(knet_cluster, iso_ns):
    run_pod(knet_cluster, iso_ns, "nnp", container_sc={"allowPrivilegeEscalation": False})
    assert sh(knet_cluster, iso_ns, "nnp", "grep NoNewPrivs /proc/self/status").stdout.split() == ["NoNewPrivs:", "1"]


def test_run_as_user(knet_cluster, iso_ns):
    run_pod(knet_cluster, iso_ns, "user", pod_sc={"runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": True})
    assert sh(knet_cluster, iso_ns, "user", "id -u; id -g").stdout.split() == ["1000", "3000"]
    p = sh(knet_cluster, iso_ns, "user", "echo x > /etc/x; grep CapEff /proc/self/status")
    assert p.stdout.split() == ["CapEff:", "0" * 16]


def test_run_as_non_root_with_a_root_image_user_is_refused(knet_cluster, iso_ns):
    pod = busybox_pod("nonroot", iso_ns)
    pod["spec"]["securityContext"] = {"runAsNonRoot": True}
    knet_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))

    def waiting():
        out = knet_cluster.kubectl("get", "pod", "nonroot", "-n", iso_ns, "-o", "json", check=False).stdout
        statuses = (json.loads(out or "{}").get("status") or {}).get("containerStatuses") or []
        state = statuses and (statuses[0].get("state") or {}).get("waiting")
        # ContainerCreating comes first (the sandbox is reported before the container's config)
        return state if state and state.get("reason") != "ContainerCreating" else None

    state = knet_cluster.wait_for("CreateContainerConfigError", waiting, timeout=30, interval=0.2)
    uid = knet_cluster.kubectl("get", "pod", "nonroot", "-n", iso_ns, "-o", "jsonpath={.metadata.uid}").stdout
    assert state["reason"] == "CreateContainerConfigError"
    assert state["message"] == (f'container has runAsNonRoot and image will run as root (pod: "nonroot_{iso_ns}({uid})", '
                                f"container: main)")
    out = knet_cluster.kubectl("get", "pod", "nonroot", "-n", iso_ns).stdout
    assert "CreateContainerConfigError" in out


def test_share_process_namespace(knet_cluster, iso_ns):
    pod = busybox_pod("shared", iso_ns)
    pod["spec"]["shareProcessNamespace"] = True
    pod["spec"]["containers"].append({"name": "side", "image": "busybox:1.36", "command": ["sleep", "7777"]})
    knet_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
    wait_running(knet_cluster, iso_ns, "shared")
    p = knet_cluster.kubectl("exec", "-n", iso_ns, "shared", "-c", "main", "--", "ps", "-eo", "pid,args", "--no-headers")
    rows = [line.split(None, 1) for line in p.stdout.strip().splitlines()]
    args = [a for _, a in rows]
    assert rows[0][0] == "1" and "pause" in rows[0][1], p.stdout  # the sandbox's pause is PID 1
    assert "sleep 3600" in args and "sleep 7777" in args, p.stdout
    assert not any("kubelet" in a or "kube-proxy" in a for a in args), p.stdout


def test_kubectl_cp_writes_into_the_container_not_the_host(knet_cluster, iso_ns, tmp_path):
    run_pod(knet_cluster, iso_ns, "client")
    name = f"knet-cp-{secrets.token_hex(4)}"
    src = tmp_path / "in.txt"
    src.write_text("copied in\n")
    knet_cluster.kubectl("cp", str(src), f"{iso_ns}/client:/tmp/{name}")
    assert sh(knet_cluster, iso_ns, "client", f"cat /tmp/{name}").stdout == "copied in\n"
    assert not Path(f"/tmp/{name}").exists()  # the container's /tmp is its own
    sh(knet_cluster, iso_ns, "client", f"echo copied out > /tmp/{name}.out")
    knet_cluster.kubectl("cp", f"{iso_ns}/client:/tmp/{name}.out", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == "copied out\n"


def test_containers_of_a_pod_share_its_dev_shm_and_other_pods_do_not(knet_cluster, iso_ns):
    """containerd gives each sandbox one 64 MiB tmpfs at /dev/shm, bound into all its containers
    (they share the pod's IPC namespace; POSIX shared memory lives there)."""
    pod = busybox_pod("shm", iso_ns)
    pod["spec"]["containers"].append({"name": "side", "image": "busybox:1.36", "command": ["sleep", "7777"]})
    knet_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
    run_pod(knet_cluster, iso_ns, "other")
    wait_running(knet_cluster, iso_ns, "shm")

    def in_container(pod_name: str, container: str, script: str):
        return knet_cluster.kubectl("exec", "-n", iso_ns, pod_name, "-c", container, "--", "sh", "-c", script,
                                    check=False, timeout=30)

    p = in_container("shm", "main", "echo segment > /dev/shm/knet-seg && df -k /dev/shm | tail -1 && stat -c %a /dev/shm")
    assert p.returncode == 0, p.stderr
    size_kib, mode = p.stdout.split()[1], p.stdout.split()[-1]
    assert (size_kib, mode) == ("65536", "1777"), p.stdout
    assert in_container("shm", "side", "cat /dev/shm/knet-seg").stdout == "segment\n"
    p = in_container("other", "main", "test -e /dev/shm/knet-seg && echo VISIBLE || echo absent")
    assert p.stdout.strip() == "absent", p.stdout + p.stderr
    # noexec, as containerd's: a file put there cannot be run
    p = in_container("shm", "main", "cp /bin/true /dev/shm/t && /dev/shm/t && echo RAN")
    assert "RAN" not in p.stdout and p.returncode != 0, p.stdout


def _container_status(cluster, ns: str, name: str) -> dict:
    out = cluster.kubectl("get", "pod", name, "-n", ns, "-o", "json", check=False).stdout
    statuses = (json.loads(out).get("status") or {}).get("containerStatuses") or [{}] if out else [{}]
    return statuses[0]


def test_a_container_the_runtime_cannot_start_is_start_error_and_run_container_error(knet_cluster, iso_ns):
    """As the kubelet over containerd: `runc run` failing to exec the command ends the attempt
    terminated StartError (exit 128, the runtime's message), a Warning event `Failed` says so, and a
    container that will be restarted waits in RunContainerError (then back-off) with it as last state."""
    for name, policy in (("never", "Never"), ("always", "Always")):
        pod = busybox_pod(name, iso_ns)
        pod["spec"]["restartPolicy"] = policy
        pod["spec"]["containers"][0]["command"] = ["knet-no-such-command"]
        knet_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))

    def terminated_start_error() -> bool:
        term = (_container_status(knet_cluster, iso_ns, "never").get("state") or {}).get("terminated") or {}
        return term.get("reason") == "StartError"

    knet_cluster.wait_for("never StartError", terminated_start_error, timeout=60, interval=0.3)
    term = _container_status(knet_cluster, iso_ns, "never")["state"]["terminated"]
    assert term["exitCode"] == 128
    assert 'exec: "knet-no-such-command": executable file not found in $PATH' in term["message"], term
    phase = knet_cluster.kubectl("get", "pod", "never", "-n", iso_ns, "-o", "jsonpath={.status.phase}").stdout
    assert phase == "Failed"

    def waiting_after_start_error() -> bool:
        status = _container_status(knet_cluster, iso_ns, "always")
        waiting = (status.get("state") or {}).get("waiting") or {}
        last = (status.get("lastState") or {}).get("terminated") or {}
        return waiting.get("reason") in ("RunContainerError", "CrashLoopBackOff") and last.get("reason") == "StartError"

    knet_cluster.wait_for("always RunContainerError", waiting_after_start_error, timeout=60, interval=0.3)
    events = knet_cluster.kubectl("get", "events", "-n", iso_ns, "--field-selector", "involvedObject.name=never",
                                  "-o", "json").stdout
    failed = [e for e in json.loads(events)["items"] if e["reason"] == "Failed"]
    assert failed and failed[0]["type"] == "Warning", events
    assert failed[0]["message"].startswith("Error: ") and "knet-no-such-command" in failed[0]["message"]
    assert not any(e["reason"] == "Started" for e in json.loads(events)["items"])
