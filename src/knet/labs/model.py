"""What a lab is, and the pure helpers its checks use to compare an answer with observed facts.

A lab is data: a name, a title, a `setup` (what `start` does to the cluster, through a recorder
that remembers how to undo it) and questions. Each question has an `observe` step (reads the
live cluster through the access interface: side effects) and a `judge` step (pure: facts and the
user's answer -> a verdict saying what is right or still wrong).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from knet.labs.access import ClusterAccess, Setup

Facts = dict[str, Any]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str


def right(message: str) -> Verdict:
    return Verdict(True, message)


def wrong(message: str) -> Verdict:
    return Verdict(False, message)


@dataclass(frozen=True)
class Question:
    """One step of a lab. `typed`: the user answers with `knet lab answer VALUE`; otherwise the
    check observes the cluster (the user fixes something with kubectl, then runs `knet lab check`)."""

    id: str
    text: str
    observe: Callable[[ClusterAccess, str | None], Facts]
    judge: Callable[[Facts, str | None], Verdict]
    hints: tuple[str, ...] = ()
    typed: bool = True


@dataclass(frozen=True)
class Lab:
    name: str
    title: str
    summary: str
    questions: tuple[Question, ...]
    setup: Callable[[Setup], None] | None = None
    # Looks into nodes (`knet ssh`) or runs probes in pods (`kubectl exec`): a simulated
    # dataplane has neither.
    needs_real_dataplane: bool = True
    tags: tuple[str, ...] = field(default_factory=tuple)

    def question(self, qid: str) -> Question:
        for q in self.questions:
            if q.id == qid:
                return q
        raise KeyError(f'lab {self.name} has no question "{qid}" '
                       f'(questions: {", ".join(q.id for q in self.questions)})')


# ---------------------------------------------------------------- answer helpers (pure)

def normalise_word(answer: str | None) -> str:
    """`  DaemonSet ` -> `daemonset`; quotes and a trailing full stop dropped."""
    return (answer or "").strip().strip("\"'`").rstrip(".").strip().lower()


def parse_network(answer: str | None) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A CIDR as a user types it (host bits allowed: 172.30.0.2/24 names 172.30.0.0/24)."""
    text = normalise_word(answer)
    if "/" not in text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def parse_int(answer: str | None) -> int | None:
    text = normalise_word(answer)
    return int(text) if re.fullmatch(r"\d+", text) else None


def judge_network(expected: str, answer: str | None, what: str,
                  near_misses: dict[str, str] | None = None) -> Verdict:
    """The answer must name the network `expected` (a CIDR); `near_misses` maps CIDRs a user
    might confuse with it to why they are not the answer."""
    want = ipaddress.ip_network(expected, strict=False)
    got = parse_network(answer)
    if got is None:
        if answer and _is_ip(answer):
            return wrong(f"{answer.strip()} is one address; the question asks for a range in CIDR notation "
                         f"(ADDRESS/PREFIX, e.g. {ipaddress.ip_network('10.0.0.0/8')})")
        return wrong(f'"{(answer or "").strip()}" is not a CIDR (ADDRESS/PREFIX, e.g. 10.0.0.0/8)')
    if got == want:
        return right(f"{what} is {want}")
    for cidr, why in (near_misses or {}).items():
        if got == ipaddress.ip_network(cidr, strict=False):
            return wrong(f"{got} is {why}")
    if got.version == want.version and want.subnet_of(got):
        return wrong(f"{got} contains {what}, but is wider than it (prefix /{got.prefixlen} is too short)")
    if got.version == want.version and got.subnet_of(want):
        return wrong(f"{got} is inside {what}, but only part of it (prefix /{got.prefixlen} is too long)")
    return wrong(f"{got} is not {what}")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(normalise_word(text))
    except ValueError:
        return False
    return True


def judge_count(expected: int, answer: str | None, what: str, why: str = "") -> Verdict:
    got = parse_int(answer)
    if got is None:
        return wrong(f'"{(answer or "").strip()}" is not a number')
    if got == expected:
        return right(f"there are {expected} {what}")
    return wrong(f"not {got}: count the {what} again{(' (' + why + ')') if why else ''}")


def judge_choice(expected: str, answer: str | None, what: str, accepted: tuple[str, ...] = (),
                 near_misses: dict[str, str] | None = None) -> Verdict:
    """A word answer: `expected` or one of `accepted` (compared without case); also accepted inside a
    short sentence ("a DaemonSet")."""
    got = normalise_word(answer)
    if not got:
        return wrong("no answer given")
    names = {normalise_word(expected), *(normalise_word(a) for a in accepted)}
    words = set(re.findall(r"[a-z0-9_./:-]+", got))
    if got in names or (len(words) <= 4 and names & words):
        return right(f"{what} is {expected}")
    for miss, why in (near_misses or {}).items():
        if normalise_word(miss) in got:
            return wrong(f"not {answer.strip()}: {why}")
    return wrong(f'"{(answer or "").strip()}" is not {what}')
