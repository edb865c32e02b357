"""Run every knet benchmark in turn: `python bench/run_all.py [--quick]` (root for the real ones).

Each benchmark is its own script with its own flags (see its docstring); this runner only
sequences them so one command prints every figure the issues ask for.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent

# (script, full-size args, quick args)
BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("api_bench.py", [], ["--requests", "1000", "--seconds", "2", "--pods", "2000", "--watchers", "20"]),
    ("cluster_bench.py", [], ["--quick"]),
    ("dataplane_bench.py", [], ["--quick"]),
    ("node_density_bench.py", [], ["--pods", "20"]),
    ("proxy_bench.py", [], ["--sizes", "1000", "--latency-services", "10,1000"]),
    ("dns_bench.py", [], ["--seconds", "3"]),
    ("rbac_bench.py", [], ["--requests", "50000"]),
    ("netpol_bench.py", [], ["--quick"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes in all")
    parser.add_argument("only", nargs="*", help="run only these benchmarks (e.g. api dns)")
    args = parser.parse_args()
    failed = []
    for script, full, quick in BENCHMARKS:
        if args.only and script.removesuffix("_bench.py") not in args.only:
            continue
        argv = [sys.executable, str(BENCH / script), *(quick if args.quick else full)]
        print(f"\n=== {' '.join(argv[1:])}", flush=True)
        if subprocess.run(argv).returncode != 0:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
