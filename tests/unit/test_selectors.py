"""The one selector grammar (knet.selectors) that the apiserver, the client, the fake client,
the controllers, the scheduler and the NetworkPolicy compiler share. The tables are ported from
k8s.io/apimachinery: pkg/labels/selector_test.go (TestSelectorParse, TestSelectorMatches,
TestLexer, TestLexerSequence, TestSetSelectorParser, TestRequirementConstructor) and
pkg/fields/selector_test.go (TestSelectorParse, TestEscapeValue's invalid sequences)."""

import pytest

from knet.selectors import (
    SelectorError,
    field_value,
    labels_match_selector,
    lex,
    matches,
    new_requirement,
    parse_field_selector,
    parse_label_selector,
)

LABELS = {"app": "web", "tier": "front", "n": "5"}


@pytest.mark.parametrize("text", ["x=a,y=b,z=c", "", "x!=a,y=b", "x=", "x= ", "x=,z= ", "x= ,z= ", "!x", "x>1",
                                  "x>1,z<5"])
def test_upstream_good_label_selectors_parse(text):
    parse_label_selector(text)


@pytest.mark.parametrize("text", ["x=a||y=b", "x==a==b", "!x=a", "x<a", "x,,y", ",x,y", "x nott in (y)",
                                  "a in (xyz),", "a in (xyz)b notin ()", "x=a,", "app in (web", "=x", "bad key=1"])
def test_upstream_bad_label_selectors_are_refused(text):
    with pytest.raises(SelectorError, match="^unable to parse requirement"):
        parse_label_selector(text)


@pytest.mark.parametrize(("text", "labels", "ok"), [
    ("", {"x": "y"}, True), ("x=y", {"x": "y"}, True), ("x=y,z=w", {"x": "y", "z": "w"}, True),
    ("x!=y,z!=w", {"x": "z", "z": "a"}, True), ("notin=in", {"notin": "in"}, True), ("x", {"x": "z"}, True),
    ("!x", {"y": "z"}, True), ("x>1", {"x": "2"}, True), ("x<1", {"x": "0"}, True),
    ("x=z", {}, False), ("x=y", {"x": "z"}, False), ("x=y,z=w", {"x": "w", "z": "w"}, False),
    ("x!=y,z!=w", {"x": "z", "z": "w"}, False), ("x", {"y": "z"}, False), ("!x", {"x": "z"}, False),
    ("x>1", {"x": "0"}, False), ("x<1", {"x": "2"}, False), ("z>1", {"z": "v2"}, False),
    ("foo=bar,foobar=bar,baz=blah", {"foo": "bar", "baz": "blah"}, False),
])
def test_upstream_selector_matches(text, labels, ok):
    assert parse_label_selector(text).matches(labels) is ok


@pytest.mark.parametrize(("text", "want"), [
    ("\rx", [("x", "Exists", ())]),
    ("this-is-another-dns.domain.com/key-with-dash in (so,what)",
     [("this-is-another-dns.domain.com/key-with-dash", "In", ("so", "what"))]),
    ("0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
     [("0.1.2.domain/99", "NotIn", ("10.10.100.1", "tick.tack.clock"))]),
    ("foo  in\t (abc)", [("foo", "In", ("abc",))]),
    ("x notin\n (abc)", [("x", "NotIn", ("abc",))]),
    ("x in (abc,)", [("x", "In", ("abc", ""))]),
    ("x in ()", [("x", "In", ("",))]),
    ("x notin (abc,,def),bar,z in (),w", [("bar", "Exists", ()), ("w", "Exists", ()),
                                         ("x", "NotIn", ("abc", "", "def")), ("z", "In", ("",))]),
    ("x notin ( )", [("x", "NotIn", ("",))]),
    ("x notin (, a)", [("x", "NotIn", ("", "a"))]),
    ("a ", [("a", "Exists", ())]),
    ("a in (x,y,notin, z,in)", [("a", "In", ("x", "y", "notin", "z", "in"))]),  # keywords as values
    ("x=a,y!=b", [("x", "In", ("a",)), ("y", "NotIn", ("b",))]),
    ("x<7", [("x", "Lt", ("7",))]),
])
def test_upstream_set_selector_parser(text, want):
    assert [(r.key, r.operator, r.values) for r in parse_label_selector(text)] == want


@pytest.mark.parametrize(("text", "kinds"), [
    ("key in ( value )", ["identifier", "in", "(", "identifier", ")"]),
    ("key notin ( value1, value2 )", ["identifier", "notin", "(", "identifier", ",", "identifier", ")"]),
    ("!key", ["!", "identifier"]), ("x in (),y", ["identifier", "in", "(", ")", ",", "identifier"]),
    ("== != (), = notin", ["==", "!=", "(", ")", ",", "=", "notin"]),
    ("key>2", ["identifier", ">", "identifier"]), ("key<1", ["identifier", "<", "identifier"]),
    ("~", ["identifier"]), ("||", ["identifier"]),
])
def test_upstream_lexer_sequence(text, kinds):
    assert [k for k, _ in lex(text)] == [*kinds, "end"]


@pytest.mark.parametrize(("key", "op", "values", "ok"), [
    ("x", "In", (), False), ("x", "NotIn", (), False), ("x", "In", ("foo",), True), ("x", "NotIn", ("foo",), True),
    ("x", "Exists", (), True), ("x", "DoesNotExist", (), True), ("1foo", "In", ("bar",), True),
    ("1234", "In", ("bar",), True), ("y", "Gt", ("1",), True), ("z", "Lt", ("6",), True),
    ("foo", "Gt", ("bar",), False), ("barz", "Lt", ("blah",), False), ("a" * 254, "Exists", (), False),
])
def test_upstream_requirement_constructor(key, op, values, ok):
    if ok:
        new_requirement(key, op, values)
    else:
        with pytest.raises(SelectorError):
            new_requirement(key, op, values)


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


def test_a_label_selector_dict_with_an_unknown_operator_is_refused():
    with pytest.raises(SelectorError):
        labels_match_selector({"matchExpressions": [{"key": "x", "operator": "Equals", "values": ["a"]}]}, LABELS)


@pytest.mark.parametrize(("text", "want"), [
    ("x=a,y=b,z=c", [("x", "=", "a"), ("y", "=", "b"), ("z", "=", "c")]),
    ("x!=a,y=b", [("x", "!=", "a"), ("y", "=", "b")]),
    ("x==a", [("x", "=", "a")]),
    (r"x=a||y\=b", [("x", "=", "a||y=b")]),
    (r"x=a\=\=b", [("x", "=", "a==b")]),
    (r"x=a\,b\\c", [("x", "=", "a,b\\c")]),
])
def test_upstream_good_field_selectors(text, want):
    assert [(r.field, r.op, r.value) for r in parse_field_selector(text).requirements] == want


@pytest.mark.parametrize("text", ["x=a||y=b", "x==a==b", "x=a,b", "x in (a)", "x in (a,b,c)", "x", "x=\\", "x=\\a"])
def test_upstream_bad_field_selectors(text):
    with pytest.raises(SelectorError):
        parse_field_selector(text)


def test_unsupported_field_labels_are_refused_by_name():
    with pytest.raises(SelectorError, match="^field label not supported: spec.foo$"):
        parse_field_selector("spec.foo=x", frozenset({"metadata.name"}))


def test_field_selectors():
    pod = {"metadata": {"name": "a"}, "spec": {"nodeName": "node01"}, "status": {"phase": "Running"}}
    assert parse_field_selector("spec.nodeName=node01,status.phase!=Failed").matches_object(pod)
    assert not parse_field_selector("metadata.name==b").matches_object(pod)


def test_booleans_read_as_the_apiserver_writes_them():
    """The client and the server once disagreed here (`True` against `true`)."""
    node = {"spec": {"unschedulable": True}}
    assert field_value(node, "spec.unschedulable") == "true"
    assert parse_field_selector("spec.unschedulable=true").matches_object(node)
    assert not parse_field_selector("spec.unschedulable=false").matches_object(node)
    assert parse_field_selector("spec.unschedulable!=true").matches_object({"spec": {}})
