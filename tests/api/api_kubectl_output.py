"""Compare kubectl's column output with expected text written literally in tests.

Cells are separated by two or more spaces (kubectl's tabwriter pads with at least three);
an expected cell `<age>` matches any age kubectl prints (`0s`, `5s`, `2m3s`, ...), since the
tests cannot fix the clock."""

from __future__ import annotations

import re

AGE = re.compile(r"^(\d+[smhdy])+$|^<unknown>$")


def cells(line: str) -> list[str]:
    return [c for c in re.split(r"\s{2,}", line.strip()) if c != ""]


def assert_table(actual: str, expected: str) -> None:
    """Every line's cells equal the expected ones, with <age> matching any age."""
    got = [cells(line) for line in actual.strip("\n").splitlines()]
    want = [cells(line) for line in expected.strip("\n").splitlines()]
    assert len(got) == len(want), f"line count differs:\n{actual}\n--- expected ---\n{expected}"
    for g, w in zip(got, want, strict=True):
        assert len(g) == len(w), f"cells differ: {g} != {w}\n{actual}"
        for gc, wc in zip(g, w, strict=True):
            if wc == "<age>":
                assert AGE.match(gc), f"{gc!r} is not an age in {g}"
            else:
                assert gc == wc, f"{gc!r} != {wc!r} in {g}\n{actual}"
    # kubectl aligns columns: each header starts where its cells start.
    lines = actual.strip("\n").splitlines()
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=\s{2}))\S", lines[0])]
    for line in lines[1:]:
        for s in starts[1:]:
            assert line[s - 1] == " " and line[s] != " ", f"column misaligned at {s}:\n{actual}"
