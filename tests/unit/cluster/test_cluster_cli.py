"""`knet up/down/status/ssh` argument handling that needs no running cluster."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from knet.cli.main import cli
from knet.cluster.config import resolve


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


def test_crictl_names_an_unknown_cluster_or_node_rather_than_a_missing_socket(tmp_path):
    result = run(tmp_path, "crictl", "--name", "ghost", "node01", "ps")
    assert result.exit_code == 1
    assert 'no cluster named "ghost" (there is none: create one with knet up)' in result.output
    assert "containerd.sock" not in result.output
    config, _ = resolve({"name": "demo", "nodes": 2}, dataplane="sim", real_dataplane_available=False)
    (tmp_path / "state" / "demo").mkdir(parents=True)
    (tmp_path / "state" / "demo" / "cluster.yaml").write_text(yaml.safe_dump(config.to_dict()))
    result = run(tmp_path, "crictl", "--name", "demo", "node07", "ps")
    assert result.exit_code == 1
    assert 'cluster "demo" has no node "node07" (nodes: controlplane, node01)' in result.output
    # a simulated node has no runtime endpoint, and that is not a kubelet that stopped
    result = run(tmp_path, "crictl", "--name", "demo", "node01", "ps")
    assert result.exit_code == 1
    assert 'cluster "demo" has a simulated dataplane: node "node01" runs no containers' in result.output
    assert "is the node's kubelet running" not in result.output


def test_a_command_reading_the_live_cluster_without_a_kubeconfig_says_so_without_a_traceback(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "KNET_STATE_DIR": str(tmp_path / "state"), "KUBECONFIG": str(tmp_path / "missing")}
    proc = subprocess.run([sys.executable, "-c", "from knet.cli.main import main; main()", "proxy", "render"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"Error: cannot read kubeconfig {tmp_path / 'missing'}" in proc.stderr
    assert "knet up" in proc.stderr


def test_a_command_without_name_says_which_cluster_there_is(tmp_path):
    # `knet up --name uw`, then `knet ssh node01` (default --name knet): say to use --name uw
    for name in ("uw", "other"):
        config, _ = resolve({"name": name, "nodes": 2}, dataplane="sim", real_dataplane_available=False)
        (tmp_path / "state" / name).mkdir(parents=True)
        (tmp_path / "state" / name / "cluster.yaml").write_text(yaml.safe_dump(config.to_dict()))
        if name == "uw":
            for argv in (["ssh", "node01"], ["crictl", "node01", "ps"], ["trace", "a", "b"], ["lab", "check"]):
                result = run(tmp_path, *argv)
                assert result.exit_code == 1, argv
                assert 'no cluster named "knet" (there is "uw": use --name uw)' in result.output, (argv, result.output)
    result = run(tmp_path, "ssh", "node01")
    assert 'no cluster named "knet" (there are other, uw: pick one with --name NAME)' in result.output


def test_a_manifest_that_is_not_yaml_is_said_so_without_a_traceback(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "objects.yaml"
    bad.write_text(": :\n")
    for argv in (["proxy", "render", "-f", str(bad)], ["netpol", "render", "--node", "node01", "-f", str(bad)]):
        proc = subprocess.run([sys.executable, "-c", "from knet.cli.main import main; main()", *argv],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1, argv
        assert "Traceback" not in proc.stderr
        assert proc.stderr.startswith("Error: not valid YAML: ") and "line 1, column 1" in proc.stderr

