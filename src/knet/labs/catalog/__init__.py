"""The labs: one module per lab, each defining `LAB` (a knet.labs.model.Lab). Adding a lab is
adding a module here:

    NS = "lab-mine"

    def setup(s: Setup) -> None:             # what `knet lab start` does; each step is undone by reset
        s.namespace(NS)                      # deleted on reset (with all in it)
        s.create("pods", kit.client_pod("client", NS))
        s.patch("deployments", "coredns", "kube-system", {"spec": {"replicas": 0}}, wait_ready_on_undo=True)
        s.wait_ready(NS)

    def observe(cluster: ClusterAccess, answer: str | None) -> Facts:   # reads the live cluster
        return {"reached": kit.http_get(cluster, NS, "client", "http://web").rc == 0}

    def judge(facts: Facts, answer: str | None) -> Verdict:             # pure: says what is wrong
        return right("client reaches web") if facts["reached"] else wrong("client cannot reach http://web")

    LAB = Lab(name="mine", title="...", summary="...", setup=setup, questions=(
        Question("fix", "Make client reach web.", observe, judge, typed=False, hints=("...",)),))

A typed question (the default) is answered with `knet lab answer VALUE`, which reaches observe
and judge as `answer`; knet.labs.model has judges for networks, counts and words.
"""

from __future__ import annotations

import importlib
import pkgutil

from knet.labs.model import Lab


def load_labs() -> dict[str, Lab]:
    labs: dict[str, Lab] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        lab = getattr(module, "LAB", None)
        if not isinstance(lab, Lab):
            raise TypeError(f"{module.__name__} defines no LAB (a knet.labs.model.Lab)")
        if lab.name in labs:
            raise ValueError(f"two labs are named {lab.name}")
        labs[lab.name] = lab
    return labs
