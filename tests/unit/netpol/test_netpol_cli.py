"""`knet netpol render` and `knet netpol check` from objects in a file (no cluster, no kernel)."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from knet.cli.main import cli

from .fixtures import NAMESPACES, PODS, policy


def _objects(tmp_path, *policies):
    docs = ([{**n, "kind": "Namespace"} for n in NAMESPACES] + [{**p, "kind": "Pod"} for p in PODS]
            + [{**p, "kind": "NetworkPolicy"} for p in policies])
    path = tmp_path / "objects.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def test_check_answers_allowed_and_denied(tmp_path):
    f = _objects(tmp_path, policy("x", "from-y", {"podSelector": {}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}))
    runner = CliRunner()
    ok = runner.invoke(cli, ["netpol", "check", "y/b", "x/a", "--port", "80", "-f", f])
    assert ok.exit_code == 0 and "y/b -> x/a:80/tcp: allowed" in ok.output
    denied = runner.invoke(cli, ["netpol", "check", "z/b", "x/a", "--port", "80", "-f", f])
    assert denied.exit_code == 1 and "denied" in denied.output
    outside = runner.invoke(cli, ["netpol", "check", "192.0.2.7", "x/c", "--port", "81", "-f", f])
    assert outside.exit_code == 1
    missing = runner.invoke(cli, ["netpol", "check", "q/none", "x/c", "--port", "81", "-f", f])
    assert missing.exit_code != 0 and "no pod" in missing.output


def test_render_prints_a_nodes_rules(tmp_path):
    f = _objects(tmp_path, policy("x", "deny", {"podSelector": {}}))
    out = CliRunner().invoke(cli, ["netpol", "render", "--node", "node02", "-f", f])
    assert out.exit_code == 0
    assert '"np-x' not in out.output and '"x/c ingress isolated"' in out.output
    assert '"x/a ingress' not in out.output  # x/a runs on node01
    nft = CliRunner().invoke(cli, ["netpol", "render", "--node", "node01", "--mode", "nftables", "-f", f])
    assert "add table ip knet-netpol" in nft.output and '"x/deny ingress"' in nft.output
