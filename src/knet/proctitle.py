"""Process titles as a kubeadm node shows them: `ps -ef` prints `kube-apiserver --advertise-address=…`,
`/usr/bin/kubelet --kubeconfig=…`, `/usr/local/bin/kube-proxy --config=…`, not `python3 …/knet …`.

knet's components are Python programs standing in for kubeadm's binaries. `knet as-binary ARGV`
(knet.cli.binary) runs the component that ARGV[0] names and retitles its process as ARGV: the
argv the kubelet was asked to run (a container's command and args, as `kubectl get pod -o yaml`
shows them), or the kubelet's own command line as `knet up` writes it. `setproctitle` rewrites
/proc/PID/cmdline (one string, the words joined by spaces) and the thread name (/proc/PID/comm,
what `ps -e`, `pgrep -x` and `top` show), which the kernel sets to the binary's basename.

The pure part (which knet command a binary is, the title, the comm, reading a command line back
into words) is apart from the one side effect, `set_title`.
"""

from __future__ import annotations

import os

# kubeadm's binaries (and the network add-on's) -> the knet command that stands in for each.
BINARIES: dict[str, str] = {
    "kube-apiserver": "apiserver",
    "kube-controller-manager": "controller-manager",
    "kube-scheduler": "scheduler",
    "kubelet": "kubelet",
    "kube-proxy": "kube-proxy",
    "coredns": "dns",
    "knet-cni-agent": "cni-agent",
    "knet-netpol": "netpol-controller",
    "nginx-ingress-controller": "ingress-controller",
}
# Where a kubeadm node has the kubelet: systemd's kubelet.service runs /usr/bin/kubelet.
KUBELET_BINARY = "/usr/bin/kubelet"
TASK_COMM_LEN = 16  # the kernel's thread name: 15 bytes and a NUL


def command_of(binary: str) -> str | None:
    """`/usr/local/bin/kube-proxy` -> "kube-proxy", `kube-apiserver` -> "apiserver"; None: not one
    of the binaries knet stands in for."""
    return BINARIES.get(os.path.basename(binary))


def title(argv: list[str]) -> str:
    """What `ps -ef` prints for a process run as argv: its words joined by single spaces."""
    return " ".join(argv)


def comm(argv: list[str]) -> str:
    """The thread name the kernel gives a process exec'd as argv: the binary's basename, cut to
    15 bytes (`kube-controller-manager` shows as `kube-controller`, as on a kubeadm node)."""
    return os.path.basename(argv[0]).encode()[: TASK_COMM_LEN - 1].decode(errors="ignore") if argv else ""


def cmdline_words(raw: bytes) -> list[str]:
    """The words of /proc/PID/cmdline. A process that set its title has one string there, its
    words joined by spaces (setproctitle); split it back, so that readers of command lines (knet
    down, tests, benchmarks) see the same words either way."""
    parts = [p.decode(errors="replace") for p in raw.split(b"\0") if p]
    if len(parts) == 1 and " " in parts[0]:
        return parts[0].split()
    return parts


def set_title(argv: list[str]) -> None:
    """Retitle this process as argv (cmdline and thread name). Call it before starting threads:
    a thread takes its name from the thread that started it."""
    import setproctitle

    setproctitle.setproctitle(title(argv))
    setproctitle.setthreadtitle(comm(argv))
