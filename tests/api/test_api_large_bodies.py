"""Large bodies (64 KB - 2.9 MB) round-trip through the real kubectl every time: `apply`
(client-side up to the 256 KiB its last-applied annotation may hold, server-side beyond),
`create configmap --from-file` and `replace --force` (delete, then create again). The body was
read with one `content.read(n)`, which returns what has arrived so far: bodies over ~64 KB were
cut short at random, and `replace --force` deleted the object and then failed to recreate it."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.api

SIZES = [65_537, 200_000, 1_000_000, 2_900_000]
REPEATS = 3


def payload(size: int, seed: int) -> str:
    return (f"{seed:08d}" + "abcdefghijklmnopqrstuvwxyz0123456789" * (size // 36 + 1))[:size]


def manifest(name: str, value: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}})


def stored_value(apiserver, namespace: str, name: str, key: str = "v") -> str:
    out = apiserver.kubectl_ok("get", "configmap", name, "-n", namespace, "-o", "json", timeout=60)
    return json.loads(out)["data"][key]


@pytest.mark.parametrize("size", SIZES)
def test_kubectl_apply_of_large_configmaps(apiserver, namespace, tmp_path, size):
    name = f"apply-{size}"
    server_side = size > 200_000  # client-side apply keeps the whole object in an annotation (256 KiB)
    for i in range(REPEATS):
        value = payload(size, i)
        f = tmp_path / f"{name}-{i}.json"
        f.write_text(manifest(name, value))
        args = ["apply", "-n", namespace, "-f", str(f)] + (["--server-side"] if server_side else [])
        apiserver.kubectl_ok(*args, timeout=120)
        assert stored_value(apiserver, namespace, name) == value


@pytest.mark.parametrize("size", SIZES)
def test_kubectl_create_from_file_and_replace_force(apiserver, namespace, tmp_path, size):
    for i in range(REPEATS):
        name = f"file-{size}-{i}"
        value = payload(size, i)
        src = tmp_path / "v"
        src.write_text(value)
        apiserver.kubectl_ok("create", "configmap", name, "-n", namespace, f"--from-file=v={src}", timeout=120)
        assert stored_value(apiserver, namespace, name) == value
        replaced = payload(size, i + 100)
        f = tmp_path / f"{name}.json"
        f.write_text(manifest(name, replaced))
        apiserver.kubectl_ok("replace", "--force", "-n", namespace, "-f", str(f), timeout=120)
        assert stored_value(apiserver, namespace, name) == replaced
