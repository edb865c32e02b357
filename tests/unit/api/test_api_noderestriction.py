"""NodeRestriction admission. The table ports upstream's plugin/pkg/admission/noderestriction/
admission_test.go (Test_nodePlugin_Admit) for the kinds knet holds: mirror and normal pods
(create, update, delete, status, eviction), Node objects (labels, taints, configSource), token
requests, leases and CSINodes; the expected errors are upstream's substrings. Rows marked
`knet:` are knet's own (the `knet.io/kubelet-endpoint` annotation), not upstream's."""

from __future__ import annotations

import copy

import pytest

from knet.api.admission import NodeRestriction
from knet.api.admission.noderestriction import forbidden_labels, is_kubelet_label
from knet.api.auth import User
from knet.api.errors import ApiError
from knet.api.registry import ResourceType
from knet.api.rest import AdmissionRequest
from knet.api.storage import open_store

MYNODE = User("system:node:mynode", groups=("system:nodes", "system:authenticated"))
BOB = User("bob", groups=("system:authenticated",))

PODS = ResourceType("", "v1", "pods", "Pod")
NODES = ResourceType("", "v1", "nodes", "Node", namespaced=False)
SERVICEACCOUNTS = ResourceType("", "v1", "serviceaccounts", "ServiceAccount")
LEASES = ResourceType("coordination.k8s.io", "v1", "leases", "Lease")
CSINODES = ResourceType("storage.k8s.io", "v1", "csinodes", "CSINode", namespaced=False)
CONFIGMAPS = ResourceType("", "v1", "configmaps", "ConfigMap")


def make_pod(name: str, node: str, mirror: bool) -> dict:
    """makeTestPod: uid `pod-uid`; a mirror pod has the mirror annotation and a controller owner
    reference to its Node (uid `<node>-uid`)."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns", "uid": "pod-uid"},
           "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}
    if mirror:
        pod["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "true"}
        pod["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node,
                                               "uid": f"{node}-uid", "controller": True}]
    return pod


def with_labels(pod: dict, labels: dict | None) -> dict:
    pod = copy.deepcopy(pod)
    pod["metadata"]["labels"] = labels
    return pod


def modified(pod: dict, **spec) -> dict:
    pod = copy.deepcopy(pod)
    pod["spec"].update(spec)
    return pod


def owners(pod: dict, refs: list[dict]) -> dict:
    pod = copy.deepcopy(pod)
    pod["metadata"]["ownerReferences"] = refs
    return pod


MYMIRROR, OTHERMIRROR, UNBOUNDMIRROR = (make_pod("mymirrorpod", "mynode", True),
                                        make_pod("othermirrorpod", "othernode", True),
                                        make_pod("unboundmirrorpod", "", True))
MYPOD, OTHERPOD, UNBOUNDPOD = make_pod("mypod", "mynode", False), make_pod("otherpod", "othernode", False), \
    make_pod("unboundpod", "", False)
ENDPOINT_A, ENDPOINT_B = {"knet.io/kubelet-endpoint": "127.0.0.1:41000"}, {"knet.io/kubelet-endpoint": "127.0.0.1:6443"}
EXISTING = [MYMIRROR, OTHERMIRROR, UNBOUNDMIRROR, MYPOD, OTHERPOD, UNBOUNDPOD]


def node_obj(name: str = "mynode", labels: dict | None = None, taints=None, config_source=None,
             annotations: dict | None = None) -> dict:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": f"{name}-uid"}, "spec": {}}
    if annotations is not None:
        node["metadata"]["annotations"] = annotations
    if labels is not None:
        node["metadata"]["labels"] = labels
    if taints is not None:
        node["spec"]["taints"] = taints
    if config_source is not None:
        node["spec"]["configSource"] = {"configMap": {"name": config_source, "namespace": "bar",
                                                      "kubeletConfigKey": "kubelet"}}
    return node


def allowed_update_labels(value: str = "value") -> dict:
    labels = {"foo": value, "example.com/foo": value}
    labels.update({key: value for key in ["kubernetes.io/hostname", "failure-domain.beta.kubernetes.io/zone",
                                          "failure-domain.beta.kubernetes.io/region", "topology.kubernetes.io/zone",
                                          "topology.kubernetes.io/region", "beta.kubernetes.io/instance-type",
                                          "node.kubernetes.io/instance-type", "beta.kubernetes.io/os",
                                          "beta.kubernetes.io/arch", "kubernetes.io/os", "kubernetes.io/arch"]})
    for namespace in ("kubelet.kubernetes.io", "node.kubernetes.io"):
        labels[f"{namespace}/foo"] = value
        labels[f"foo.{namespace}/foo"] = value
    return labels


def forbidden_update_labels(value: str = "value") -> dict:
    return {"node-restriction.kubernetes.io/foo": value, "foo.node-restriction.kubernetes.io/foo": value,
            "other.kubernetes.io/foo": value, "other.k8s.io/foo": value}


def all_labels(value: str = "value") -> dict:
    return {**allowed_update_labels(value), **forbidden_update_labels(value)}


FORBIDDEN_LIST = ("foo.node-restriction.kubernetes.io/foo, node-restriction.kubernetes.io/foo, other.k8s.io/foo, "
                  "other.kubernetes.io/foo")


def token_request(pod: str = "", uid: str = "") -> dict:
    spec: dict = {"audiences": ["foo"]}
    if pod:
        spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": pod, "uid": uid}
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": {"namespace": "ns"},
            "spec": spec}


def eviction(name: str) -> dict:
    return {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "ns"}}


def lease(name: str = "mynode", namespace: str = "kube-node-lease") -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name,
            "namespace": namespace}, "spec": {"holderIdentity": "mynode", "leaseDurationSeconds": 40}}


def req(op: str, rt: ResourceType, name: str, obj=None, old=None, sub: str | None = None, ns: str = "ns",
        user: User = MYNODE) -> AdmissionRequest:
    return AdmissionRequest(op, rt, ns if rt.namespaced else "", name, obj, old, sub, user, False)


UNEXPECTED = "forbidden: unexpected operation"
NOT_SELF = "spec.nodeName set to itself"


def pod_rows(label: str, pod: dict, expect: dict[str, str]) -> list:
    """The ten rows upstream repeats for each pod: create/update/delete of the pod, of its status,
    of an eviction, and an unnamed eviction."""
    name = pod["metadata"]["name"]
    rows = {
        "create": req("CREATE", PODS, name, pod),
        "update": req("UPDATE", PODS, name, pod, pod),
        "delete": req("DELETE", PODS, name),
        "create status": req("CREATE", PODS, name, pod, sub="status"),
        "update status": req("UPDATE", PODS, name, pod, pod, sub="status"),
        "delete status": req("DELETE", PODS, name, sub="status"),
        "create eviction": req("CREATE", PODS, name, eviction(name), sub="eviction"),
        "update eviction": req("UPDATE", PODS, name, eviction(name), sub="eviction"),
        "delete eviction": req("DELETE", PODS, name, eviction(name), sub="eviction"),
        "create unnamed eviction": req("CREATE", PODS, name, eviction(""), sub="eviction"),
    }
    return [pytest.param(r, expect[what], id=f"{what} of {label}") for what, r in rows.items()]


SELF_MIRROR = {"create": "", "update": UNEXPECTED, "delete": "", "create status": UNEXPECTED, "update status": "",
               "delete status": UNEXPECTED, "create eviction": "", "update eviction": UNEXPECTED,
               "delete eviction": UNEXPECTED, "create unnamed eviction": ""}
NOT_MINE = {"create": NOT_SELF, "update": UNEXPECTED, "delete": NOT_SELF, "create status": UNEXPECTED,
            "update status": NOT_SELF, "delete status": UNEXPECTED, "create eviction": NOT_SELF,
            "update eviction": UNEXPECTED, "delete eviction": UNEXPECTED, "create unnamed eviction": NOT_SELF}
SELF_NORMAL = {**SELF_MIRROR, "create": "can only create mirror pods"}
OTHER_NORMAL = {**NOT_MINE, "create": "can only create mirror pods"}
A, AB = {"label-a": "value-a"}, {"label-a": "value-a", "label-b": "value-b"}

TABLE = [
    *pod_rows("mirror pod bound to self", MYMIRROR, SELF_MIRROR),
    *pod_rows("mirror pod bound to another", OTHERMIRROR, NOT_MINE),
    *pod_rows("mirror pod unbound", UNBOUNDMIRROR, NOT_MINE),
    *pod_rows("normal pod bound to self", MYPOD, SELF_NORMAL),
    *pod_rows("normal pod bound to another", OTHERPOD, OTHER_NORMAL),
    *pod_rows("normal pod unbound", UNBOUNDPOD, OTHER_NORMAL),
    pytest.param(req("UPDATE", PODS, "mypod", with_labels(MYPOD, AB), with_labels(MYPOD, A), sub="status"),
                 "cannot update labels through pod status", id="forbid addition of pod status preexisting labels"),
    pytest.param(req("UPDATE", PODS, "mypod", with_labels(MYPOD, A), with_labels(MYPOD, AB), sub="status"),
                 "cannot update labels through pod status", id="forbid deletion of pod status preexisting labels"),
    pytest.param(req("UPDATE", PODS, "mypod", MYPOD, with_labels(MYPOD, A), sub="status"),
                 "cannot update labels through pod status", id="forbid deletion of all pod status preexisting labels"),
    pytest.param(req("UPDATE", PODS, "mypod", with_labels(MYPOD, A), MYPOD, sub="status"),
                 "cannot update labels through pod status", id="forbid addition of pod status labels"),
    # Mirror pods may not reference other objects.
    pytest.param(req("CREATE", PODS, "mysapod", modified(MYMIRROR, serviceAccountName="foo")),
                 "reference a service account", id="forbid create of pod referencing service account"),
    pytest.param(req("CREATE", PODS, "mysecretpod", modified(MYMIRROR, volumes=[
        {"name": "v", "secret": {"secretName": "foo"}}])), "reference secrets",
        id="forbid create of pod referencing secret"),
    pytest.param(req("CREATE", PODS, "myconfigmappod", modified(MYMIRROR, volumes=[
        {"name": "v", "configMap": {"name": "foo"}}])), "reference configmaps",
        id="forbid create of pod referencing configmap"),
    pytest.param(req("CREATE", PODS, "myctbpod", modified(MYMIRROR, volumes=[
        {"name": "v", "projected": {"sources": [{"clusterTrustBundle": {"name": "foo", "path": "p"}}]}}])),
        "reference clustertrustbundles", id="forbid create of pod referencing clustertrustbundle"),
    pytest.param(req("CREATE", PODS, "mypvcpod", modified(MYMIRROR, volumes=[
        {"name": "v", "persistentVolumeClaim": {"claimName": "foo"}}])), "reference persistentvolumeclaims",
        id="forbid create of pod referencing persistentvolumeclaim"),
    pytest.param(req("CREATE", PODS, "myclaimpod", modified(MYMIRROR, resourceClaims=[
        {"name": "myclaim", "resourceClaimName": "myexternalclaim"}])), "reference resourceclaims",
        id="forbid create of pod referencing resourceclaim"),
    # Mirror pods' owner reference.
    pytest.param(req("CREATE", PODS, "mymirrorpod", owners(MYMIRROR, [])), "an owner reference set to itself",
                 id="forbid create of mirror pod without owner"),
    pytest.param(req("CREATE", PODS, "mymirrorpod", owners(MYMIRROR, MYMIRROR["metadata"]["ownerReferences"] * 2)),
                 "single owner reference", id="forbid create of mirror pod with two owners"),
    pytest.param(req("CREATE", PODS, "mymirrorpod", owners(MYMIRROR, [{
        "apiVersion": "v1", "kind": "Pod", "name": "mynode", "uid": "mynode-uid", "controller": True}])),
        "an owner reference set to itself", id="forbid create of mirror pod owned by a non-node"),
    pytest.param(req("CREATE", PODS, "mymirrorpod", owners(MYMIRROR, [{
        "apiVersion": "v1", "kind": "Node", "name": "othernode", "uid": "mynode-uid", "controller": True}])),
        "an owner reference set to itself", id="forbid create of mirror pod owned by another node"),
    pytest.param(req("CREATE", PODS, "mymirrorpod", owners(MYMIRROR, [{
        "apiVersion": "v1", "kind": "Node", "name": "mynode", "uid": "mynode-uid", "controller": False}])),
        "a controller owner reference set to itself", id="forbid create of mirror pod with a non-controller owner"),
    pytest.param(req("CREATE", PODS, "mymirrorpod", owners(MYMIRROR, [{
        "apiVersion": "v1", "kind": "Node", "name": "mynode", "uid": "mynode-uid", "controller": True,
        "blockOwnerDeletion": True}])), "must not set blockOwnerDeletion",
        id="forbid create of mirror pod with blockOwnerDeletion"),
    pytest.param(req("CREATE", PODS, "mymirrorpod", owners(MYMIRROR, [{
        "apiVersion": "v1", "kind": "Node", "name": "mynode", "uid": "other-uid", "controller": True}])),
        "UID mismatch", id="forbid create of mirror pod with a stale node uid"),
    # My node object.
    pytest.param(req("CREATE", NODES, "mynode", node_obj()), "", id="allow create of my node"),
    pytest.param(req("CREATE", NODES, "", node_obj()), "", id="allow create of my node pulling name from object"),
    pytest.param(req("CREATE", NODES, "mynode", node_obj(taints=[{"key": "mykey", "value": "A"}])), "",
                 id="allow create of my node with taints"),
    pytest.param(req("CREATE", NODES, "mynode", node_obj(labels=allowed_update_labels())), "",
                 id="allow create of my node with labels"),
    pytest.param(req("CREATE", NODES, "mynode", node_obj(labels=forbidden_update_labels())),
                 f"is not allowed to set the following labels: {FORBIDDEN_LIST}",
                 id="forbid create of my node with forbidden labels"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(), node_obj()), "", id="allow update of my node"),
    pytest.param(req("DELETE", NODES, "mynode"), "", id="allow delete of my node"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(), node_obj(), sub="status"), "",
                 id="allow update of my node status"),
    pytest.param(req("CREATE", NODES, "mynode", node_obj(config_source="foo")),
                 "is not allowed to create pods with a non-nil configSource",
                 id="forbid create of my node with non-nil configSource"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(config_source="foo"), node_obj()),
                 "update configSource to a new non-nil configSource",
                 id="forbid update of my node: nil configSource to new non-nil configSource"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(config_source="qux"), node_obj(config_source="foo")),
                 "update configSource to a new non-nil configSource",
                 id="forbid update of my node: non-nil configSource to new non-nil configSource"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(config_source="foo"), node_obj(config_source="foo")), "",
                 id="allow update of my node: non-nil configSource unchanged"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(), node_obj(config_source="foo")), "",
                 id="allow update of my node: non-nil configSource to nil configSource"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(taints=[{"key": "mykey", "value": "A"}]),
                     node_obj(taints=[{"key": "mykey", "value": "A"}])), "",
                 id="allow update of my node: no change to taints"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(labels=allowed_update_labels()), node_obj()), "",
                 id="allow update of my node: add allowed labels"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(), node_obj(labels=allowed_update_labels())), "",
                 id="allow update of my node: remove allowed labels"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(labels=allowed_update_labels("b")),
                     node_obj(labels=allowed_update_labels("a"))), "",
                 id="allow update of my node: modify allowed labels"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(labels=all_labels()), node_obj(labels=all_labels())), "",
                 id="allow update of my node: no change to labels"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(labels=all_labels()),
                     node_obj(labels=forbidden_update_labels())), "",
                 id="allow update of my node: add allowed labels while forbidden labels exist unmodified"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(labels=forbidden_update_labels()),
                     node_obj(labels=all_labels())), "",
                 id="allow update of my node: remove allowed labels while forbidden labels exist unmodified"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(taints=[{"key": "mykey", "value": "A"}]), node_obj()),
                 "is not allowed to modify taints", id="forbid update of my node: add taints"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(), node_obj(taints=[{"key": "mykey", "value": "A"}])),
                 "is not allowed to modify taints", id="forbid update of my node: remove taints"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(taints=[{"key": "mykey", "value": "A"}]),
                     node_obj(taints=[{"key": "mykey", "value": "B"}])),
                 "is not allowed to modify taints", id="forbid update of my node: change taints"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(labels=forbidden_update_labels()), node_obj()),
                 f"is not allowed to modify labels: {FORBIDDEN_LIST}", id="forbid update of my node: add labels"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(), node_obj(labels=forbidden_update_labels())),
                 f"is not allowed to modify labels: {FORBIDDEN_LIST}", id="forbid update of my node: remove labels"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(labels=forbidden_update_labels("new")),
                     node_obj(labels=forbidden_update_labels("old"))),
                 f"is not allowed to modify labels: {FORBIDDEN_LIST}", id="forbid update of my node: change labels"),
    # knet's own rule: the kubelet endpoint a simulated node registers is fixed once registered.
    pytest.param(req("CREATE", NODES, "mynode", node_obj(annotations=ENDPOINT_A)), "",
                 id="knet: allow create of my node with its kubelet endpoint"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(annotations={**ENDPOINT_A, "x": "1"}),
                     node_obj(annotations=ENDPOINT_A)), "", id="knet: allow update of my node keeping its endpoint"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(annotations=ENDPOINT_B), node_obj(annotations=ENDPOINT_A)),
                 "is not allowed to modify annotation knet.io/kubelet-endpoint", id="knet: forbid changing endpoint"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(annotations=ENDPOINT_B), node_obj()),
                 "is not allowed to modify annotation knet.io/kubelet-endpoint", id="knet: forbid adding endpoint"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(), node_obj(annotations=ENDPOINT_A)),
                 "is not allowed to modify annotation knet.io/kubelet-endpoint", id="knet: forbid removing endpoint"),
    pytest.param(req("UPDATE", NODES, "mynode", node_obj(annotations=ENDPOINT_B), node_obj(annotations=ENDPOINT_A),
                     sub="status"),
                 "is not allowed to modify annotation knet.io/kubelet-endpoint",
                 id="knet: forbid changing endpoint through status"),
    # Other node objects.
    pytest.param(req("CREATE", NODES, "othernode", node_obj("othernode")), "is not allowed to modify node",
                 id="forbid create of other node"),
    pytest.param(req("CREATE", NODES, "", node_obj("othernode")), "is not allowed to modify node",
                 id="forbid create of other node pulling name from object"),
    pytest.param(req("UPDATE", NODES, "othernode", node_obj("othernode"), node_obj("othernode")),
                 "is not allowed to modify node", id="forbid update of other node"),
    pytest.param(req("DELETE", NODES, "othernode"), "is not allowed to modify node", id="forbid delete of other node"),
    pytest.param(req("UPDATE", NODES, "othernode", node_obj("othernode"), node_obj("othernode"), sub="status"),
                 "is not allowed to modify node", id="forbid update of other node status"),
    # Service account tokens.
    pytest.param(req("CREATE", SERVICEACCOUNTS, "mysa", token_request(), sub="token"), "not bound to a pod",
                 id="forbid create of unbound token"),
    pytest.param(req("CREATE", SERVICEACCOUNTS, "mysa", token_request("nopod", "someuid"), sub="token"),
                 "not found", id="forbid create of token bound to nonexistant pod"),
    pytest.param(req("CREATE", SERVICEACCOUNTS, "mysa", token_request("mypod", ""), sub="token"),
                 "pod binding without a uid", id="forbid create of token bound to pod without uid"),
    pytest.param(req("CREATE", SERVICEACCOUNTS, "mysa", token_request("otherpod", "pod-uid"), sub="token"),
                 "pod scheduled on a different node", id="forbid create of token bound to pod scheduled on another"),
    pytest.param(req("CREATE", SERVICEACCOUNTS, "mysa", token_request("mypod", "other-uid"), sub="token"),
                 "does not match the UID in record", id="forbid create of token bound to a recreated pod"),
    pytest.param(req("CREATE", SERVICEACCOUNTS, "mysa", token_request("mypod", "pod-uid"), sub="token"), "",
                 id="allow create of token bound to pod scheduled this node"),
    # Leases.
    pytest.param(req("CREATE", LEASES, "mynode", lease(namespace="foo"), ns="foo"), "can only access leases in the",
                 id="disallowed create lease in namespace other than kube-node-lease"),
    pytest.param(req("UPDATE", LEASES, "mynode", lease(namespace="foo"), lease(namespace="foo"), ns="foo"),
                 "can only access leases in the", id="disallowed update lease in namespace other than kube-node-lease"),
    pytest.param(req("DELETE", LEASES, "mynode", ns="foo"), "can only access leases in the",
                 id="disallowed delete lease in namespace other than kube-node-lease"),
    pytest.param(req("CREATE", LEASES, "foo", lease("foo"), ns="kube-node-lease"),
                 "can only access node lease with the same name", id="disallowed create another node's lease"),
    pytest.param(req("UPDATE", LEASES, "foo", lease("foo"), lease("foo"), ns="kube-node-lease"),
                 "can only access node lease with the same name", id="disallowed update another node's lease"),
    pytest.param(req("DELETE", LEASES, "foo", ns="kube-node-lease"),
                 "can only access node lease with the same name", id="disallowed delete another node's lease"),
    pytest.param(req("CREATE", LEASES, "mynode", lease(), ns="kube-node-lease"), "", id="allowed create node lease"),
    pytest.param(req("UPDATE", LEASES, "mynode", lease(), lease(), ns="kube-node-lease"), "",
                 id="allowed update node lease"),
    pytest.param(req("DELETE", LEASES, "mynode", ns="kube-node-lease"), "", id="allowed delete node lease"),
    # CSINodes.
    pytest.param(req("CREATE", CSINODES, "foo", {"metadata": {"name": "foo"}}),
                 "can only access CSINode with the same name", id="disallowed create another node's CSINode"),
    pytest.param(req("UPDATE", CSINODES, "foo", {"metadata": {"name": "foo"}}, {"metadata": {"name": "foo"}}),
                 "can only access CSINode with the same name", id="disallowed update another node's CSINode"),
    pytest.param(req("CREATE", CSINODES, "mynode", {"metadata": {"name": "mynode"}}), "",
                 id="allowed create node CSINode"),
    # Other kinds and other users pass.
    pytest.param(req("CREATE", CONFIGMAPS, "cm", {"metadata": {"name": "cm"}}), "", id="allow unrelated object"),
    pytest.param(req("CREATE", PODS, "otherpod", OTHERPOD, user=BOB), "", id="allow create of pod by non-node"),
    pytest.param(req("DELETE", NODES, "othernode", user=BOB), "", id="allow delete of other node by non-node"),
    pytest.param(req("UPDATE", PODS, "otherpod", OTHERPOD, OTHERPOD, sub="status",
                     user=User("system:node:", groups=("system:nodes",))), "could not determine node from user",
                 id="forbid unidentifiable node"),
]


@pytest.fixture
async def plugin():
    store = open_store("memory:")
    for pod in EXISTING:
        await store.create("pods", "ns", pod["metadata"]["name"], pod)
    await store.create("nodes", "", "mynode", node_obj())
    yield NodeRestriction(store)
    await store.close()


@pytest.mark.parametrize(("request_", "error"), TABLE)
async def test_node_restriction(plugin, request_, error):
    if not error:
        plugin(request_)
        return
    with pytest.raises(ApiError) as info:
        plugin(request_)
    assert error in info.value.message
    assert info.value.code == (404 if error == "not found" else 403)


async def test_forbidden_status_is_worded_as_upstream(plugin):
    with pytest.raises(ApiError) as info:
        plugin(req("DELETE", PODS, "otherpod", old=OTHERPOD))
    err = info.value
    assert err.message == 'pods "otherpod" is forbidden: node "mynode" can only delete pods with spec.nodeName ' \
                          "set to itself"
    assert (err.code, err.reason, err.details) == (403, "Forbidden", {"name": "otherpod", "kind": "pods"})
    with pytest.raises(ApiError) as info:
        plugin(req("CREATE", LEASES, "foo", lease("foo"), ns="kube-node-lease"))
    assert info.value.message == 'leases.coordination.k8s.io "foo" is forbidden: can only access node lease with ' \
                                 "the same name as the requesting node"
    assert info.value.details == {"name": "foo", "group": "coordination.k8s.io", "kind": "leases"}


def test_kubelet_labels():
    """kubeletapis.IsKubeletLabel and getForbiddenLabels."""
    assert is_kubelet_label("kubernetes.io/hostname")
    assert is_kubelet_label("node.kubernetes.io/exclude-from-external-load-balancers")
    assert is_kubelet_label("foo.kubelet.kubernetes.io/x")
    assert not is_kubelet_label("node-role.kubernetes.io/control-plane")
    assert forbidden_labels({"node-role.kubernetes.io/control-plane", "knet.io/x", "app"}) == [
        "node-role.kubernetes.io/control-plane"]


async def test_the_kubelets_own_mirror_pods_pass(plugin):
    """What the kubelet sends for a static pod (node/static.py), after the apiserver's defaults and
    pod admission, is a mirror pod NodeRestriction admits: owned by its Node as controller, and
    with no service account (the ServiceAccount plugin leaves mirror pods alone)."""
    from knet.api.resources import pods
    from knet.node import static

    manifest = "apiVersion: v1\nkind: Pod\nmetadata: {name: etcd, namespace: kube-system}\n" \
               "spec: {hostNetwork: true, containers: [{name: etcd, image: etcd}]}\n"
    mirror = static.mirror_pod(static.static_pod(manifest, "mynode"), "mynode-uid")
    pods.defaults(mirror)
    pods.admit(mirror)
    assert "serviceAccountName" not in mirror["spec"] and not mirror["spec"].get("volumes")
    plugin(req("CREATE", PODS, mirror["metadata"]["name"], mirror, ns="kube-system"))
    # An ordinary pod still gets the `default` service account.
    ordinary = copy.deepcopy(MYPOD)
    pods.defaults(ordinary)
    assert ordinary["spec"]["serviceAccountName"] == "default"
