"""The kubelet's pod checkpoint (pods/UID/checkpoint.json) and the re-adoption decision: only
a pod whose pause is still the same process (pid and start time) and whose init containers had
completed is adopted by a restarted kubelet."""

from __future__ import annotations

from knet.node import checkpoint

from .checkpoints import sample_checkpoint

_cp = sample_checkpoint


def test_round_trip_and_atomic_files(tmp_path):
    cp = _cp()
    checkpoint.save(tmp_path / "u1", cp)
    assert checkpoint.load(tmp_path / "u1") == cp
    assert not (tmp_path / "u1" / "checkpoint.json.tmp").exists()
    (tmp_path / "u2").mkdir()
    (tmp_path / "u2" / "checkpoint.json").write_text("{not json")  # torn/garbage: ignored, not fatal
    checkpoint.save(tmp_path / "u3", _cp(uid="other"))              # a file not naming its own dir: ignored
    assert checkpoint.load_all(tmp_path) == {"u1": cp}
    checkpoint.remove(tmp_path / "u1")
    assert checkpoint.load_all(tmp_path) == {}


def test_adoptable_needs_the_same_live_pause_and_completed_init_containers():
    starts = {100: 5000, 101: 1, 200: 6000}
    cps = {"live": _cp(uid="live"), "reused": _cp(uid="reused", pause_pid=101),  # pid reused by another process
           "gone": _cp(uid="gone", pause_pid=999), "init": _cp(uid="init", init_done=False),
           "nopid": _cp(uid="nopid", pause_pid=None)}
    assert set(checkpoint.adoptable(cps, starts.get)) == {"live"}
    assert checkpoint.shim_alive(cps["live"].containers["c"], starts.get)
    assert not checkpoint.shim_alive(cps["live"].containers["c"], {200: 7}.get)
