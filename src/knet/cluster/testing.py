"""A whole knet cluster for tests and benchmarks: `knet up` in a private state dir and
kubeconfig, real kubectl against it, `knet ssh` into its nodes, and `knet down` that always runs.

    with ClusterUnderTest.up(nodes=3, dataplane="real") as cluster:
        cluster.kubectl("get", "nodes", "-o", "wide").stdout
        cluster.ssh("node01", "hostname").stdout
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from knet.cluster.bootstrap import knet_argv


@dataclass
class ClusterUnderTest:
    name: str
    state_dir: Path
    kubeconfig: Path
    up_seconds: float = 0.0
    up_output: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    _own_dirs: list[Path] = field(default_factory=list)

    @property
    def context(self) -> str:
        return f"knet-{self.name}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KNET_STATE_DIR": str(self.state_dir), "KUBECONFIG": str(self.kubeconfig)}

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state_dir / self.name / "kubeconfig" / "admin.conf"

    @classmethod
    def up(cls, *, name: str | None = None, nodes: int | None = 2, dataplane: str = "sim",
           proxy_mode: str | None = None, extra_args: tuple[str, ...] = (), timeout: float = 120.0,
           state_dir: Path | None = None) -> ClusterUnderTest:
        """`knet up`; on failure the half-made cluster is removed and the error raised with logs."""
        name = name or f"t{secrets.token_hex(3)}"
        own: list[Path] = []
        if state_dir is None:
            state_dir = Path(tempfile.mkdtemp(prefix=f"knet-state-{name}-"))
            own.append(state_dir)
        kube_dir = Path(tempfile.mkdtemp(prefix=f"knet-kube-{name}-"))
        own.append(kube_dir)
        cluster = cls(name=name, state_dir=state_dir, kubeconfig=kube_dir / "config", _own_dirs=own)
        argv = [*knet_argv(), "up", "--name", name, "--dataplane", dataplane, "--wait", str(timeout), *extra_args]
        if nodes is not None:
            argv += ["--nodes", str(nodes)]
        if proxy_mode:
            argv += ["--proxy-mode", proxy_mode]
        started = time.monotonic()
        try:
            result = subprocess.run(argv, env=cluster.env, capture_output=True, text=True, timeout=timeout + 30)
        except subprocess.TimeoutExpired as exc:
            logs = cluster.logs_tail()
            cluster.down()
            raise RuntimeError(f"knet up timed out\n{exc.stdout}\n{exc.stderr}\n{logs}") from exc
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): leave nothing behind
            cluster.down()
            raise
        cluster.up_seconds = time.monotonic() - started
        cluster.up_output = result.stdout + result.stderr
        if result.returncode != 0:
            logs = cluster.logs_tail()
            cluster.down()
            raise RuntimeError(f"knet up failed ({result.returncode}):\n{cluster.up_output}\n{logs}")
        cluster.config = yaml.safe_load((state_dir / name / "cluster.yaml").read_text())
        return cluster

    def logs_tail(self, lines: int = 30) -> str:
        out = []
        for log in sorted((self.state_dir / self.name / "logs").glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(out)

    def knet(self, *args: str, timeout: float = 60.0, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*knet_argv(), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=check)

    def kubectl(self, *args: str, timeout: float = 30.0, check: bool = True,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["kubectl", "--context", self.context, *args], env=self.env,
                                capture_output=True, text=True, timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def ssh(self, node: str, *command: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return self.knet("ssh", "--name", self.name, node, "--", *command, timeout=timeout)

    def wait_for(self, what: str, predicate, timeout: float = 30.0, interval: float = 0.1):
        """Poll predicate() until truthy; returns its value or fails with `what`."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
            except (AssertionError, subprocess.SubprocessError) as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")

    def down(self) -> subprocess.CompletedProcess[str]:
        result = self.knet("down", "--name", self.name, timeout=120)
        for d in self._own_dirs:
            subprocess.run(["rm", "-rf", "--one-file-system", str(d)], check=False)
        return result

    def __enter__(self) -> ClusterUnderTest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()
