"""API-suite helpers: makes this directory's helper modules (api_kubectl_output) importable
under pytest's importlib import mode. The fixtures live in tests/conftest.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
