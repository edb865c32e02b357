"""The labs: one module per lab, each defining `LAB` (a knet.labs.model.Lab). Adding a lab is
adding a module here."""

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
