"""CNI (the CKA networking section's lab): the kubelet's container runtime endpoint, where the
CNI plugins live, which plugin the node's conflist runs, which add-on wrote it, and the range a
node gives its pods. Read from a worker node (its kubelet's command line, /etc/cni/net.d,
/opt/cni/bin) and the API."""

from __future__ import annotations

import json

from knet.labs import kit
from knet.labs.access import ClusterAccess, LabClusterError
from knet.labs.facts import flag_value
from knet.labs.model import (
    Facts,
    Lab,
    Question,
    Verdict,
    judge_choice,
    judge_network,
    normalise_word,
    right,
    wrong,
)

CNI_CONF_DIR = "/etc/cni/net.d"  # containerd's (and so kubeadm's) default CNI config directory


def _node_cmd(cluster: ClusterAccess, node: str, argv: list[str]) -> str:
    out = cluster.node_run(node, argv)
    if out.rc != 0:
        raise LabClusterError(f"{' '.join(argv)} in node {node}: {out.output}")
    return out.stdout


def observe_runtime(cluster: ClusterAccess, answer: str | None) -> Facts:
    node = kit.worker_node(cluster)
    endpoint = None
    for line in _node_cmd(cluster, node, ["ps", "-eo", "args"]).splitlines():
        argv = line.split()
        if argv and argv[0].rsplit("/", 1)[-1] == "kubelet":
            endpoint = flag_value(argv, "container-runtime-endpoint")
            break
    return {"node": node, "endpoint": endpoint}


def judge_runtime(facts: Facts, answer: str | None) -> Verdict:
    if not facts["endpoint"]:
        return wrong(f"the kubelet of {facts['node']} shows no --container-runtime-endpoint")
    want = facts["endpoint"]
    got = normalise_word(answer)
    if got in (want.lower(), want.lower().removeprefix("unix://")):
        return right(f"the kubelet talks to its runtime at {want}")
    return wrong(f'"{got}" is not the kubelet\'s --container-runtime-endpoint on {facts["node"]}')


def _conflist(cluster: ClusterAccess, node: str) -> tuple[str, dict]:
    names = sorted(n for n in _node_cmd(cluster, node, ["ls", CNI_CONF_DIR]).split()
                   if n.endswith((".conflist", ".conf", ".json")))
    if not names:
        raise LabClusterError(f"no CNI configuration in {CNI_CONF_DIR} of node {node}")
    # The runtime uses the first file by name, as libcni's ConfFiles + sort does.
    path = f"{CNI_CONF_DIR}/{names[0]}"
    return path, json.loads(_node_cmd(cluster, node, ["cat", path]))


def observe_plugin(cluster: ClusterAccess, answer: str | None) -> Facts:
    node = kit.worker_node(cluster)
    path, conf = _conflist(cluster, node)
    plugins = conf.get("plugins") or [conf]
    facts: Facts = {"node": node, "path": path, "types": [p.get("type") for p in plugins]}
    if answer is not None and normalise_word(answer).startswith("/") and facts["types"]:
        # Is the plugin binary in the directory the user named (what the runtime would run)?
        binary = f"{normalise_word(answer).rstrip('/')}/{facts['types'][0]}"
        facts["binary"] = binary
        facts["binary_there"] = cluster.node_run(node, ["test", "-x", binary]).rc == 0
    return facts


def judge_bin_dir(facts: Facts, answer: str | None) -> Verdict:
    if "binary" not in facts:
        return wrong(f'"{(answer or "").strip()}" is not an absolute directory path')
    if facts["binary_there"]:
        return right(f"{facts['binary']} is the plugin the runtime runs for {facts['path']}")
    return wrong(f"there is no {facts['types'][0]} plugin in {(answer or '').strip()} on node {facts['node']}")


def judge_plugin(facts: Facts, answer: str | None) -> Verdict:
    types = [t for t in facts["types"] if t]
    if not types:
        return wrong(f"{facts['path']} names no plugin")
    return judge_choice(types[0], answer, f"the first plugin of {facts['path']}",
                        near_misses={t: f"{t} is chained after {types[0]} in {facts['path']}" for t in types[1:]})


def observe_addon(cluster: ClusterAccess, answer: str | None) -> Facts:
    writers, others = [], []
    for ds in cluster.list("daemonsets", kit.KUBE_SYSTEM):
        volumes = ((ds["spec"].get("template") or {}).get("spec") or {}).get("volumes") or []
        paths = {(v.get("hostPath") or {}).get("path", "").rstrip("/") for v in volumes}
        (writers if CNI_CONF_DIR in paths else others).append(ds["metadata"]["name"])
    return {"writers": writers, "others": others}


def judge_addon(facts: Facts, answer: str | None) -> Verdict:
    if len(facts["writers"]) != 1:
        return wrong(f"DaemonSets mounting {CNI_CONF_DIR}: {facts['writers'] or 'none'}; expected one")
    return judge_choice(facts["writers"][0], answer, "the network add-on's DaemonSet",
                        near_misses={o: f"DaemonSet {o} does not mount {CNI_CONF_DIR}" for o in facts["others"]})


def observe_pod_cidr(cluster: ClusterAccess, answer: str | None) -> Facts:
    node = kit.worker_node(cluster)
    obj = cluster.get("nodes", node) or {}
    path, conf = _conflist(cluster, node)
    subnets = [r.get("subnet") for p in conf.get("plugins") or [conf]
               for ranges in ((p.get("ipam") or {}).get("ranges") or []) for r in ranges]
    return {"node": node, "pod_cidr": (obj.get("spec") or {}).get("podCIDR"), "path": path, "subnets": subnets}


def judge_pod_cidr(facts: Facts, answer: str | None) -> Verdict:
    if not facts["pod_cidr"]:
        return wrong(f"node {facts['node']} has no spec.podCIDR")
    return judge_network(facts["pod_cidr"], answer, f"the range node {facts['node']} gives its pods")


LAB = Lab(
    name="cni",
    title="CNI: the runtime, the plugins and the network add-on",
    summary="""
Look into node01 (knet ssh node01): the kubelet's command line (ps -ef | grep kubelet),
the CNI configuration in /etc/cni/net.d, the plugins in /opt/cni/bin; and kubectl -n kube-system.""",
    questions=(
        Question("runtime-endpoint", "What is the container runtime endpoint the kubelet on node01 uses?",
                 observe_runtime, judge_runtime,
                 hints=("knet ssh node01 -- ps -ef | grep kubelet: look for --container-runtime-endpoint.",)),
        Question("plugin-dir", "In which directory of node01 are the CNI plugin binaries the runtime runs?",
                 observe_plugin, judge_bin_dir,
                 hints=("containerd's default is in its config: bin_dir under plugins.cri.cni.",
                        "knet ssh node01 -- ls /opt/cni/bin")),
        Question("plugin", "Which CNI plugin does node01's CNI configuration run first for a pod's network?",
                 observe_plugin, judge_plugin,
                 hints=("knet ssh node01 -- ls /etc/cni/net.d, then cat the file: the first plugin's \"type\".",)),
        Question("addon", "Which DaemonSet in kube-system is the network add-on (it writes that configuration)?",
                 observe_addon, judge_addon,
                 hints=("kubectl -n kube-system get ds; which of them mounts /etc/cni/net.d?",)),
        Question("node-pod-range", "Which address range does node01 give its pods? (CIDR)",
                 observe_pod_cidr, judge_pod_cidr,
                 hints=("kubectl get node node01 -o jsonpath='{.spec.podCIDR}'",
                        "or the subnet of the ipam section in node01's /etc/cni/net.d conflist")),
    ),
)
