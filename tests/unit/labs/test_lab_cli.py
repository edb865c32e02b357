"""`knet lab` command line without a cluster: listing works, the rest says what is missing and
exits 1 (a cluster that does not exist, no lab running)."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from knet.cli.main import cli


def run(tmp_path, *args):
    return CliRunner().invoke(cli, ["lab", *args], env={"KNET_STATE_DIR": str(tmp_path)})


def test_list_needs_no_cluster(tmp_path):
    result = run(tmp_path, "list")
    assert result.exit_code == 0
    assert "  service-networking" in result.output and "troubleshoot-coredns" in result.output


def test_commands_on_a_missing_cluster_say_so(tmp_path):
    for args in (["check"], ["start", "coredns"], ["answer", "1"], ["hint"], ["reset"]):
        result = run(tmp_path, *args, "--name", "nope")
        assert result.exit_code == 1, args
        assert 'no cluster named "nope"' in result.output


def test_no_lab_running_and_unknown_lab(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "cluster.yaml").write_text(yaml.safe_dump({"name": "demo", "dataplane": "real"}))
    result = run(tmp_path, "check", "--name", "demo")
    assert result.exit_code == 1 and "no lab is running: start one with knet lab start LAB" in result.output
    result = run(tmp_path, "start", "--name", "demo", "nope")
    assert result.exit_code == 1 and 'no lab "nope"' in result.output
    assert run(tmp_path, "reset", "--name", "demo").output.strip() == "no lab is running"


def test_a_simulated_cluster_is_refused_before_anything_is_made(tmp_path):
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "cluster.yaml").write_text(yaml.safe_dump({"name": "sim", "dataplane": "sim"}))
    result = run(tmp_path, "start", "--name", "sim", "coredns")
    assert result.exit_code == 1 and "needs a cluster with --dataplane real" in result.output
    assert "Setting up" not in result.output
    assert not (tmp_path / "sim" / "labs" / "state.json").exists()
