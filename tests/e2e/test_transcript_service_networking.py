"""The reference transcript (`/work/shared/reference/kubeadm-service-networking-lab.txt`, the CKA
practice test "Service Networking" on a kubeadm v1.29 cluster), replayed on the session cluster as
one script in the operator's shell on the controlplane (`knet ssh controlplane`, where the
transcript's prompt is `controlplane ~ ➜`), with the answers a student reads from it asserted:

  What network range are the nodes part of?          kubectl get nodes -o wide, ip addr (eth0)
  What is the range of IP addresses for pods?        ps -ef | grep alloc (--cluster-cidr, the add-on's --ipalloc-range)
  What is the IP range configured for services?      kube-apiserver.yaml | grep cluster-ip-range, kubectl get svc -A
  How many kube-proxy pods are deployed?             kubectl get pods -A | grep proxy
  What type of proxy is kube-proxy configured to use? iptables --list on node01, kube-proxy's log, its ConfigMap
  How does the cluster ensure kube-proxy on every node? kubectl describe pod kube-proxy-… (Controlled By: DaemonSet)
  Which network add-on?                              kubectl get pods -A / get ds (knet-net, where the lab has weave-net)

Every command the operator types in the transcript is here, in its order (pod names picked as
the operator picked them, from the listing before); the lab's own answers add `ip addr`, `kubectl
-n kube-system get ds` and `kubectl logs kube-proxy-…`. Where knet's answers differ from
kubeadm's on purpose, docs/kubeadm-differences.md says how.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from dataclasses import dataclass

import pytest
import yaml

pytestmark = pytest.mark.e2e

TRANSCRIPT = "/work/shared/reference/kubeadm-service-networking-lab.txt"
MARK = "@@@"

# (prompt host, command) in the transcript's order. $CD, $KP1, $KP2 are the pod names the operator
# copied from the listing before (a CoreDNS pod, the kube-proxy pods of controlplane and node01).
SESSION = [
    ("controlplane", "kubectl get nodes"),
    ("controlplane", "kubectl get nodes -o wide"),
    ("controlplane", "ip -4 addr show eth0"),
    ("controlplane", "ps -ef | grep alloc"),
    ("controlplane", "kubectl get svc -A"),
    ("controlplane", "kubectl get pods -A"),
    ("controlplane", "kubectl describe pod $CD -n kube-system"),
    ("controlplane", "kubectl get pod $CD -n kube-system"),
    ("controlplane", "kubectl get pod $CD -n kube-system -o yaml"),
    ("controlplane", "kubectl get pods -A | grep proxy"),
    ("node01", "ssh node01 crictl ps"),
    ("node01", "ssh node01 iptables --list"),
    ("controlplane", "ps -ef | grep proxy"),
    ("controlplane", "ls /var/lib/"),
    ("controlplane", "kubectl get pods -A"),
    ("controlplane", "kubectl describe pod $KP1 -n kube-system"),
    ("controlplane", "kubectl get configmap"),
    ("controlplane", "kubectl get configmap -A"),
    ("controlplane", "kubectl get configmap kube-proxy -n kube-system"),
    ("controlplane", "kubectl get configmap kube-proxy -n kube-system -o yaml"),
    ("controlplane", "kubectl -n kube-system get ds"),
    ("controlplane", "kubectl -n kube-system get pods"),
    ("controlplane", "cat /etc/kubernetes/manifests/kube-apiserver.yaml | grep cluster-ip-range"),
    ("controlplane", "kubectl logs -n kube-system $KP2"),
]

PICK_NAMES = r"""
pods() { kubectl -n kube-system get pods --no-headers -o custom-columns=N:.metadata.name,NODE:.spec.nodeName; }
CD=$(pods | awk '/^coredns-/ {print $1; exit}')
KP1=$(pods | awk '/^kube-proxy-/ && $2 == "controlplane" {print $1; exit}')
KP2=$(pods | awk '/^kube-proxy-/ && $2 == "node01" {print $1; exit}')
"""


@dataclass
class Answer:
    command: str
    output: str
    rc: int

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()

    def table(self) -> list[dict[str, str]]:
        """kubectl's (and crictl's) table as rows of column -> value: a column starts where its
        header starts (a header may hold a space: NODE SELECTOR, POD ID)."""
        header, *rows = self.lines
        columns = list(re.finditer(r"\S+(?: \S+)*", header))
        ends = [c.start() for c in columns[1:]] + [None]
        return [{c.group(0): row[c.start():end].strip() for c, end in zip(columns, ends, strict=True)}
                for row in rows]


def script() -> str:
    """One shell script: each command's output between `@@@ <prompt> <command>` and `@@@ rc=N`."""
    lines = ["set +e", PICK_NAMES,
             f'say() {{ printf "\\n{MARK} %s ~ ➜  %s\\n" "$1" "$2"; }}',
             f'done_() {{ printf "{MARK} rc=%s\\n" "$1"; }}']
    for host, command in SESSION:
        shown = command.replace('"', '\\"')
        lines.append(f'say {host} "{shown}"; {{ {command}; }} 2>&1; done_ $?')
    return "\n".join(lines) + "\n"


def parse(output: str) -> list[Answer]:
    answers: list[Answer] = []
    current: list[str] | None = None
    command = ""
    for line in output.splitlines():
        if line.startswith(f"{MARK} rc="):
            answers.append(Answer(command, "\n".join(current or []), int(line.split("=", 1)[1])))
            current = None
        elif line.startswith(f"{MARK} "):
            command = line.split("➜", 1)[1].strip()
            current = []
        elif current is not None:
            current.append(line)
    return answers


@pytest.fixture(scope="module")
def replay(knet_cluster, tmp_path_factory):
    """The transcript's session, run once in `knet ssh controlplane`; the caller's KUBECONFIG names
    an empty file, so kubectl in the node works only with the node's own ~/.kube/config."""
    assert os.path.exists(TRANSCRIPT), "the reference transcript is missing"
    elsewhere = tmp_path_factory.mktemp("operator") / "config"
    elsewhere.write_text("")
    env = {**knet_cluster.env, "KUBECONFIG": str(elsewhere)}

    def settled():
        # as in the lab: every kube-system pod Running and Ready, one kube-proxy per node (a test
        # before this one may have deleted a DaemonSet pod)
        pods = json.loads(knet_cluster.kubectl("get", "pods", "-n", "kube-system", "-o", "json").stdout)["items"]
        proxies = [p for p in pods if p["metadata"]["name"].startswith("kube-proxy-")]
        return len(proxies) == len(knet_cluster.config["nodes"]) and all(
            p["status"].get("phase") == "Running" and "deletionTimestamp" not in p["metadata"]
            and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}]) for p in pods)

    knet_cluster.wait_for("kube-system settled", settled, timeout=60, interval=0.5)
    from knet.cluster.bootstrap import knet_argv

    result = subprocess.run([*knet_argv(), "ssh", "--name", knet_cluster.name, "controlplane", "--",
                             "bash", "-c", script()],
                            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    answers = parse(result.stdout)
    by_command: dict[str, list[Answer]] = {}
    for a in answers:
        by_command.setdefault(re.sub(r"(coredns|kube-proxy)-[a-z0-9-]+", r"\1-POD", a.command), []).append(a)
    # the transcript's commands, each answered (kubectl get pods -A twice)
    assert len(answers) == len(SESSION), result.stdout[-3000:]
    return by_command, knet_cluster


def answer(replay, command: str, rc: int = 0) -> Answer:
    by_command, _ = replay
    found = by_command[command][0]
    assert found.rc == rc, (command, found.output)
    return found


def config(replay) -> dict:
    return replay[1].config


def nodes_of(replay) -> dict[str, str]:
    return {n["name"]: n["ip"] for n in config(replay)["nodes"]}


def proxy_mode(replay) -> str:
    return config(replay).get("proxyMode") or "iptables"


def test_the_replay_runs_every_command_the_transcript_operator_typed(replay):
    """Each prompt line of the transcript has its command in SESSION (the same words)."""
    with open(TRANSCRIPT) as f:
        prompts = [re.match(r"^(?:controlplane|node01) ~ [➜✖]\s*(.*)$", line) for line in f]
    typed = [" ".join(m.group(1).split()) for m in prompts if m]
    typed = [t for t in typed if t and t != "ssh node01"]
    assert len(typed) >= 15, typed
    ours = {re.sub(r"\$\w+", "POD", c) for _, c in SESSION}
    for command in typed:
        generic = re.sub(r"(coredns|kube-proxy)-[a-z0-9]+(-[a-z0-9]+)?", "POD", command)
        # on node01 the operator typed `crictl ps` after `ssh node01`: here one command each
        assert generic in ours or f"ssh node01 {generic}" in ours, command


def test_node_range(replay):
    """`kubectl get nodes -o wide`: every node Ready at one version, its INTERNAL-IP in one network,
    the one eth0 of the controlplane is on (`ip addr`: the node range is eth0's network)."""
    rows = answer(replay, "kubectl get nodes -o wide").table()
    nodes = nodes_of(replay)
    assert [r["NAME"] for r in rows] == sorted(nodes)
    assert {r["STATUS"] for r in rows} == {"Ready"}
    assert {r["NAME"]: r["ROLES"] for r in rows}["controlplane"] == "control-plane"
    assert {r["ROLES"] for r in rows if r["NAME"] != "controlplane"} == {"<none>"}
    assert len({r["VERSION"] for r in rows}) == 1
    assert {r["NAME"]: r["INTERNAL-IP"] for r in rows} == nodes
    plain = answer(replay, "kubectl get nodes").table()
    assert [(r["NAME"], r["STATUS"]) for r in plain] == [(r["NAME"], r["STATUS"]) for r in rows]
    inet = re.search(r"inet (\S+)", answer(replay, "ip -4 addr show eth0").output).group(1)
    node_range = ipaddress.IPv4Interface(inet).network
    assert str(node_range) == config(replay)["nodeNetwork"]
    assert all(ipaddress.IPv4Address(ip) in node_range for ip in nodes.values())


def test_pod_range_from_ps_grep_alloc(replay):
    """kube-controller-manager's --allocate-node-cidrs/--cluster-cidr and the add-on's --ipalloc-range
    (where the lab's weave shows it): the pod range; every pod IP on the pod network is in it."""
    pod_range = config(replay)["podSubnet"]
    lines = answer(replay, "ps -ef | grep alloc").lines
    kcm = [line for line in lines if " kube-controller-manager --" in line]
    assert len(kcm) == 1, lines
    flags = kcm[0].split()
    assert {"--allocate-node-cidrs=true", f"--cluster-cidr={pod_range}",
            f"--service-cluster-ip-range={config(replay)['serviceSubnet']}"} <= set(flags)
    addon = [line for line in lines if "--ipalloc-range=" in line and "grep" not in line]
    assert addon and all(f"--ipalloc-range={pod_range}" in line.split() for line in addon), lines
    # the CoreDNS pod the operator described has its IP there, on a node of the node range
    described = answer(replay, "kubectl describe pod coredns-POD -n kube-system").output
    ip = re.search(r"^IP:\s+(\S+)", described, re.M).group(1)
    assert ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(pod_range)
    node, node_ip = re.search(r"^Node:\s+(\S+)/(\S+)", described, re.M).groups()
    assert nodes_of(replay)[node] == node_ip
    assert re.search(r"^Controlled By:\s+ReplicaSet/coredns-", described, re.M)
    pod = yaml.safe_load(answer(replay, "kubectl get pod coredns-POD -n kube-system -o yaml").output)
    assert (pod["status"]["podIP"], pod["status"]["hostIP"], pod["spec"]["nodeName"]) == (ip, node_ip, node)
    row = answer(replay, "kubectl get pod coredns-POD -n kube-system").table()
    assert [(r["READY"], r["STATUS"]) for r in row] == [("1/1", "Running")]


def test_service_range(replay):
    """The apiserver's --service-cluster-ip-range (its static pod manifest) holds every ClusterIP:
    `kubernetes` its first address, kube-dns the tenth, as `kubectl get svc -A` shows."""
    services = config(replay)["serviceSubnet"]
    grep = answer(replay, "cat /etc/kubernetes/manifests/kube-apiserver.yaml | grep cluster-ip-range")
    assert grep.lines == [f"    - --service-cluster-ip-range={services}"]
    network = ipaddress.IPv4Network(services)
    rows = {(r["NAMESPACE"], r["NAME"]): r for r in answer(replay, "kubectl get svc -A").table()}
    assert rows[("default", "kubernetes")]["CLUSTER-IP"] == str(network[1])
    assert rows[("default", "kubernetes")]["PORT(S)"] == "443/TCP"
    assert rows[("kube-system", "kube-dns")]["CLUSTER-IP"] == str(network[10])
    assert rows[("kube-system", "kube-dns")]["PORT(S)"] == "53/UDP,53/TCP,9153/TCP"
    assert all(ipaddress.IPv4Address(r["CLUSTER-IP"]) in network for r in rows.values()
               if r["TYPE"] in ("ClusterIP", "NodePort", "LoadBalancer") and r["CLUSTER-IP"] != "None")


def test_kube_proxy_pods_one_per_node(replay):
    """`kubectl get pods -A | grep proxy`: one kube-proxy pod per node, all Running."""
    found = answer(replay, "kubectl get pods -A | grep proxy").lines
    # (the session cluster may hold other tests' pods whose names say proxy)
    lines = [line for line in found if line.split()[1].startswith("kube-proxy-")]
    assert len(lines) == len(nodes_of(replay)), found
    assert all(line.split()[0] == "kube-system" and line.split()[1].startswith("kube-proxy-")
               and line.split()[2:4] == ["1/1", "Running"] for line in lines), lines
    listing = {r["NAME"]: r for r in answer(replay, "kubectl -n kube-system get pods").table()}
    assert sorted(n for n in listing if n.startswith("kube-proxy-")) == sorted(line.split()[1] for line in lines)
    # the control plane as kubeadm's static pods, and CoreDNS
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert listing[f"{name}-controlplane"]["STATUS"] == "Running", name
    assert len([n for n in listing if n.startswith("coredns-")]) == 2
    assert {r["STATUS"] for r in listing.values()} == {"Running"}
    rows_a = answer(replay, "kubectl get pods -A").table()
    assert {r["NAME"] for r in rows_a if r["NAMESPACE"] == "kube-system"} >= set(listing)


def test_kube_proxy_is_a_daemonset(replay):
    """The describe of a kube-proxy pod says `Controlled By: DaemonSet/kube-proxy`, and its command
    is kubeadm's; `kubectl -n kube-system get ds` lists kube-proxy with one pod per node."""
    described = answer(replay, "kubectl describe pod kube-proxy-POD -n kube-system").output
    assert re.search(r"^Controlled By:\s+DaemonSet/kube-proxy$", described, re.M)
    assert re.search(r"Command:\n\s+/usr/local/bin/kube-proxy\n\s+--config=/var/lib/kube-proxy/config.conf\n"
                     r"\s+--hostname-override=\$\(NODE_NAME\)\n", described), described
    assert re.search(r"^Node:\s+controlplane/", described, re.M)
    n = str(len(nodes_of(replay)))
    ds = {r["NAME"]: r for r in answer(replay, "kubectl -n kube-system get ds").table()}
    assert [ds["kube-proxy"][c] for c in ("DESIRED", "CURRENT", "READY", "AVAILABLE")] == [n] * 4
    assert ds["kube-proxy"]["NODE SELECTOR"] == "kubernetes.io/os=linux"


def test_network_addon(replay):
    """The add-on: a DaemonSet with a pod of two containers per node (the lab's weave-net is 2/2
    as well), whose containers `crictl ps` on node01 lists beside kube-proxy's."""
    n = len(nodes_of(replay))
    ds = {r["NAME"]: r for r in answer(replay, "kubectl -n kube-system get ds").table()}
    assert ds["knet-net"]["READY"] == str(n)
    pods = [r for r in answer(replay, "kubectl -n kube-system get pods").table() if r["NAME"].startswith("knet-net-")]
    assert len(pods) == n and {r["READY"] for r in pods} == {"2/2"}
    rows = answer(replay, "ssh node01 crictl ps").table()
    assert {r["STATE"] for r in rows} == {"Running"}
    by_name = {r["NAME"]: r for r in rows}
    assert by_name["kube-proxy"]["POD"].startswith("kube-proxy-")
    addon = [r for r in rows if r["POD"].startswith("knet-net-")]
    assert len(addon) == 2 and len({r["POD ID"] for r in addon}) == 1, rows
    # node01's kube-proxy pod is the one crictl names
    kp_on_node01 = answer(replay, "kubectl logs -n kube-system kube-proxy-POD").command.split()[-1]
    assert by_name["kube-proxy"]["POD"] == kp_on_node01


def kube_proxy_jumps(listing: str) -> list[tuple[str, str]]:
    """(built-in chain, rule) of each rule in INPUT/FORWARD/OUTPUT that jumps to a KUBE- chain, as
    `iptables --list` prints it (spacing normalized)."""
    out, chain = [], ""
    for line in listing.splitlines():
        if line.startswith("Chain "):
            chain = line.split()[1]
        elif chain in ("INPUT", "FORWARD", "OUTPUT") and line.startswith("KUBE-"):
            out.append((chain, " ".join(line.split())))
    return out


def test_kube_proxy_mode(replay):
    """iptables mode: kube-proxy's chains in node01's `iptables --list`, `mode: ""` in its
    ConfigMap (the default: iptables on Linux), and "Using iptables Proxier" in its log."""
    mode = proxy_mode(replay)
    listing = answer(replay, "ssh node01 iptables --list").output
    chains = set(re.findall(r"^Chain (\S+)", listing, re.M))
    if mode == "iptables":
        assert {"KUBE-SERVICES", "KUBE-FORWARD", "KUBE-PROXY-CANARY", "KUBE-PROXY-FIREWALL", "KUBE-NODEPORTS",
                "KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL"} <= chains, chains
        # TODO(kubeletcri): KUBE-KUBELET-CANARY, which the transcript's node01 lists, once the kubelet makes it
    for chain in ("INPUT", "FORWARD", "OUTPUT"):
        assert re.search(rf"^Chain {chain} \(policy ACCEPT\)", listing, re.M)
    if mode == "iptables":
        # kube-proxy's jumps from the built-in chains read word for word as on the lab's node01
        with open(TRANSCRIPT) as f:
            lab = f.read().split("node01 ~ ➜  iptables --list", 1)[1].split("node01 ~ ➜", 1)[0]
        # (and in the same order; KUBE-FIREWALL is the kubelet's, TODO(kubeletcri): its place)
        wanted = [(chain, line) for chain, line in kube_proxy_jumps(lab) if line.split()[0] != "KUBE-FIREWALL"]
        assert len(wanted) == 9, wanted
        assert [j for j in kube_proxy_jumps(listing) if j[1].split()[0] != "KUBE-FIREWALL"] == wanted, listing
    cm = yaml.safe_load(answer(replay, "kubectl get configmap kube-proxy -n kube-system -o yaml").output)
    conf = yaml.safe_load(cm["data"]["config.conf"])
    assert conf["kind"] == "KubeProxyConfiguration"
    assert conf["mode"] == ("" if mode == "iptables" else mode)
    assert conf["clusterCIDR"] == config(replay)["podSubnet"]
    assert conf["clientConnection"]["kubeconfig"] == "/var/lib/kube-proxy/kubeconfig.conf"
    assert set(cm["data"]) == {"config.conf", "kubeconfig.conf"}
    assert cm["metadata"]["labels"] == {"app": "kube-proxy"}
    log = answer(replay, "kubectl logs -n kube-system kube-proxy-POD").output
    assert f'"Using {mode} Proxier"' in log, log[:2000]
    # `ps -ef | grep proxy` on the controlplane: its kube-proxy, word for word as in the transcript
    ps = answer(replay, "ps -ef | grep proxy").lines
    assert any(line.split()[7:] == ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                                    "--hostname-override=controlplane"] for line in ps), ps
    # ... and, as kubeadm's, kube-apiserver and kube-controller-manager (their front-proxy flags)
    assert {line.split()[7] for line in ps if len(line.split()) > 7} >= {"kube-apiserver", "kube-controller-manager"}, ps


def test_configmaps_and_var_lib(replay):
    """`kubectl get configmap [-A]`: kubeadm's ConfigMaps; `ls /var/lib/`: kubelet, etcd, cni."""
    assert "kube-root-ca.crt" in [r["NAME"] for r in answer(replay, "kubectl get configmap").table()]
    rows = {(r["NAMESPACE"], r["NAME"]): r["DATA"] for r in answer(replay, "kubectl get configmap -A").table()}
    for ns in ("default", "kube-node-lease", "kube-public", "kube-system"):
        assert rows[(ns, "kube-root-ca.crt")] == "1"
    for name in ("coredns", "extension-apiserver-authentication", "kube-apiserver-legacy-service-account-token-tracking",
                 "kubeadm-config", "kubelet-config"):
        assert ("kube-system", name) in rows, name
    assert ("kube-public", "cluster-info") in rows
    assert rows[("kube-system", "extension-apiserver-authentication")] == "6"  # as the lab's: with requestheader-*
    assert rows[("kube-system", "kube-proxy")] == "2"
    one = answer(replay, "kubectl get configmap kube-proxy -n kube-system").table()
    assert [(r["NAME"], r["DATA"]) for r in one] == [("kube-proxy", "2")]
    listed = answer(replay, "ls /var/lib/").output.split()
    assert {"kubelet", "etcd", "cni"} <= set(listed), listed
