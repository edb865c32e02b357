"""Unknown-field pruning: one walk names and drops them on decode; patches are pruned along the
patch only, with the same result as pruning the whole patched object. Also the uid source."""

from __future__ import annotations

import copy
import uuid

from knet.api import patch, schema
from knet.api.rest import new_uid

STORED = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
          "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "X", "value": "1"}]}]},
          "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


def test_prune_unknown_names_and_drops_in_one_walk():
    obj = copy.deepcopy(STORED)
    obj["bogus"] = 1
    obj["spec"]["containers"][0]["nope"] = {"x": 1}
    obj["spec"]["containers"][0]["env"][0]["zzz"] = None
    obj["metadata"]["annotations"] = {"k": "v"}
    removed = schema.prune_unknown(obj, "V1Pod")
    assert removed == ["spec.containers[0].env[0].zzz", "spec.containers[0].nope", "bogus"]
    assert obj == {**STORED, "metadata": {**STORED["metadata"], "annotations": {"k": "v"}}}


def test_patches_are_pruned_along_the_patch_like_the_whole_object():
    patches = [
        {"status": {"phase": "Failed", "bogus": 1, "conditions": [{"type": "Ready", "status": "False", "x": 2}]}},
        {"metadata": {"labels": {"c": "d"}, "whatever": {"deep": 1}}, "top": "level"},
        {"spec": {"containers": [{"name": "c", "image": "j", "junk": True}]}, "status": None},
        {"status": {"unknownNull": None, "$setElementOrder/conditions": [{"type": "Ready"}]}},
    ]
    for body in patches:
        for kind in ("merge", "strategic"):
            if kind == "merge":
                whole = patch.merge_patch(copy.deepcopy(STORED), body)
                along = patch.merge_patch(copy.deepcopy(STORED), body)
            else:
                whole = patch.strategic_merge_patch(copy.deepcopy(STORED), body, "V1Pod")
                along = patch.strategic_merge_patch(copy.deepcopy(STORED), body, "V1Pod")
            schema.prune_unknown(whole, "V1Pod")
            named = schema.prune_patched(along, body, "V1Pod")
            assert along == whole, (kind, body)
            assert named == schema.prune_unknown(_without_directives(body), "V1Pod"), (kind, body)


def test_a_merge_patch_leaves_the_stored_object_alone():
    stored = copy.deepcopy(STORED)
    new = patch.merge_patch(stored, {"status": {"conditions": [{"type": "Ready", "status": "False", "x": 1}]}})
    schema.prune_patched(new, {"status": {"conditions": [{"x": 1}]}}, "V1Pod")
    assert stored == STORED


def test_uids_are_random_version_4_uuids():
    seen = {new_uid() for _ in range(1000)}  # crosses several refills of the random pool
    assert len(seen) == 1000
    for u in list(seen)[:50]:
        parsed = uuid.UUID(u)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == u


def _without_directives(value):
    if isinstance(value, dict):
        return {k: _without_directives(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_without_directives(v) for v in value]
    return value
