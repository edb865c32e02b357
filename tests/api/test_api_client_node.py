"""The JavaScript client `@kubernetes/client-node` (run by Node.js; pinned in
tests/clients/js/package-lock.json and installed there by scripts/install.sh with `npm ci`)
against a knet apiserver: tests/clients/js/list_watch_patch.mjs lists, watches (a raw Watch and
an informer), patches (JSON, merge, strategic merge) and server-side applies, printing one JSON
line per step; this test asserts on those lines and on what kubectl sees afterwards. Its apply
meets a conflict first: what it created without a field manager belongs to its User-Agent."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.api

JS = Path(__file__).resolve().parents[1] / "clients" / "js"


def node() -> str:
    found = shutil.which("node")
    assert found, "Node.js is missing: scripts/install.sh installs nodejs (and npm)"
    assert (JS / "node_modules" / "@kubernetes" / "client-node" / "package.json").exists(), \
        f"@kubernetes/client-node is missing: run `npm ci` in {JS} (scripts/install.sh does)"
    return found


def test_list_watch_patch(apiserver, namespace):
    p = subprocess.run([node(), "list_watch_patch.mjs", apiserver.kubeconfig, namespace], cwd=JS,
                       capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, f"node failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    steps = {line["step"]: line["value"] for line in map(json.loads, p.stdout.splitlines())}

    assert steps["list"] == {"kind": "ConfigMapList", "names": ["settings"], "rv": True}
    assert steps["json-patch"] == {"color": "blue", "size": "L"}
    assert steps["merge-patch"] == {"color": "green", "size": "L"}
    assert steps["strategic-merge-patch"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    # The create named no field manager: node-fetch (the User-Agent's first word) owns the
    # replicas, so the apply conflicts until forced, as against kube-apiserver.
    applied = steps["server-side-apply"]
    assert applied["conflict"] == {"code": 409, "message": 'Apply failed with 1 conflict: conflict with "node-fetch" '
                                                           "using apps/v1: .spec.replicas"}
    assert applied["replicas"] == 3
    assert applied["managers"] == [["node-fetch", "Update"], ["js-script", "Apply"]]
    assert steps["watch"] == [["ADDED", "settings", {"color": "blue"}],
                              ["MODIFIED", "settings", {"color": "blue", "size": "L"}],
                              ["MODIFIED", "settings", {"color": "green", "size": "L"}],
                              ["DELETED", "settings", {"color": "green", "size": "L"}]]
    informer = steps["informer"]
    assert sorted(e[1] for e in informer["events"] if e[0] == "add") == ["other", "settings"]
    assert [e for e in informer["events"] if e[0] != "add"] == [
        ["update", "settings", {"color": "blue", "size": "L"}],
        ["update", "settings", {"color": "green", "size": "L"}],
        ["delete", "settings"]]
    assert informer["cached"] == ["other"]

    assert apiserver.kubectl_ok("get", "deployment", "web", "-n", namespace, "-o",
                                "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].env[*].name}") == "3 A B"
    assert apiserver.kubectl_ok("get", "configmaps", "-n", namespace, "-o", "name") == "configmap/other\n"
