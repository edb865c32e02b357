"""`knet up/down/status/ssh` argument handling that needs no running cluster."""

from __future__ import annotations

from click.testing import CliRunner

from knet.cli.main import cli


def run(tmp_path, *args):
    env = {"KNET_STATE_DIR": str(tmp_path / "state"), "KUBECONFIG": str(tmp_path / "kubeconfig")}
    return CliRunner().invoke(cli, list(args), env=env)


def test_up_refuses_a_bad_config_file_before_making_anything(tmp_path):
    bad = tmp_path / "cluster.yaml"
    bad.write_text("kind: Cluster\napiVersion: knet.io/v1alpha1\nproxyMode: ipvs\n")
    result = run(tmp_path, "up", "--config", str(bad), "--dataplane", "sim")
    assert result.exit_code != 0
    assert "proxyMode 'ipvs'" in result.output
    assert not (tmp_path / "state" / "knet").exists()


def test_up_refuses_an_existing_state_dir_and_says_how_to_remove_it(tmp_path):
    (tmp_path / "state" / "demo").mkdir(parents=True)
    result = run(tmp_path, "up", "--name", "demo", "--dataplane", "sim")
    assert result.exit_code != 0
    assert 'a cluster named "demo" already exists' in result.output
    assert "knet down --name demo" in result.output


def test_status_without_clusters(tmp_path):
    result = run(tmp_path, "status")
    assert result.exit_code == 0
    assert "no clusters (create one with: knet up)" in result.output


def test_down_of_an_unknown_cluster_is_a_no_op(tmp_path):
    result = run(tmp_path, "down", "--name", "ghost")
    assert result.exit_code == 0
    assert 'nothing left of cluster "ghost"' in result.output


def test_ssh_to_an_unknown_cluster_or_node(tmp_path):
    result = run(tmp_path, "ssh", "--name", "ghost", "node01", "--", "hostname")
    assert result.exit_code != 0 and 'no cluster named "ghost"' in result.output


def test_status_ignores_shared_dirs_of_the_state_root(tmp_path):
    (tmp_path / "state" / "bin").mkdir(parents=True)  # e.g. the node agent's helper binaries
    (tmp_path / "state" / "crashed" / "nodes").mkdir(parents=True)
    out = run(tmp_path, "status").output
    assert "cluster bin" not in out
    assert "cluster crashed: dataplane=? api=no config (half-made cluster: knet down --name crashed)" in out
