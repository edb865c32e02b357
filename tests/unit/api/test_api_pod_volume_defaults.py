"""Pod volume defaults as kube-apiserver applies them (pkg/apis/core/v1/defaults.go and the cases of
its defaults_test.go: TestSetDefaultVolume, TestSetDefaultSecretVolumeSource,
TestSetDefaultConfigMapVolumeSource, TestSetDefaultDownwardAPIVolumeSource,
TestSetDefaultProjectedVolumeSource, TestSetDefaultHostPathVolumeSource), for pods and the pod
templates of workloads: what `kubectl get -o yaml` shows (`defaultMode: 420`) and `kubectl describe`
prints (`HostPathType:` empty, not `<none>`)."""

from __future__ import annotations

import copy

from knet.api.resources import pods
from knet.api.resources.workloads import template_defaults


def pod_with(*volumes: dict) -> dict:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                                "volumes": [copy.deepcopy(v) for v in volumes]}}
    pods.defaults(pod)
    return pod


def test_a_volume_without_a_source_is_an_empty_dir():
    assert pod_with({"name": "scratch"})["spec"]["volumes"] == [{"name": "scratch", "emptyDir": {}}]


def test_hostpath_type_defaults_to_unset_and_a_given_type_is_kept():
    vols = pod_with({"name": "m", "hostPath": {"path": "/lib/modules"}},
                    {"name": "l", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}})["spec"]["volumes"]
    assert vols[0]["hostPath"] == {"path": "/lib/modules", "type": ""}
    assert vols[1]["hostPath"]["type"] == "FileOrCreate"


def test_file_volumes_get_mode_0644_unless_given():
    vols = pod_with({"name": "s", "secret": {"secretName": "x"}},
                    {"name": "c", "configMap": {"name": "x"}},
                    {"name": "d", "downwardAPI": {"items": []}},
                    {"name": "p", "projected": {"sources": []}},
                    {"name": "own", "configMap": {"name": "y", "defaultMode": 0o755}})["spec"]["volumes"]
    assert [v[k]["defaultMode"] for v, k in zip(vols, ("secret", "configMap", "downwardAPI", "projected", "configMap"), strict=True)] \
        == [420, 420, 420, 420, 0o755]
    assert "emptyDir" not in vols[0]


def test_field_refs_and_token_projections_inside_volumes():
    vols = pod_with(
        {"name": "d", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "p", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token"}},
            {"serviceAccountToken": {"path": "short", "expirationSeconds": 600}},
            {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
    )["spec"]["volumes"]
    assert vols[0]["downwardAPI"]["items"][0]["fieldRef"] == {"fieldPath": "metadata.labels", "apiVersion": "v1"}
    sources = vols[1]["projected"]["sources"]
    assert sources[0]["serviceAccountToken"]["expirationSeconds"] == 3600
    assert sources[1]["serviceAccountToken"]["expirationSeconds"] == 600
    assert sources[2]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"] == "v1"


def test_a_workload_template_gets_the_same_volume_defaults():
    spec = {"template": {"spec": {"containers": [{"name": "c", "image": "kube-proxy"}],
                                  "volumes": [{"name": "lib-modules", "hostPath": {"path": "/lib/modules"}},
                                              {"name": "kube-proxy", "configMap": {"name": "kube-proxy"}}]}}}
    template_defaults(spec)
    vols = spec["template"]["spec"]["volumes"]
    assert vols[0]["hostPath"]["type"] == "" and vols[1]["configMap"]["defaultMode"] == 420
