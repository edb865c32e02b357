"""PodHost: what a pod worker needs of the node it runs on, and nothing more.

A PodWorker (podworker.py) runs one pod; NodeAgent (agent.py) implements this for it. The
worker never sees the kubelet process, its API client or its configuration: volumes, env sources
and events come through here, its sandbox and containers through the node's PodRuntime and its
limits through the node's cgroups. Unit tests give the worker a fake host
(tests/unit/node/fakes.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from knet.node.checkpoint import PodCheckpoint
    from knet.node.podcgroups import NodeCgroups
    from knet.node.podworker import PodWorker
    from knet.node.runtime import PodRuntime

Obj = dict[str, Any]


class PodHost(Protocol):
    # -- the node ------------------------------------------------------------------------------
    @property
    def node_name(self) -> str: ...

    @property
    def node_ip(self) -> str: ...

    @property
    def pods_dir(self) -> Path:
        """Each pod's files (volumes, logs, its /etc files, checkpoint) are under pods_dir/<uid>."""
        ...

    @property
    def runtime(self) -> PodRuntime: ...

    @property
    def cgroups(self) -> NodeCgroups: ...

    def network_ready(self) -> bool:
        """The node's pod network is set up (its CNI config is written): pods not on the host's
        network wait for it."""
        ...

    # -- what the pod's files and env are made of ------------------------------------------------
    @property
    def cluster_dns(self) -> list[str]: ...

    @property
    def cluster_domain(self) -> str: ...

    @property
    def well_known_hosts(self) -> dict[str, str]:
        """Names every pod's /etc/hosts gets besides its own."""
        ...

    async def materialise_volumes(self, pod: Obj, pod_dir: Path, *, static: bool) -> tuple[Obj, dict[str, Path]]:
        """Write the pod's volumes under pod_dir: (the pod as its containers mount it -- with its
        service-account volume unless static --, volume name -> host path)."""
        ...

    async def fetch_env_sources(self, namespace: str, container: Obj) -> None:
        """Read the ConfigMaps and Secrets the container's env refers to again (before each start)."""
        ...

    def services(self) -> list[Obj]: ...

    def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None: ...

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None: ...

    # -- what the worker reports --------------------------------------------------------------------
    async def event(self, pod: Obj, event_type: str, reason: str, message: str, field_path: str | None) -> None: ...

    def status_changed(self, worker: PodWorker) -> None:
        """The worker's status() changed: write it to the API."""
        ...

    def retry_pod(self, worker: PodWorker) -> None:
        """The pod's sandbox could not be made: run a fresh worker for it (unless it went away)."""
        ...

    async def pod_terminated(self, worker: PodWorker) -> None:
        """A graceful deletion has stopped the pod: the object goes."""
        ...

    def take_adoption(self, uid: str) -> PodCheckpoint | None:
        """The checkpoint of this pod that a previous kubelet left running, once (then None)."""
        ...
