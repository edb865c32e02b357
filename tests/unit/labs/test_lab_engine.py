"""knet.labs.engine on the fake cluster: start / answer / check / hint / status / reset, the state
kept between invocations (a new Engine reads the file), undo of what start did."""

from __future__ import annotations

import pytest

from knet.labs.access import LabClusterError
from knet.labs.engine import Engine, LabError
from knet.labs.fake import FakeCluster
from knet.labs.model import Lab, Question, judge_count, right, wrong
from knet.labs.state import StateFile

NS = "lab-demo"


def setup(s):
    s.namespace(NS)
    s.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": NS}})
    s.patch("configmaps", "settings", "default", {"data": {"mode": "broken"}, "metadata": {"labels": {"x": "1"}}})


def observe_pods(cluster, answer):
    return {"pods": len(cluster.list("pods", NS))}


def observe_settings(cluster, answer):
    cm = cluster.get("configmaps", "settings", "default")
    return {"mode": cm["data"]["mode"]}


def judge_settings(facts, answer):
    return right("mode is fixed") if facts["mode"] == "good" else wrong(f"mode is still {facts['mode']}")


DEMO = Lab(name="demo", title="Demo", summary="a demo", setup=setup, questions=(
    Question("count", "How many pods?", observe_pods, lambda f, a: judge_count(f["pods"], a, "pods"),
             hints=("kubectl get pods", "there is one")),
    Question("fix", "Fix the settings", observe_settings, judge_settings, typed=False),
))
OTHER = Lab(name="other", title="Other", summary="", questions=(DEMO.questions[0],))


def make(tmp_path, cluster=None):
    cluster = cluster or FakeCluster([
        {"kind": "Namespace", "metadata": {"name": "default"}},
        {"kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "default"}, "data": {"mode": "good"}}])
    return cluster, Engine(cluster, StateFile(tmp_path / "labs" / "state.json"), {"demo": DEMO, "other": OTHER})


def test_a_lab_played_from_start_to_reset(tmp_path):
    cluster, engine = make(tmp_path)
    before = {k: v for k, v in cluster.objects.items()}
    out = engine.start("demo")
    assert out.ok and "Question 1/2 [count]: How many pods?" in "\n".join(out.lines)
    assert cluster.get("configmaps", "settings", "default")["data"]["mode"] == "broken"

    wrong_answer = engine.answer("3")
    assert not wrong_answer.ok and "not 3: count the pods again" in wrong_answer.lines[0]
    with pytest.raises(LabError, match="checked on the cluster"):
        engine.answer("x", "fix")

    # a new Engine (another `knet lab` invocation) reads the same state
    _, engine = make(tmp_path, cluster)
    right_answer = engine.answer("1")
    assert right_answer.ok and "Question 2/2 [fix]" in "\n".join(right_answer.lines)
    check = engine.check()
    assert not check.ok and "✗ [fix] mode is still broken" in check.lines

    cluster.patch("configmaps", "settings", "default", {"data": {"mode": "good"}})  # the user's fix
    check = engine.check()
    assert check.ok and "✓ [fix] mode is fixed" in check.lines and "Lab demo complete" in check.lines[-1]
    assert "✓ [count]" in engine.status().lines[1]

    out = engine.reset()
    assert out.ok and "3 change(s) undone" in out.lines[0]
    assert cluster.objects == before  # namespace and pod gone, the label added by setup removed
    assert not (tmp_path / "labs" / "state.json").exists()
    assert engine.reset().lines == ["no lab is running"]


def test_undo_restores_what_the_lab_changed_not_what_the_user_fixed(tmp_path):
    cluster, engine = make(tmp_path)
    engine.start("demo")
    cluster.patch("configmaps", "settings", "default", {"data": {"mode": "user-fix"}})
    engine.reset()
    assert cluster.get("configmaps", "settings", "default")["data"]["mode"] == "good"


def test_a_typed_answer_once_right_stays_right_when_the_cluster_changes(tmp_path):
    cluster, engine = make(tmp_path)
    engine.start("demo")
    assert engine.answer("1").ok
    cluster.delete("pods", "p", NS)
    assert "✓ [count] answered: 1" in engine.check().lines


def test_one_lab_at_a_time_and_unknown_labs(tmp_path):
    _, engine = make(tmp_path)
    with pytest.raises(LabError, match='no lab "nope"'):
        engine.start("nope")
    with pytest.raises(LabError, match="no lab is running"):
        engine.check()
    engine.start("demo")
    with pytest.raises(LabError, match='lab "demo" is running'):
        engine.start("other")
    assert "already running" in engine.start("demo").lines[0]
    assert engine.list().lines == ["* demo   Demo (2 questions)", "  other  Other (1 question)"]


def test_hints_come_one_after_the_other_and_stop_at_the_last(tmp_path):
    _, engine = make(tmp_path)
    engine.start("demo")
    assert engine.hint().lines == ["Hint 1/2 for [count]: kubectl get pods"]
    assert engine.hint().lines == ["Hint 2/2 for [count] (last hint): there is one"]
    assert engine.hint().lines == ["Hint 2/2 for [count] (last hint): there is one"]


def test_a_setup_that_fails_can_still_be_reset(tmp_path):
    cluster, engine = make(tmp_path)
    cluster.delete("configmaps", "settings", "default")  # what the lab needs is missing
    with pytest.raises(LabError, match="setting up lab demo failed.*knet lab reset"):
        engine.start("demo")
    assert cluster.get("namespaces", NS) is not None
    # neither playing it nor starting it again forgets what reset must undo
    with pytest.raises(LabError, match="did not finish: knet lab reset"):
        engine.check()
    with pytest.raises(LabError, match="did not finish: knet lab reset"):
        engine.start("demo")
    assert engine.reset().ok
    assert cluster.get("namespaces", NS) is None


def test_an_unreadable_cluster_is_a_failed_check_that_says_why(tmp_path):
    cluster, engine = make(tmp_path)
    engine.start("demo")

    def broken(*a, **kw):
        raise LabClusterError("connection refused")

    cluster.get = broken
    out = engine.check()
    assert not out.ok and "✗ [fix] cannot check against the cluster: connection refused" in out.lines


def test_reset_that_cannot_undo_keeps_the_state_to_try_again(tmp_path):
    cluster, engine = make(tmp_path)
    engine.start("demo")
    real_delete = cluster.delete

    def refuse(*a, **kw):
        raise LabClusterError("forbidden")

    cluster.delete = refuse
    out = engine.reset()
    assert not out.ok and "forbidden" in "\n".join(out.lines)
    cluster.delete = real_delete
    assert engine.reset().ok and cluster.get("namespaces", NS) is None
