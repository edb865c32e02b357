"""The user's kubeconfig: add and remove a cluster's entries as kind does.

`knet up` merges cluster/user/context entries named `knet-NAME` into the first file of
$KUBECONFIG (else ~/.kube/config) and makes the context current; `knet down` removes them again.
merge_entries/remove_entries are pure; read/write wrap the file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml


def user_kubeconfig_path(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    value = env.get("KUBECONFIG", "")
    first = next((p for p in value.split(os.pathsep) if p), "")
    if first:
        return Path(first).expanduser()
    return Path(env.get("HOME", str(Path.home()))) / ".kube" / "config"


def empty_kubeconfig() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": [],
            "current-context": "", "preferences": {}}


def _replace(items: list[dict[str, Any]] | None, entry: dict[str, Any]) -> list[dict[str, Any]]:
    kept = [i for i in (items or []) if i.get("name") != entry["name"]]
    return [*kept, entry]


def merge_entries(existing: dict[str, Any] | None, entries: dict[str, Any]) -> dict[str, Any]:
    """Add (or replace) the cluster, user and context of a cluster's own kubeconfig `entries`
    (a one-context kubeconfig) to `existing`, and make that context current."""
    merged = dict(existing or empty_kubeconfig())
    merged.setdefault("apiVersion", "v1")
    merged.setdefault("kind", "Config")
    for section in ("clusters", "users", "contexts"):
        for entry in entries.get(section) or []:
            merged[section] = _replace(merged.get(section), entry)
    merged["current-context"] = entries.get("current-context", merged.get("current-context", ""))
    return merged


def remove_entries(existing: dict[str, Any], name: str) -> dict[str, Any]:
    """Drop the cluster, user and context called `name`; unset current-context if it was that."""
    pruned = dict(existing)
    for section in ("clusters", "users", "contexts"):
        if section in pruned:
            pruned[section] = [i for i in pruned.get(section) or [] if i.get("name") != name]
    if pruned.get("current-context") == name:
        pruned["current-context"] = ""
    return pruned


def rename_entries(kubeconfig: dict[str, Any], name: str) -> dict[str, Any]:
    """A single-context kubeconfig (admin.conf) with its cluster, user and context all called
    `name`, as kind names them (kind-NAME), so they can be merged without clashes."""
    cluster = dict(kubeconfig["clusters"][0])
    user = dict(kubeconfig["users"][0])
    context = dict(kubeconfig["contexts"][0])
    cluster["name"] = user["name"] = context["name"] = name
    context["context"] = {**context.get("context", {}), "cluster": name, "user": name}
    return {
        "apiVersion": "v1", "kind": "Config", "clusters": [cluster], "users": [user],
        "contexts": [context], "current-context": name,
    }


def read(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    data = yaml.safe_load(text)
    return data if isinstance(data, dict) else None


def write(path: Path, kubeconfig: dict[str, Any]) -> None:
    """Write atomically (a half-written kubeconfig would break every kubectl on the machine)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(kubeconfig, fh, default_flow_style=False, sort_keys=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def install(path: Path, cluster_kubeconfig: dict[str, Any], context: str) -> None:
    write(path, merge_entries(read(path), rename_entries(cluster_kubeconfig, context)))


def uninstall(path: Path, context: str) -> bool:
    current = read(path)
    if current is None:
        return False
    pruned = remove_entries(current, context)
    if pruned == current:
        return False
    write(path, pruned)
    return True
