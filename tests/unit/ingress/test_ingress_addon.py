"""The ingress add-on's pieces that are pure: ingress-nginx's command line (Go flag syntax), the
image -> program mapping in the kubelet, the add-on's objects, the default IngressClass choice."""

from __future__ import annotations

import pytest

from knet.api.admission.defaultingressclass import default_class
from knet.ingress import flags, manifests
from knet.node.workloads import container_argv, workload_kind


def test_ingress_nginx_flags():
    opts = flags.parse(["--election-id=ingress-nginx-leader", "--controller-class=k8s.io/ingress-nginx",
                        "--ingress-class", "nginx", "--configmap=ns/cm", "--publish-service=ingress-nginx/svc",
                        "--watch-ingress-without-class", "--enable-metrics", "--http-port=8080", "-https-port",
                        "8443", "--update-status=false", "--validating-webhook=:8443"])
    assert (opts.controller_class, opts.ingress_class, opts.publish_service) == (
        "k8s.io/ingress-nginx", "nginx", "ingress-nginx/svc")
    assert (opts.http_port, opts.https_port, opts.watch_ingress_without_class, opts.update_status) == (
        8080, 8443, True, False)


@pytest.mark.parametrize("argv", [["--http-port=eighty"], ["--update-status=maybe"], ["--ingress-class"]])
def test_bad_flags_are_refused(argv):
    with pytest.raises(flags.FlagError):
        flags.parse(argv)


def test_the_controller_image_runs_knet_as_nginx_ingress_controller():
    container = next(c for c in manifests.deployment()["spec"]["template"]["spec"]["containers"])
    assert workload_kind(container["image"]) == "ingress-nginx"
    argv = container_argv(container, [], container["args"], knet=["knet"])
    assert argv[:3] == ["knet", "as-binary", "/nginx-ingress-controller"]
    assert "--publish-service=$(POD_NAMESPACE)/ingress-nginx-controller" in argv
    # another image called `controller` is not the ingress controller
    assert workload_kind("example.com/team/controller:v1") == "program"


def test_the_addon_objects():
    objs = manifests.objects()
    kinds = [(o["kind"], o["metadata"]["name"]) for _, _, o in objs]
    assert kinds[0] == ("Namespace", "ingress-nginx")
    assert ("Deployment", "ingress-nginx-controller") in kinds and ("Service", "ingress-nginx-controller") in kinds
    ic = next(o for _, _, o in objs if o["kind"] == "IngressClass")
    assert ic["spec"]["controller"] == "k8s.io/ingress-nginx"
    assert ic["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"
    svc = next(o for _, _, o in objs if o["kind"] == "Service")
    assert svc["spec"]["type"] == "NodePort"
    assert manifests.manifest_yaml().count("\n---\n") + 1 == len(objs)


def test_the_newest_default_class_wins():
    def ic(name, created, default=True):
        return {"metadata": {"name": name, "creationTimestamp": created, "annotations": {
            "ingressclass.kubernetes.io/is-default-class": "true" if default else "false"}}}
    assert default_class([ic("a", "2026-01-01T00:00:00Z"), ic("b", "2026-02-01T00:00:00Z"),
                          ic("c", "2026-03-01T00:00:00Z", default=False)])["metadata"]["name"] == "b"
    assert default_class([ic("c", "2026-03-01T00:00:00Z", default=False)]) is None


def test_knet_up_installs_the_addon_unless_the_config_says_no():
    from knet.cluster.addons import addon_objects
    from knet.cluster.config import ConfigError, from_dict, resolve

    def ingress_classes(config):
        return [o["metadata"]["name"] for _, _, o in addon_objects(config) if o["kind"] == "IngressClass"]
    config, _ = resolve(None)
    assert config.ingress_controller and ingress_classes(config) == ["nginx"]
    off, _ = resolve({"ingressController": False})
    assert ingress_classes(off) == []
    assert from_dict(off.to_dict()).ingress_controller is False  # cluster.yaml read back
    with pytest.raises(ConfigError, match="ingressController must be true or false"):
        resolve({"ingressController": "no"})
