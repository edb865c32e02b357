"""Merge, JSON and strategic merge patches on wire dicts."""

from __future__ import annotations

import pytest

from knet.api.patch import PatchError, json_patch, merge_patch, strategic_merge_patch

POD = {"metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["x"]},
       "spec": {"containers": [{"name": "a", "image": "i1", "env": [{"name": "E", "value": "1"}]},
                               {"name": "b", "image": "i2"}],
                "tolerations": [{"key": "k"}]}}


def test_merge_patch_rfc7386():
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None, "d": 3}, "l": [2]}) == \
        {"a": {"c": 2, "d": 3}, "l": [2]}


def test_json_patch_ops():
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = json_patch(doc, [{"op": "add", "path": "/a/1", "value": 9}, {"op": "remove", "path": "/b/c"},
                           {"op": "copy", "from": "/a/0", "path": "/d"}, {"op": "move", "from": "/d", "path": "/e"},
                           {"op": "test", "path": "/e", "value": 1}, {"op": "add", "path": "/a/-", "value": 3}])
    assert out == {"a": [1, 9, 2, 3], "b": {}, "e": 1}
    assert doc == {"a": [1, 2], "b": {"c": 1}}  # the input is not modified
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "remove", "path": "/zz"}])
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "test", "path": "/b/c", "value": 2}])


def test_strategic_merge_by_key_and_replace_for_unkeyed_lists():
    out = strategic_merge_patch(POD, {"spec": {"containers": [{"name": "b", "image": "i3"}, {"name": "c", "image": "i4"}],
                                               "tolerations": [{"key": "z"}]}}, "V1Pod")
    assert [(c["name"], c["image"]) for c in out["spec"]["containers"]] == [("a", "i1"), ("b", "i3"), ("c", "i4")]
    assert out["spec"]["containers"][0]["env"] == [{"name": "E", "value": "1"}]
    assert out["spec"]["tolerations"] == [{"key": "z"}]  # no merge key: replaced


def test_strategic_directives():
    out = strategic_merge_patch(POD, {
        "metadata": {"finalizers": ["y"], "$deleteFromPrimitiveList/finalizers": ["x"], "labels": {"a": None}},
        "spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                 "containers": [{"name": "a", "$patch": "delete"}]}}, "V1Pod")
    assert out["metadata"]["finalizers"] == ["y"]
    assert out["metadata"]["labels"] == {}
    assert [c["name"] for c in out["spec"]["containers"]] == ["b"]
    replaced = strategic_merge_patch(POD, {"spec": {"$patch": "replace", "containers": [{"name": "z", "image": "z"}]}},
                                     "V1Pod")
    assert replaced["spec"] == {"containers": [{"name": "z", "image": "z"}]}


def test_strategic_merge_requires_the_merge_key():
    with pytest.raises(PatchError):
        strategic_merge_patch(POD, {"spec": {"containers": [{"image": "no-name"}]}}, "V1Pod")
