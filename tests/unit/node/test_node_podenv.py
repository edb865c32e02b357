import pytest

from knet.node.podenv import command_and_args, container_env, env_sources, expand, service_env

POD = {"metadata": {"name": "web-0", "namespace": "shop", "uid": "u1", "labels": {"app": "web"}},
       "spec": {"serviceAccountName": "sa1"}, "status": {"podIP": "10.244.1.5"}}
SVC_KUBERNETES = {"metadata": {"name": "kubernetes", "namespace": "default"},
                  "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}
SVC_REDIS = {"metadata": {"name": "redis-primary", "namespace": "shop"},
             "spec": {"clusterIP": "10.96.0.11", "ports": [{"port": 6379}]}}
SVC_OTHER_NS = {"metadata": {"name": "db", "namespace": "other"}, "spec": {"clusterIP": "10.96.0.12",
                                                                           "ports": [{"port": 5432}]}}
SVC_HEADLESS = {"metadata": {"name": "hl", "namespace": "shop"}, "spec": {"clusterIP": "None",
                                                                          "ports": [{"port": 80}]}}


@pytest.mark.parametrize("text,env,want", [
    pytest.param("$(A)-$(B)", {"A": "1", "B": "2"}, "1-2", id="two"),
    pytest.param("$(MISSING)", {}, "$(MISSING)", id="unknown-stays"),
    pytest.param("$$(A)", {"A": "1"}, "$(A)", id="escaped"),
    pytest.param("$A", {"A": "1"}, "$A", id="shell-style-untouched"),
])
def test_expand(text, env, want):
    assert expand(text, env) == want


def test_service_env_like_kubelet():
    env = service_env([SVC_REDIS, SVC_KUBERNETES])
    assert env["REDIS_PRIMARY_SERVICE_HOST"] == "10.96.0.11"
    assert env["REDIS_PRIMARY_SERVICE_PORT"] == "6379"
    assert env["REDIS_PRIMARY_PORT"] == "tcp://10.96.0.11:6379"
    assert env["REDIS_PRIMARY_PORT_6379_TCP_ADDR"] == "10.96.0.11"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"


def _env(container, pod=POD, services=(SVC_KUBERNETES, SVC_REDIS, SVC_OTHER_NS, SVC_HEADLESS)):
    cms = {("shop", "cfg"): {"mode": "fast"}}
    secrets = {("shop", "creds"): {"user": "admin"}}
    return container_env(pod, container, node_name="node01", host_ip="172.30.0.3", services=list(services),
                         config_map_data=lambda ns, n: cms.get((ns, n)),
                         secret_data=lambda ns, n: secrets.get((ns, n)))


def test_env_field_refs_config_maps_and_expansion():
    env = _env({"env": [
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "URL", "value": "http://$(POD_IP):80/$(MODE)"},
    ]})
    assert (env["NODE"], env["POD_IP"], env["HOST_IP"], env["NS"], env["APP"]) == \
        ("node01", "10.244.1.5", "172.30.0.3", "shop", "web")
    assert env["URL"] == "http://10.244.1.5:80/fast"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert "REDIS_PRIMARY_SERVICE_HOST" in env and "DB_SERVICE_HOST" not in env and "HL_SERVICE_HOST" not in env


def test_enable_service_links_false_keeps_only_kubernetes():
    pod = dict(POD, spec={"enableServiceLinks": False})
    env = _env({}, pod=pod)
    assert "KUBERNETES_SERVICE_HOST" in env and "REDIS_PRIMARY_SERVICE_HOST" not in env


# The CreateContainerConfigError messages of kubelet_pods.go makeEnvironmentVariables.
@pytest.mark.parametrize("container,message", [
    pytest.param({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]},
                 'configmap "nope" not found', id="configmap-missing"),
    pytest.param({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]},
                 "couldn't find key k in ConfigMap shop/cfg", id="configmap-key-missing"),
    pytest.param({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]},
                 'secret "nope" not found', id="secret-missing"),
    pytest.param({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}}]},
                 "couldn't find key pw in Secret shop/creds", id="secret-key-missing"),
    pytest.param({"envFrom": [{"configMapRef": {"name": "nope"}}]}, 'configmap "nope" not found',
                 id="envfrom-configmap-missing"),
    pytest.param({"envFrom": [{"secretRef": {"name": "nope"}}]}, 'secret "nope" not found',
                 id="envfrom-secret-missing"),
])
def test_missing_sources_are_errors_with_upstreams_message(container, message):
    with pytest.raises(LookupError) as err:
        _env(container)
    assert str(err.value) == message


@pytest.mark.parametrize("container", [
    pytest.param({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k",
                                                                           "optional": True}}}]}, id="cm"),
    pytest.param({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k",
                                                                           "optional": True}}}]}, id="cm-key"),
    pytest.param({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw",
                                                                        "optional": True}}}]}, id="secret-key"),
    pytest.param({"envFrom": [{"configMapRef": {"name": "nope", "optional": True}}]}, id="envfrom"),
])
def test_optional_sources_may_be_missing(container):
    env = _env(container)
    assert "X" not in env and not any(k.startswith("mode") for k in env)


def test_secret_key_ref():
    env = _env({"env": [{"name": "USER", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}}]})
    assert env["USER"] == "admin"


def test_env_sources_are_what_env_and_env_from_name():
    assert env_sources({"env": [{"name": "A", "value": "1"},
                                {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "b"}}},
                                {"name": "C", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "c"}}},
                                {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "envFrom": [{"configMapRef": {"name": "more"}}, {"secretRef": {"name": "keys"}}]}) == {
        ("configmaps", "cfg"), ("secrets", "creds"), ("configmaps", "more"), ("secrets", "keys")}
    assert env_sources({"image": "x"}) == set()


def test_env_from_with_prefix():
    env = _env({"envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}]})
    assert env["CFG_mode"] == "fast"


def test_command_and_args_expand():
    cmd, args = command_and_args({"command": ["echo", "$(A)"], "args": ["$(B)", "$$(A)"]}, {"A": "1", "B": "2"})
    assert (cmd, args) == (["echo", "1"], ["2", "$(A)"])
