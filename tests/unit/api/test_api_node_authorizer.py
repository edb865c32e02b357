"""The Node authorizer. The tables port upstream's plugin/pkg/auth/authorizer/node/
node_authorizer_test.go (TestNodeAuthorizer with the selector-authorization gates off, as in
v1.29, and TestNodeAuthorizerSharedResources), on the same generated sample data (generate())."""

from __future__ import annotations

import pytest

from knet.api.auth import User
from knet.api.authz import ALLOW, NO_OPINION, Attributes
from knet.api.authz.node import NODE_RULES, NodeAuthorizer, node_identity, node_rules_as_policy_rules
from knet.api.authz.nodegraph import NodeGraph
from knet.api.storage import open_store

NODE0 = User("system:node:node0", groups=("system:nodes", "system:authenticated"))
UNREGISTERED = User("system:node:nodeunregistered", groups=("system:nodes",))


def make_pod(ns: str, name: str, node: str, *, uid: str = "", volumes=(), sa: str = "", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": uid or f"{ns}-{name}"},
            "spec": {"nodeName": node, "volumes": list(volumes), "serviceAccountName": sa,
                     "containers": [{"name": "c", "image": "busybox"}], **spec}}


def generate(nodes=2, namespaces=2, pods_per_node=2) -> tuple[list[dict], list[dict]]:
    """Upstream's sample data (sharedSecretsPerPod=1, uniqueSecretsPerPod=1, uniqueConfigMapsPerPod=1,
    uniquePVCsPerPod=1): pod P of node N is `podP-nodeN` in namespace `ns(P % namespaces)`."""
    pods, pvs = [], []
    for n in range(nodes):
        node = f"node{n}"
        for p in range(pods_per_node):
            name, ns = f"pod{p}-{node}", f"ns{p % namespaces}"
            volumes = [
                {"name": "s", "secret": {"secretName": f"secret0-{name}"}},
                {"name": "shared", "secret": {"secretName": "secret0-shared"}},
                {"name": "cm", "configMap": {"name": f"configmap0-{name}"}},
                {"name": "pvc", "persistentVolumeClaim": {"claimName": f"pvc0-{name}"}},
            ]
            pods.append(make_pod(ns, name, node, volumes=volumes, sa=f"svcacct{p}-{node}"))
            pvs.append({"metadata": {"name": f"pv0-{name}-{ns}"}, "spec": {
                "claimRef": {"namespace": ns, "name": f"pvc0-{name}"},
                "azureFile": {"shareName": "x", "secretName": f"secret-pv0-{name}-{ns}"}}})
    return pods, pvs


@pytest.fixture(scope="module")
def authz() -> NodeAuthorizer:
    graph = NodeGraph()
    pods, pvs = generate()
    for pv in pvs:
        graph.add_pv(pv)
    for pod in pods:
        graph.add_pod(pod)
    return NodeAuthorizer(graph)


def attrs(verb: str, resource: str, name: str = "", namespace: str = "", *, group: str = "", sub: str = "",
          user: User = NODE0) -> Attributes:
    return Attributes(user=user, verb=verb, namespace=namespace, api_group=group, resource=resource,
                      subresource=sub, name=name)


LEASES = "coordination.k8s.io"
STORAGE = "storage.k8s.io"
# (name, attributes, expected decision): TestNodeAuthorizer's rows for kinds knet could hold.
TABLE = [
    ("allowed configmap", attrs("get", "configmaps", "configmap0-pod0-node0", "ns0"), ALLOW),
    ("allowed secret via pod", attrs("get", "secrets", "secret0-pod0-node0", "ns0"), ALLOW),
    ("list allowed secret via pod", attrs("list", "secrets", "secret0-pod0-node0", "ns0"), ALLOW),
    ("watch allowed secret via pod", attrs("watch", "secrets", "secret0-pod0-node0", "ns0"), ALLOW),
    ("disallowed list many secrets", attrs("list", "secrets", "", "ns0"), NO_OPINION),
    ("disallowed watch many secrets", attrs("watch", "secrets", "", "ns0"), NO_OPINION),
    ("disallowed list secrets from all namespaces with name", attrs("list", "secrets", "secret0-pod0-node0", ""),
     NO_OPINION),
    ("allowed shared secret via pod", attrs("get", "secrets", "secret0-shared", "ns0"), ALLOW),
    ("allowed shared secret via pvc", attrs("get", "secrets", "secret-pv0-pod0-node0-ns0", "ns0"), ALLOW),
    ("allowed pvc", attrs("get", "persistentvolumeclaims", "pvc0-pod0-node0", "ns0"), ALLOW),
    ("allowed pv", attrs("get", "persistentvolumes", "pv0-pod0-node0-ns0"), ALLOW),
    ("disallowed configmap", attrs("get", "configmaps", "configmap0-pod0-node1", "ns0"), NO_OPINION),
    ("disallowed secret via pod", attrs("get", "secrets", "secret0-pod0-node1", "ns0"), NO_OPINION),
    ("disallowed shared secret via pvc", attrs("get", "secrets", "secret-pv0-pod0-node1-ns0", "ns0"), NO_OPINION),
    ("disallowed pvc", attrs("get", "persistentvolumeclaims", "pvc0-pod0-node1", "ns0"), NO_OPINION),
    ("disallowed pv", attrs("get", "persistentvolumes", "pv0-pod0-node1-ns0"), NO_OPINION),
    ("disallowed attachment - no relationship", attrs("get", "volumeattachments", "attachment0-node1",
                                                      group=STORAGE), NO_OPINION),
    ("allowed svcacct token create", attrs("create", "serviceaccounts", "svcacct0-node0", "ns0", sub="token"), ALLOW),
    ("disallowed svcacct token create - serviceaccount not attached to node",
     attrs("create", "serviceaccounts", "svcacct0-node1", "ns0", sub="token"), NO_OPINION),
    ("disallowed svcacct token create - no subresource", attrs("create", "serviceaccounts", "svcacct0-node0", "ns0"),
     NO_OPINION),
    ("disallowed svcacct token create - non create",
     attrs("update", "serviceaccounts", "svcacct0-node0", "ns0", sub="token"), NO_OPINION),
    *[(f"disallowed {verb} lease in namespace other than kube-node-lease",
       attrs(verb, "leases", "node0", "foo", group=LEASES), NO_OPINION)
      for verb in ("get", "create", "update", "patch", "delete")],
    *[(f"disallowed {verb} another node's lease", attrs(verb, "leases", "node1", "kube-node-lease", group=LEASES),
       NO_OPINION) for verb in ("get", "update", "patch", "delete")],
    ("disallowed list node leases", attrs("list", "leases", "", "kube-node-lease", group=LEASES), NO_OPINION),
    ("disallowed watch node leases", attrs("watch", "leases", "", "kube-node-lease", group=LEASES), NO_OPINION),
    *[(f"allowed {verb} node lease", attrs(verb, "leases", "node0", "kube-node-lease", group=LEASES), ALLOW)
      for verb in ("get", "create", "update", "patch", "delete")],
    ("disallowed CSINode with subresource", attrs("get", "csinodes", "node0", group=STORAGE, sub="csiDrivers"),
     NO_OPINION),
    *[(f"disallowed {verb} another node's CSINode", attrs(verb, "csinodes", "node1", group=STORAGE), NO_OPINION)
      for verb in ("get", "update", "patch", "delete")],
    ("disallowed list CSINodes", attrs("list", "csinodes", group=STORAGE), NO_OPINION),
    ("disallowed watch CSINodes", attrs("watch", "csinodes", group=STORAGE), NO_OPINION),
    *[(f"allowed {verb} CSINode", attrs(verb, "csinodes", "node0", group=STORAGE), ALLOW)
      for verb in ("get", "create", "update", "patch", "delete")],
    # pods
    ("get related pod", attrs("get", "pods", "pod0-node0", "ns0"), ALLOW),
    ("get unrelated pod - selector disabled", attrs("get", "pods", "pod0-node1", "ns0"), ALLOW),
    ("list single related pod", attrs("list", "pods", "pod0-node0", "ns0"), ALLOW),
    ("list unrelated pods - selector disabled", attrs("list", "pods"), ALLOW),
    ("watch single related pod", attrs("watch", "pods", "pod0-node0", "ns0"), ALLOW),
    ("watch unrelated pods - selector disabled", attrs("watch", "pods"), ALLOW),
    ("create unnamed pod", attrs("create", "pods", "", "ns0"), ALLOW),
    ("create pod proxy subresource forbidden", attrs("create", "pods", "", "ns0", sub="proxy"), NO_OPINION),
    ("delete related pod", attrs("delete", "pods", "pod0-node0", "ns0"), ALLOW),
    ("delete unrelated pod", attrs("delete", "pods", "pod0-node1", "ns0"), ALLOW),  # NodeRestriction guards
    ("delete pod proxy subresource forbidden", attrs("delete", "pods", "pod0-node0", "ns0", sub="proxy"), NO_OPINION),
    ("update related pod status", attrs("update", "pods", "pod0-node0", "ns0", sub="status"), ALLOW),
    ("update unrelated pod status", attrs("update", "pods", "pod0-node1", "ns0", sub="status"), ALLOW),
    ("patch related pod status", attrs("patch", "pods", "pod0-node0", "ns0", sub="status"), ALLOW),
    ("patch unrelated pod status", attrs("patch", "pods", "pod0-node1", "ns0", sub="status"), ALLOW),
    ("get pod status", attrs("get", "pods", "pod0-node0", "ns0", sub="status"), NO_OPINION),
    ("create related pod eviction", attrs("create", "pods", "pod0-node0", "ns0", sub="eviction"), ALLOW),
    ("create unrelated pod eviction", attrs("create", "pods", "pod0-node1", "ns0", sub="eviction"), ALLOW),
    # nodes
    ("get related unregistered node", attrs("get", "nodes", "nodeunregistered", user=UNREGISTERED), ALLOW),
    ("get related node", attrs("get", "nodes", "node0"), ALLOW),
    ("get unrelated node - selector disabled", attrs("get", "nodes", "node1"), ALLOW),
    ("list single related node", attrs("list", "nodes", "node0"), ALLOW),
    ("list all nodes - selector disabled", attrs("list", "nodes"), ALLOW),
    ("watch all nodes - selector disabled", attrs("watch", "nodes"), ALLOW),
    ("create node", attrs("create", "nodes"), ALLOW),
    ("update related node", attrs("update", "nodes", "node0"), ALLOW),
    ("update unrelated node", attrs("update", "nodes", "node1"), ALLOW),  # NodeRestriction guards
    ("patch related node", attrs("patch", "nodes", "node0"), ALLOW),
    ("update related node status", attrs("update", "nodes", "node0", sub="status"), ALLOW),
    ("patch unrelated node status", attrs("patch", "nodes", "node1", sub="status"), ALLOW),
    # knet's own rows: what the node rules do not give
    ("delete node", attrs("delete", "nodes", "node0"), NO_OPINION),
    ("create secret", attrs("create", "secrets", "", "ns0"), NO_OPINION),
    ("list namespaces", attrs("list", "namespaces"), NO_OPINION),
    ("exec into a pod", attrs("create", "pods", "pod0-node0", "ns0", sub="exec"), NO_OPINION),
    ("proxy to another node's kubelet", attrs("create", "nodes", "node1", sub="proxy"), NO_OPINION),
    ("create events", attrs("create", "events", "", "ns0"), ALLOW),
    ("list services", attrs("list", "services"), ALLOW),
    ("create tokenreviews", attrs("create", "tokenreviews", group="authentication.k8s.io"), ALLOW),
]


@pytest.mark.parametrize(("name", "request_attrs", "expected"), [pytest.param(*row, id=row[0]) for row in TABLE])
def test_node_authorizer(authz, name, request_attrs, expected):
    assert authz.authorize(request_attrs).decision == expected


def test_reasons_are_worded_as_upstream(authz):
    denied = authz.authorize(attrs("get", "secrets", "secret0-pod0-node1", "ns0"))
    assert denied.reason == "no relationship found between node 'node0' and this object"
    assert authz.authorize(attrs("get", "secrets", "", "ns0")).reason == "No Object name found"
    assert authz.authorize(attrs("create", "secrets", "x", "ns0")).reason == "can only read resources of this type"
    lease = authz.authorize(attrs("get", "leases", "node0", "default", group=LEASES))
    assert lease.reason == 'can only access leases in the "kube-node-lease" system namespace'
    unknown = User("system:node:", groups=("system:nodes",))
    assert authz.authorize(attrs("get", "nodes", "x", user=unknown)).reason == 'unknown node for user "system:node:"'


@pytest.mark.parametrize("user", [
    pytest.param(User("system:node:node0"), id="no system:nodes group"),
    pytest.param(User("node0", groups=("system:nodes",)), id="no system:node: prefix"),
    pytest.param(User("kubernetes-admin", groups=("system:masters",)), id="admin"),
    pytest.param(User("system:serviceaccount:kube-system:default", groups=("system:serviceaccounts",)), id="sa"),
])
def test_non_nodes_get_no_opinion(authz, user):
    decision = authz.authorize(attrs("get", "secrets", "secret0-pod0-node0", "ns0", user=user))
    assert decision.decision == NO_OPINION and decision.reason == ""
    assert node_identity(user)[1] is False


def test_non_resource_requests_get_no_opinion(authz):
    assert authz.authorize(Attributes(user=NODE0, verb="get", resource_request=False, path="/healthz")).decision \
        == NO_OPINION


def test_shared_resources():
    """TestNodeAuthorizerSharedResources: a secret shared by pods of several nodes; removing it
    from one node's pod takes away only that node's access."""
    graph = NodeGraph()
    authz = NodeAuthorizer(graph)
    graph.add_pod(make_pod("ns1", "pod1-node1", "node1", volumes=[
        {"name": "a", "secret": {"secretName": "node1-only"}},
        {"name": "b", "secret": {"secretName": "node1-node2-only"}},
        {"name": "c", "secret": {"secretName": "shared-all"}}]))
    graph.add_pod(make_pod("ns1", "pod2-node2", "node2", volumes=[
        {"name": "b", "secret": {"secretName": "node1-node2-only"}},
        {"name": "c", "secret": {"secretName": "shared-all"}}]))
    pod3 = make_pod("ns1", "pod3-node3", "node3", volumes=[{"name": "c", "secret": {"secretName": "shared-all"}}])
    graph.add_pod(pod3)
    node = {n: User(f"system:node:{n}", groups=("system:nodes",)) for n in ("node1", "node2", "node3")}
    cases = [
        ("node1", "node1-only", ALLOW), ("node1", "node1-node2-only", ALLOW), ("node1", "shared-all", ALLOW),
        ("node2", "node1-only", NO_OPINION), ("node2", "node1-node2-only", ALLOW), ("node2", "shared-all", ALLOW),
        ("node3", "node1-only", NO_OPINION), ("node3", "node1-node2-only", NO_OPINION),
        ("node3", "shared-all", ALLOW),
    ]
    for who, secret, expected in cases:
        assert authz.authorize(attrs("get", "secrets", secret, "ns1", user=node[who])).decision == expected, \
            (who, secret)
    pod3["spec"]["volumes"] = []
    graph.add_pod(pod3)
    assert authz.authorize(attrs("get", "secrets", "shared-all", "ns1", user=node["node3"])).decision == NO_OPINION
    assert authz.authorize(attrs("get", "secrets", "shared-all", "ns1", user=node["node2"])).decision == ALLOW


def test_every_kind_of_reference_is_followed():
    """Volumes (secret, configMap, projected, csi), env and envFrom of init, regular and ephemeral
    containers, imagePullSecrets, the pod's service account (VisitPodSecretNames & co)."""
    pod = make_pod("ns", "p", "node0", sa="robot", imagePullSecrets=[{"name": "pull"}], volumes=[
        {"name": "proj", "projected": {"sources": [{"secret": {"name": "proj-secret"}},
                                                   {"configMap": {"name": "proj-cm"}},
                                                   {"serviceAccountToken": {"path": "token"}}]}},
        {"name": "csi", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-secret"}}},
    ], initContainers=[{"name": "i", "envFrom": [{"configMapRef": {"name": "init-cm"}}]}],
        ephemeralContainers=[{"name": "e", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {
            "name": "eph-secret", "key": "k"}}}]}])
    pod["spec"]["containers"][0].update(
        env=[{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}],
        envFrom=[{"secretRef": {"name": "envfrom-secret"}}])
    graph = NodeGraph()
    graph.add_pod(pod)
    authz = NodeAuthorizer(graph)
    for resource, name in [("secrets", "pull"), ("secrets", "proj-secret"), ("configmaps", "proj-cm"),
                           ("secrets", "csi-secret"), ("configmaps", "init-cm"), ("secrets", "eph-secret"),
                           ("configmaps", "env-cm"), ("secrets", "envfrom-secret")]:
        assert authz.authorize(attrs("get", resource, name, "ns")).decision == ALLOW, name
        assert authz.authorize(attrs("get", resource, name, "other-ns")).decision == NO_OPINION, name
    assert authz.authorize(attrs("create", "serviceaccounts", "robot", "ns", sub="token")).decision == ALLOW


def test_mirror_pods_grant_nothing():
    """graph.AddPod short-circuits mirror pods: a node must never gain access through a pod it
    created itself."""
    pod = make_pod("ns", "static-node0", "node0", sa="default",
                   volumes=[{"name": "s", "secret": {"secretName": "stolen"}}])
    pod["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    graph = NodeGraph()
    graph.add_pod(pod)
    authz = NodeAuthorizer(graph)
    assert authz.authorize(attrs("get", "secrets", "stolen", "ns")).decision == NO_OPINION
    assert authz.authorize(attrs("create", "serviceaccounts", "default", "ns", sub="token")).decision == NO_OPINION


async def test_follows_the_store_from_binding_to_deletion(tmp_path):
    """The graph follows the apiserver's store: a pod's secret becomes readable by its node in the
    same step as the binding is written (before any watcher sees it), and stops being readable
    when the pod is deleted; unrelated writes cost nothing."""
    store = open_store(str(tmp_path / "db.sqlite"))
    try:
        pod = make_pod("default", "web", "", volumes=[{"name": "s", "secret": {"secretName": "creds"}}])
        await store.create("pods", "default", "existing", make_pod("default", "existing", "node01", volumes=[
            {"name": "s", "secret": {"secretName": "old-creds"}}]))
        authz = NodeAuthorizer.for_store(store)
        node01 = User("system:node:node01", groups=("system:nodes",))
        read = attrs("get", "secrets", "creds", "default", user=node01)
        assert authz.authorize(attrs("get", "secrets", "old-creds", "default", user=node01)).decision == ALLOW
        created = await store.create("pods", "default", "web", pod)
        assert authz.authorize(read).decision == NO_OPINION  # not bound yet
        bound = {**created.obj, "spec": {**created.obj["spec"], "nodeName": "node01"}}
        seen = []
        store.add_listener(lambda ev: seen.append(authz.authorize(read).decision))
        await store.update("pods", "default", "web", bound)
        assert seen == [ALLOW]  # already allowed when the binding's event goes out
        node02 = User("system:node:node02", groups=("system:nodes",))
        assert authz.authorize(attrs("get", "secrets", "creds", "default", user=node02)).decision == NO_OPINION
        status = {**bound, "status": {"phase": "Running"}}
        await store.update("pods", "default", "web", status)
        assert authz.authorize(read).decision == ALLOW
        await store.delete("pods", "default", "web")
        assert authz.authorize(read).decision == NO_OPINION
        assert authz.graph.pods_of("node01") == 1
    finally:
        await store.close()


def test_node_rules_are_upstreams_system_node_role():
    rules = node_rules_as_policy_rules()
    assert len(rules) == len(NODE_RULES)
    assert {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]} in rules
    assert {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
            "verbs": ["get", "create", "update", "patch", "delete"]} in rules
    assert {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]} in rules
