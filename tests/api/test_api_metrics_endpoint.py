"""kube-apiserver's Prometheus /metrics, as kube-prometheus scrapes it: requests by verb,
resource and code, their latency, storage latency and object counts, behind the
system:monitoring role (a user without it gets 403)."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.api


def test_metrics_count_what_was_asked_and_need_the_monitoring_role(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "create", "configmap", "probe", "--from-literal=a=b")
    apiserver.kubectl_ok("-n", namespace, "get", "configmaps")
    text = apiserver.kubectl_ok("get", "--raw", "/metrics")
    list_cm = re.search(r'^apiserver_request_total\{code="200",component="apiserver",dry_run="",group="",'
                        r'resource="configmaps",scope="namespace",subresource="",verb="LIST",version="v1"\} (\d+)$',
                        text, re.M)
    assert list_cm and int(list_cm.group(1)) >= 1, text[:2000]
    assert re.search(r'^apiserver_request_total\{code="201",[^}]*resource="configmaps"[^}]*verb="POST"', text, re.M)
    assert re.search(r'^apiserver_request_duration_seconds_bucket\{[^}]*resource="configmaps"[^}]*verb="LIST"'
                     r'[^}]*,le="\+Inf"\} \d+$', text, re.M)
    assert re.search(r'^etcd_request_duration_seconds_count\{operation="create",type="/registry/configmaps"\} \d+$',
                     text, re.M)
    counted = re.search(r'^apiserver_storage_objects\{resource="configmaps"\} (\d+)$', text, re.M)
    assert counted and int(counted.group(1)) >= 1
    assert '# TYPE apiserver_request_duration_seconds histogram' in text
    # a user without system:monitoring (any authenticated user, no binding) is refused
    denied = apiserver.kubectl("get", "--raw", "/metrics", "--as=eve")
    assert denied.returncode == 1 and "Forbidden" in denied.stderr, denied.stderr
