"""Label and field selector parsing and matching (apimachinery's grammar)."""

from __future__ import annotations

import pytest

from knet.api.errors import ApiError
from knet.api.selectors import from_label_selector_object, parse_field_selector, parse_label_selector


@pytest.mark.parametrize(("text", "labels", "matches"), [
    pytest.param("app=web", {"app": "web"}, True, id="equals"),
    pytest.param("app==web", {"app": "db"}, False, id="double-equals"),
    pytest.param("app!=web", {}, True, id="not-equals-absent"),
    pytest.param("app in (web, db)", {"app": "db"}, True, id="in"),
    pytest.param("app notin (web,db)", {"app": "db"}, False, id="notin"),
    pytest.param("tier", {"tier": ""}, True, id="exists"),
    pytest.param("!tier", {"tier": "x"}, False, id="not-exists"),
    pytest.param("app=web,tier=fe", {"app": "web", "tier": "be"}, False, id="and"),
    pytest.param("example.com/role=x", {"example.com/role": "x"}, True, id="prefixed-key"),
    pytest.param("", {"a": "b"}, True, id="empty-selects-all"),
])
def test_label_selector(text, labels, matches):
    assert parse_label_selector(text).matches(labels) is matches


@pytest.mark.parametrize("text", ["app in (web", "=x", "app=web,", "bad key=1", "app=!x"])
def test_bad_label_selectors_are_400(text):
    with pytest.raises(ApiError) as err:
        parse_label_selector(text)
    assert err.value.code == 400


def test_label_selector_object():
    sel = from_label_selector_object({"matchLabels": {"app": "web"},
                                      "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}]})
    assert sel.matches({"app": "web", "tier": "fe"}) and not sel.matches({"app": "web"})
    assert from_label_selector_object({}).matches({"x": "y"})
    assert from_label_selector_object(None) is None


def test_field_selector():
    supported = frozenset({"metadata.name", "spec.nodeName"})
    sel = parse_field_selector("spec.nodeName=node01,metadata.name!=a", supported)
    values = {"spec.nodeName": "node01", "metadata.name": "b"}
    assert sel.matches(values.get)
    assert not sel.matches({"spec.nodeName": "node02", "metadata.name": "b"}.get)
    assert sel.value_of("spec.nodeName") == "node01"
    assert parse_field_selector("spec.nodeName=", supported).matches({}.get)
    with pytest.raises(ApiError) as err:
        parse_field_selector("spec.bogus=1", supported)
    assert err.value.message == "field label not supported: spec.bogus"
