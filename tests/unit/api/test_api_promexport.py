"""The apiserver's /metrics families, in Prometheus' text format, named and labelled as
kube-apiserver's (the metric names and label sets kube-prometheus' dashboards query)."""

from __future__ import annotations

import pytest

from knet.api.promexport import ApiServerMetrics, RequestInfo, clean_verb


@pytest.mark.parametrize(("method", "kw", "verb"), [
    ("GET", {"has_name": True}, "GET"), ("GET", {"has_name": False}, "LIST"),
    ("GET", {"has_name": False, "watch": True}, "WATCH"), ("PATCH", {"has_name": True, "apply": True}, "APPLY"),
    ("patch", {"has_name": True}, "PATCH"), ("POST", {"has_name": True, "connect": True}, "CONNECT"),
    ("DELETE", {"has_name": True}, "DELETE"),
])
def test_verbs_as_upstream_clean_verb_names_them(method, kw, verb):
    args = {"has_name": False, "watch": False, "apply": False, "connect": False, **kw}
    assert clean_verb(method, **args) == verb


def test_a_request_is_counted_timed_and_out_of_flight_when_done():
    m = ApiServerMetrics()
    info = RequestInfo("LIST", "apps", "v1", "deployments", scope="namespace")
    m.begin(read_only=True)
    assert 'apiserver_current_inflight_requests{request_kind="readOnly"} 1' in m.exposition({})
    m.end(info, 200, 0.03, read_only=True)
    text = m.exposition({"pods": 7})
    labels = ('component="apiserver",dry_run="",group="apps",resource="deployments",scope="namespace",'
              'subresource="",verb="LIST",version="v1"')
    assert f"apiserver_request_total{{code=\"200\",{labels}}} 1" in text
    assert f'apiserver_request_duration_seconds_bucket{{{labels},le="0.025"}} 0' in text
    assert f'apiserver_request_duration_seconds_bucket{{{labels},le="0.05"}} 1' in text
    assert f'apiserver_request_duration_seconds_bucket{{{labels},le="+Inf"}} 1' in text
    assert f"apiserver_request_duration_seconds_count{{{labels}}} 1" in text
    assert 'apiserver_current_inflight_requests{request_kind="readOnly"} 0' in text
    assert 'apiserver_storage_objects{resource="pods"} 7' in text
    assert "# TYPE apiserver_request_duration_seconds histogram" in text


def test_watches_are_long_running_not_in_the_latency_histogram():
    m = ApiServerMetrics()
    info = RequestInfo("WATCH", "", "v1", "pods", scope="cluster")
    m.begin(read_only=True)
    m.long_running(info)
    assert 'apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="cluster",' \
           'subresource="",verb="WATCH",version="v1"} 1' in m.exposition({})
    m.end(info, 200, 300.0, read_only=True)
    text = m.exposition({})
    assert "apiserver_request_duration_seconds_count" not in text and 'code="200"' in text


def test_storage_latency_and_a_value_past_the_last_bucket():
    m = ApiServerMetrics()
    m.storage_request("create", "/registry/pods", 0.002)
    m.storage_request("create", "/registry/pods", 90.0)
    text = m.exposition({})
    assert 'etcd_request_duration_seconds_bucket{operation="create",type="/registry/pods",le="0.005"} 1' in text
    assert 'etcd_request_duration_seconds_bucket{operation="create",type="/registry/pods",le="60"} 1' in text
    assert 'etcd_request_duration_seconds_bucket{operation="create",type="/registry/pods",le="+Inf"} 2' in text
    assert 'etcd_request_duration_seconds_sum{operation="create",type="/registry/pods"} 90.002' in text


async def test_the_timed_store_times_writes_and_reads_the_store_live(tmp_path):
    from knet.api.promexport import TimedStore
    from knet.api.storage.sqlite import SqliteStore

    inner = SqliteStore(":memory:")
    m = ApiServerMetrics()
    store = TimedStore(inner, m)
    try:
        before = store.revision
        await store.create("configmaps", "default", "a", {"metadata": {"name": "a", "namespace": "default"}})
        assert store.revision == inner.revision > before  # a plain attribute is read live, never cached
        assert store.get("configmaps", "default", "a") is not None
        assert store.get("configmaps", "default", "b") is None
        assert 'etcd_request_duration_seconds_count{operation="create",type="/registry/configmaps"} 1' in \
            m.exposition({})
    finally:
        await inner.close()
