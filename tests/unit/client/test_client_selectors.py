import pytest

from knet.client.selectors import (
    labels_match_selector,
    matches,
    matches_fields,
    parse_field_selector,
    parse_label_selector,
)

LABELS = {"app": "web", "tier": "front", "n": "5"}


@pytest.mark.parametrize(("text", "ok"), [
    ("app=web", True), ("app==web", True), ("app!=web", False), ("app=web,tier=back", False),
    ("app in (web, db)", True), ("tier notin (front)", False), ("canary", False), ("!canary", True),
    ("app", True), ("n>3", True), ("n<3", False), ("", True),
])
def test_label_selector_strings(text, ok):
    assert matches(parse_label_selector(text), LABELS) is ok


@pytest.mark.parametrize(("selector", "ok"), [
    ({"matchLabels": {"app": "web"}}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}, True),
    ({"matchExpressions": [{"key": "x", "operator": "Exists"}]}, False),
    ({}, True),
    (None, False),
])
def test_label_selector_dicts(selector, ok):
    assert labels_match_selector(selector, LABELS) is ok


def test_field_selectors():
    pod = {"metadata": {"name": "a"}, "spec": {"nodeName": "node01"}, "status": {"phase": "Running"}}
    assert matches_fields(parse_field_selector("spec.nodeName=node01,status.phase!=Failed"), pod)
    assert not matches_fields(parse_field_selector("metadata.name==b"), pod)
