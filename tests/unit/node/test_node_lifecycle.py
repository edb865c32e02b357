"""Lifecycle hooks' pure parts: actions, hook URLs (httpprobe.NewRequestForHTTPGetAction), the
grace period left after preStop (kuberuntime killContainer), the env of commands run in a
container."""

import pytest

from knet.node import lifecycle
from knet.node.lifecycle import ExecAction, HookError, HttpAction, SleepAction

CONTAINER = {"name": "web", "ports": [{"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 53,
                                                                               "protocol": "UDP"}]}


@pytest.mark.parametrize("http_get,want", [
    pytest.param({"port": 8080}, "http://10.244.1.5:8080", id="number"),
    pytest.param({"port": "8080", "path": "/echo"}, "http://10.244.1.5:8080/echo", id="number-as-string"),
    pytest.param({"port": "http", "path": "/shutdown"}, "http://10.244.1.5:8080/shutdown", id="port-name"),
    pytest.param({"port": 443, "scheme": "HTTPS", "path": "/x?a=b"}, "https://10.244.1.5:443/x?a=b", id="https-query"),
    pytest.param({"port": 80, "host": "172.30.0.3", "path": "/hook"}, "http://172.30.0.3:80/hook", id="host"),
    pytest.param({"port": 80, "host": "fd00::1"}, "http://[fd00::1]:80", id="ipv6-host"),
    pytest.param({"port": 80, "path": "hook"}, "http://10.244.1.5:80/hook", id="relative-path"),
])
def test_http_url(http_get, want):
    assert lifecycle.http_url(http_get, CONTAINER, "10.244.1.5") == want


def test_http_url_unknown_port_name_is_an_error():
    with pytest.raises(HookError, match="couldn't find port: metrics"):
        lifecycle.http_url({"port": "metrics"}, CONTAINER, "10.244.1.5")


@pytest.mark.parametrize("handler,want", [
    pytest.param({"exec": {"command": ["sh", "-c", "echo hi > /tmp/x"]}},
                 ExecAction(["sh", "-c", "echo hi > /tmp/x"]), id="exec"),
    pytest.param({"httpGet": {"port": "http", "path": "/pre", "httpHeaders": [{"name": "X-Hook", "value": "stop"}]}},
                 HttpAction("http://10.244.1.5:8080/pre", [("X-Hook", "stop")]), id="httpGet"),
    pytest.param({"sleep": {"seconds": 5}}, SleepAction(5), id="sleep"),
])
def test_parse_action(handler, want):
    assert lifecycle.parse_action(handler, CONTAINER, "10.244.1.5") == want


def test_tcp_socket_and_empty_handlers_are_refused():
    for handler in ({"tcpSocket": {"port": 80}}, {}):
        with pytest.raises(HookError):
            lifecycle.parse_action(handler, CONTAINER, "10.244.1.5")


def test_hook_lookup():
    c = {"lifecycle": {"preStop": {"sleep": {"seconds": 1}}}}
    assert lifecycle.hook(c, "preStop") == {"sleep": {"seconds": 1}}
    assert lifecycle.hook(c, "postStart") is None and lifecycle.hook({}, "preStop") is None


@pytest.mark.parametrize("grace,took,left", [
    pytest.param(30, 5.7, 25, id="whole-seconds-taken-off"),
    pytest.param(30, 0.2, 30, id="under-a-second"),
    pytest.param(10, 9.5, 2, id="minimum-for-sigterm"),
    pytest.param(5, 5.0, 2, id="hook-used-it-all"),
])
def test_grace_after_pre_stop(grace, took, left):
    assert lifecycle.grace_after_pre_stop(grace, took) == left


def test_exec_env_is_the_containers():
    env = lifecycle.exec_env({"APP_MODE": "blue", "PATH": "/opt/bin:/bin"}, "web-0")
    assert env["APP_MODE"] == "blue" and env["PATH"] == "/opt/bin:/bin" and env["HOSTNAME"] == "web-0"
    assert "TERM" not in env
    assert lifecycle.exec_env({}, "web-0", tty=True)["TERM"] == "xterm"
