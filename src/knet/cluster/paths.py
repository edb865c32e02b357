"""Where a cluster keeps its files (docs/contracts.md section 5). Pure path arithmetic, no I/O."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def state_root() -> Path:
    """`$KNET_STATE_DIR`, else /var/lib/knet as root, else ~/.local/share/knet."""
    env = os.environ.get("KNET_STATE_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/knet")
    return Path.home() / ".local" / "share" / "knet"


@dataclass(frozen=True)
class ClusterPaths:
    """The files of cluster NAME under ROOT/NAME/."""

    root: Path

    @classmethod
    def of(cls, name: str, root: Path | None = None) -> ClusterPaths:
        return cls((root or state_root()) / name)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config_file(self) -> Path:
        return self.root / "cluster.yaml"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def kubeconfig_dir(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.kubeconfig_dir / "admin.conf"

    def component_kubeconfig(self, component: str) -> Path:
        return self.kubeconfig_dir / f"{component}.conf"

    def kubelet_kubeconfig(self, node: str) -> Path:
        return self.kubeconfig_dir / f"kubelet-{node}.conf"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def token_file(self) -> Path:
        return self.pki / "tokens.csv"

    def node_dir(self, node: str) -> Path:
        return self.root / "nodes" / node

    def manifests_dir(self, node: str) -> Path:
        return self.node_dir(node) / "manifests"

    def cni_conf_dir(self, node: str) -> Path:
        return self.node_dir(node) / "cni" / "net.d"


# What only a cluster's directory holds (the state root also has shared dirs such as bin/).
_CLUSTER_MARKERS = ("cluster.yaml", "nodes", "pids", "pki")


def list_cluster_names(root: Path | None = None) -> list[str]:
    """Names of the clusters that have a state directory (also half-made ones)."""
    base = root or state_root()
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir()
                  if p.is_dir() and any((p / marker).exists() for marker in _CLUSTER_MARKERS))


def missing_cluster_message(name: str, existing: list[str]) -> str:
    """What a command naming cluster NAME says when there is none: which clusters there are and how
    to pick one (commands default to --name knet; a cluster made with --name NAME needs it)."""
    if not existing:
        return f'no cluster named "{name}" (there is none: create one with knet up)'
    if len(existing) == 1:
        return f'no cluster named "{name}" (there is "{existing[0]}": use --name {existing[0]})'
    return f'no cluster named "{name}" (there are {", ".join(existing)}: pick one with --name NAME)'
