"""Body decoding guards: go-yaml's alias-expansion rule and depth limit, and the JSON depth
limit. The YAML table is go-yaml v2's limit_test.go (limitTests), ported: the same documents
and answers, except that knet's depth limit is decoding.MAX_DEPTH (orjson encodes at most 254
levels) where go-yaml's is 10000, so its 1000-deep "indent lines" case is 200 deep here."""

from __future__ import annotations

import orjson
import pytest
import yaml

from knet.api import decoding

LIMIT_TESTS = [
    ("1000kb of maps with 100 aliases",
     "{a: &a [{a}" + ",{a}" * (1000 * 1024 // 4 - 100) + "], b: &b [*a" + ",*a" * 99 + "]}",
     "yaml: document contains excessive aliasing"),
    ("1000kb of deeply nested slices", "[" * (1000 * 1024), "yaml: exceeded max depth of"),
    ("1000kb of deeply nested maps", "x: " + "{" * (1000 * 1024), "yaml: exceeded max depth of"),
    ("1000kb of deeply nested indents", "- " * (1000 * 1024), "yaml: exceeded max depth of"),
    ("200-indent lines", ("- " * 200 + "\n") * 256, None),
    ("1kb of maps", "a: &a [{a}" + ",{a}" * (1 * 1024 // 4 - 1) + "]", None),
    ("10kb of maps", "a: &a [{a}" + ",{a}" * (10 * 1024 // 4 - 1) + "]", None),
    ("100kb of maps", "a: &a [{a}" + ",{a}" * (100 * 1024 // 4 - 1) + "]", None),
]


@pytest.mark.parametrize("name,text,error", LIMIT_TESTS, ids=[t[0] for t in LIMIT_TESTS])
def test_go_yaml_limits(name, text, error):
    if error is None:
        decoding.loads_yaml(text)
    else:
        with pytest.raises(yaml.YAMLError, match=error):
            decoding.loads_yaml(text)


def test_a_few_hundred_bytes_of_nested_aliases_are_refused_before_expanding():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for c in "bcdefghi":
        lines.append(f"{c}: &{c} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = c
    with pytest.raises(yaml.YAMLError, match="excessive aliasing"):
        decoding.loads_yaml("\n".join(lines))


def test_small_documents_may_alias_freely():
    doc = decoding.loads_yaml("a: &x {k: v}\nb: *x\nc: [*x, *x]\n")
    assert doc == {"a": {"k": "v"}, "b": {"k": "v"}, "c": [{"k": "v"}, {"k": "v"}]}


def test_yaml_is_converted_to_json_values_as_sigs_k8s_io_yaml_does():
    assert decoding.loads_yaml("t: 2024-01-01T00:00:00Z\nd: 2024-01-01\n1: one\nn: ~\n") == \
        {"t": "2024-01-01T00:00:00Z", "d": "2024-01-01", "1": "one", "n": None}
    with pytest.raises(yaml.YAMLError):
        decoding.loads_yaml("a: !!binary aGVsbG8=\n")
    with pytest.raises(yaml.YAMLError):
        decoding.loads_yaml("? [a, b]\n: c\n")


@pytest.mark.parametrize("depth,ok", [(decoding.MAX_DEPTH, True), (decoding.MAX_DEPTH + 1, False), (5000, False)])
def test_json_depth_limit(depth, ok):
    raw = b'{"a":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    if ok:
        assert decoding.depth_of(decoding.loads_json(raw)) == depth
        orjson.dumps(decoding.loads_json(raw))  # what is accepted can be stored and served
    else:
        with pytest.raises((decoding.JsonDepthError, orjson.JSONDecodeError)):
            decoding.loads_json(raw)
