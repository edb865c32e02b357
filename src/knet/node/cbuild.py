"""knet's small C helpers (pause.c, crilog.c) built on first use with the host's compiler, under
a name holding the source's hash so a changed source is rebuilt and old binaries stay valid for
the processes still running them."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def build_c_helper(source: Path, name: str, build_dir: Path) -> list[str] | None:
    """[binary] built from `source` into `build_dir` as `NAME-<hash>`; None when there is no C
    compiler or the build fails (the caller then runs its Python twin)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not source.exists():
        return None
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    binary = build_dir / f"{name}-{digest}"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=binary.parent, delete=False) as tmp:
            pass
        result = subprocess.run([compiler, "-O2", "-o", tmp.name, str(source)], capture_output=True)
        if result.returncode != 0:
            os.unlink(tmp.name)
            return None
        os.replace(tmp.name, binary)  # atomic: kubelets of several nodes may race here
    return [str(binary)]
