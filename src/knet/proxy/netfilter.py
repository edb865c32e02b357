"""Netfilter: how rules reach the kernel. `RealNetfilter` runs iptables-restore / nft in the network
namespace the process is in (or, for tests, in a named one); `FakeNetfilter` keeps the tables in
memory and enforces what the kernel enforces (no jump to a missing chain, no deleting a chain in
use, atomic restores), like upstream's pkg/util/iptables/testing/fake.go. `FakeNft` fails where
`nft -f` fails: flushing or deleting a chain, set or element that does not exist (ENOENT),
deleting a chain or set something still refers to (EBUSY), and, with `release_delay`, as kernels
before 6.2 do: a deleted map element keeps its chain referenced for a moment after the commit.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from knet.proxy import restore
from knet.proxy.iptables import quote
from knet.proxy.libnft import LibNftError, NftContext

log = logging.getLogger("knet.proxy")


class NetfilterError(Exception):
    pass


class Netfilter(Protocol):
    def iptables_restore(self, text: str, *, noflush: bool = True) -> None: ...
    # the same, fed line by line as `lines` produces them (the tool parses while they are made)
    def iptables_restore_lines(self, lines: Iterable[str], *, noflush: bool = True) -> None: ...
    def iptables_save(self, table: str) -> str: ...  # "": every table
    def iptables(self, *args: str) -> bool: ...  # one iptables command; True if it succeeded
    def nft(self, script: str) -> None: ...  # `nft -f -`, atomic
    def nft_list(self, *what: str) -> str: ...  # `nft list ...`


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)


@dataclass
class RealNetfilter:
    netns: str | None = None  # None: the namespace this process runs in (the node's)
    # nft transactions through one long-lived libnftables context (knet.proxy.libnft), which keeps
    # nft's cache of the table's chains between our own transactions (kube-proxy turns it on);
    # False: an `nft -f` process each (the network policy controller, whose tables are small)
    libnftables: bool = False
    _nft_ctx: NftContext | None = field(default=None, init=False, repr=False, compare=False)

    def _argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else list(argv)

    def iptables_restore(self, text: str, *, noflush: bool = True) -> None:
        argv = ["iptables-restore", "-w", "5"] + (["--noflush"] if noflush else [])
        p = _run(self._argv(*argv), text)
        if p.returncode != 0:
            raise NetfilterError(f"iptables-restore failed: {p.stderr.strip()}")

    def iptables_restore_lines(self, lines: Iterable[str], *, noflush: bool = True) -> None:
        argv = ["iptables-restore", "-w", "5"] + (["--noflush"] if noflush else [])
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(self._argv(*argv), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=err)
            assert proc.stdin is not None
            try:
                chunk: list[str] = []
                for line in lines:
                    chunk.append(line)
                    if len(chunk) >= 2048:  # ~200 KB: a few pipe-fulls per write
                        chunk.append("")
                        proc.stdin.write("\n".join(chunk).encode())
                        chunk = []
                chunk.append("")
                proc.stdin.write("\n".join(chunk).encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass  # the tool stopped reading (a bad line): its exit status and stderr say why
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            if proc.wait() != 0:
                err.seek(0)
                raise NetfilterError(f"iptables-restore failed: {err.read().decode(errors='replace').strip()}")

    def iptables_save(self, table: str) -> str:
        p = _run(self._argv("iptables-save", *(["-t", table] if table else [])))
        if p.returncode != 0:
            raise NetfilterError(f"iptables-save failed: {p.stderr.strip()}")
        return p.stdout

    def iptables(self, *args: str) -> bool:
        return _run(self._argv("iptables", "-w", "5", *args)).returncode == 0

    def nft(self, script: str) -> None:
        if self.libnftables and self._nft_ctx is None:
            try:
                self._nft_ctx = NftContext(self.netns)
            except (LibNftError, OSError) as exc:
                log.warning("libnftables unavailable, running nft per transaction: %s", exc)
                self.libnftables = False
        if self._nft_ctx is not None:
            try:
                self._nft_ctx.run(script)
            except LibNftError as exc:
                raise NetfilterError(f"nft -f failed: {str(exc)[:2000]}") from None
            return
        p = _run(self._argv("nft", "-f", "-"), script)
        if p.returncode != 0:
            raise NetfilterError(f"nft -f failed: {p.stderr.strip()[:2000]}")

    def nft_list(self, *what: str) -> str:
        p = _run(self._argv("nft", *what))
        if p.returncode != 0:
            raise NetfilterError(f"nft {' '.join(what)} failed: {p.stderr.strip()}")
        return p.stdout


BUILTIN_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
}
TERMINAL_TARGETS = {"ACCEPT", "DROP", "RETURN", "REJECT", "DNAT", "SNAT", "MASQUERADE", "MARK", "LOG", "QUEUE"}


@dataclass
class FakeIptables:
    """iptables tables in memory: chain -> list of rule argument strings (after "-A CHAIN ")."""
    tables: dict[str, dict[str, list[str]]] = field(
        default_factory=lambda: {t: {c: [] for c in cs} for t, cs in BUILTIN_CHAINS.items()})
    restores: list[str] = field(default_factory=list)

    def restore(self, text: str, noflush: bool) -> None:
        new = {t: {c: list(r) for c, r in cs.items()} for t, cs in self.tables.items()}
        try:
            parsed = restore.parse(text)
        except restore.RestoreError as exc:
            raise NetfilterError(str(exc)) from None
        for t in parsed:
            table = new.setdefault(t.name, {c: [] for c in BUILTIN_CHAINS.get(t.name, ())})
            if not noflush:
                for c in list(table):
                    if c in BUILTIN_CHAINS.get(t.name, ()):
                        table[c] = []
                    else:
                        del table[c]
            for e in t.entries:
                self._apply(table, e)
            self._check(t.name, table)
        self.tables = new
        self.restores.append(text)

    @staticmethod
    def _apply(table: dict[str, list[str]], e: restore.Entry) -> None:
        where = f"line {e.lineno}"
        if e.op == ":":
            table[e.chain] = []  # declaring a chain flushes it (also with --noflush)
        elif e.op in ("-A", "-I") and e.chain not in table:
            raise NetfilterError(f"{where}: chain {e.chain!r} does not exist")
        elif e.op == "-A":
            table[e.chain].append(e.rest)
        elif e.op == "-I":
            pos, _, spec = e.rest.partition(" ")
            if pos.isdigit():
                table[e.chain].insert(int(pos) - 1, spec)
            else:
                table[e.chain].insert(0, e.rest)
        elif e.op == "-D":
            if e.rest not in table.get(e.chain, []):
                raise NetfilterError(f"{where}: no such rule in {e.chain!r}: {e.rest!r}")
            table[e.chain].remove(e.rest)
        elif e.op == "-X":
            if e.chain not in table:
                raise NetfilterError(f"{where}: cannot delete missing chain {e.chain!r}")
            del table[e.chain]
        elif e.op == "-F":
            table[e.chain] = []
        else:
            raise NetfilterError(f"{where}: cannot parse {e.line!r}")

    @staticmethod
    def _check(tname: str, table: dict[str, list[str]]) -> None:
        for chain, rules in table.items():
            for rule in rules:
                m = re.search(r"(?:^|\s)-[jg] (\S+)", rule)
                if m and m.group(1) not in TERMINAL_TARGETS and m.group(1) not in table:
                    raise NetfilterError(f"rule {rule!r} in {tname}/{chain} jumps to a non-existent chain")

    def save(self, tname: str) -> str:
        table = self.tables.get(tname, {})
        lines = [f"*{tname}"]
        lines += [f":{c} {'ACCEPT' if c in BUILTIN_CHAINS.get(tname, ()) else '-'} [0:0]" for c in table]
        for c, rules in table.items():
            lines += [f"-A {c} {r}".rstrip() for r in rules]
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"


@dataclass
class FakeNftTable:
    chains: dict[str, list[str]] = field(default_factory=dict)
    sets: dict[str, set[str]] = field(default_factory=dict)  # sets and maps: keys only


_REF = re.compile(r"(?:goto|jump) ([^\s,}]+)")
_SETREF = re.compile(r"@([^\s,}]+)")


ENOENT = "No such file or directory"
EBUSY = "Device or resource busy"


@dataclass
class FakeNft:
    """Table `ip kube-proxy` in memory; a script applies atomically or not at all."""
    tables: dict[str, FakeNftTable] = field(default_factory=dict)
    scripts: list[str] = field(default_factory=list)
    # kernels before 6.2 drop a deleted verdict-map element's reference to its chain only a short
    # while after the commit (upstream's reason for deleting stale chains a second later)
    release_delay: float = 0.0
    clock: Callable[[], float] = time.monotonic
    _held: dict[str, float] = field(default_factory=dict)  # chain -> until when a deleted element holds it

    def apply(self, script: str) -> None:
        import copy
        tables = copy.deepcopy(self.tables)
        held = dict(self._held)
        for lineno, line in enumerate(script.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                self._apply_line(tables, line, held)
            except (KeyError, IndexError) as exc:
                raise NetfilterError(f"line {lineno}: {line!r}: {ENOENT} ({exc})") from None
            except NetfilterError as exc:
                raise NetfilterError(f"line {lineno}: {line!r}: {exc}") from None
        for name, t in tables.items():
            for chain, rules in t.chains.items():
                for rule in rules:
                    for target in _REF.findall(rule):
                        if target not in t.chains:
                            raise NetfilterError(f"{name}/{chain}: rule {rule!r} jumps to a non-existent chain")
                    for s in _SETREF.findall(rule):
                        if s not in t.sets:
                            raise NetfilterError(f"{name}/{chain}: rule {rule!r} uses a non-existent set {s}")
        self.tables = tables
        self._held = held
        self.scripts.append(script)

    def _release_later(self, held: dict[str, float], entries: set[str]) -> None:
        if self.release_delay <= 0:
            return
        until = self.clock() + self.release_delay
        for entry in entries:
            for chain in _REF.findall(entry.partition(" -> ")[2]):
                held[chain] = max(held.get(chain, 0.0), until)

    def _apply_line(self, tables: dict[str, FakeNftTable], line: str, held: dict[str, float]) -> None:
        words = line.split()
        verb, kind = words[0], words[1]
        if kind == "table":
            tname = f"{words[2]} {words[3]}"
            if verb == "add":
                tables.setdefault(tname, FakeNftTable())
            elif verb == "delete":
                if tname not in tables:
                    raise KeyError("no such table")
                del tables[tname]
            elif verb == "flush":
                t = tables[tname]
                for c in t.chains:
                    t.chains[c] = []
            return
        tname = f"{words[2]} {words[3]}"
        t = tables[tname]
        name = words[4]
        if kind == "chain":
            if verb == "add":
                t.chains.setdefault(name, [])
            elif verb == "flush":
                if name not in t.chains:
                    raise NetfilterError(f"flush chain {name}: {ENOENT}")
                t.chains[name] = []
            elif verb == "delete":
                if name not in t.chains:
                    raise NetfilterError(f"delete chain {name}: {ENOENT}")
                for other, rules in t.chains.items():
                    if other != name and any(name in _REF.findall(r) for r in rules):
                        raise NetfilterError(f"delete chain {name}: {EBUSY} (in use by {other})")
                for s in t.sets.values():
                    if any(k.endswith(f"goto {name}") for k in s):
                        raise NetfilterError(f"delete chain {name}: {EBUSY} (in use by a map element)")
                if held.get(name, 0.0) > self.clock():
                    raise NetfilterError(f"delete chain {name}: {EBUSY} (a deleted map element still holds it)")
                del t.chains[name]
                held.pop(name, None)
        elif kind in ("set", "map"):
            if verb == "add":
                t.sets.setdefault(name, set())
            elif verb == "flush":
                if name not in t.sets:
                    raise NetfilterError(f"flush {kind} {name}: {ENOENT}")
                self._release_later(held, t.sets[name])
                t.sets[name] = set()
            elif verb == "delete":
                if name not in t.sets:
                    raise NetfilterError(f"delete {kind} {name}: {ENOENT}")
                for chain, rules in t.chains.items():
                    if any(name in _SETREF.findall(r) for r in rules):
                        raise NetfilterError(f"delete {kind} {name}: {EBUSY} (in use by {chain})")
                del t.sets[name]
        elif kind == "rule":
            if verb != "add":
                raise NetfilterError(f"unsupported: {line}")
            t.chains[name].append(" ".join(words[5:]))
        elif kind == "element":
            s = t.sets[name]
            # one element or a list (`{ a : goto x , b : drop }`); keys, values and comments hold no commas
            for body in line[line.index("{") + 1: line.rindex("}")].split(","):
                body = body.strip()
                key = body.split(" comment ")[0].split(" : ")[0].strip()
                target = body.split(" : ")[1].strip() if " : " in body else ""
                entry = f"{key} -> {target}" if target else key
                if verb == "add":
                    for target_chain in _REF.findall(target):
                        if target_chain not in t.chains:
                            raise NetfilterError(f"element {body!r} jumps to a non-existent chain")
                    if any(e.split(" -> ")[0] == key for e in s):
                        raise NetfilterError(f"element {key!r} exists in {name}")
                    s.add(entry)
                elif verb == "delete":
                    matches = [e for e in s if e.split(" -> ")[0] == key]
                    if not matches:
                        raise NetfilterError(f"element {key!r} not in {name}: {ENOENT}")
                    self._release_later(held, {matches[0]})
                    s.discard(matches[0])


@dataclass
class FakeNetfilter:
    ipt: FakeIptables = field(default_factory=FakeIptables)
    nf: FakeNft = field(default_factory=FakeNft)
    fail_next: int = 0  # make the next N applies fail (to test retries)
    commands: list[str] = field(default_factory=list)

    def _maybe_fail(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise NetfilterError("injected failure")

    def iptables_restore(self, text: str, *, noflush: bool = True) -> None:
        self._maybe_fail()
        self.ipt.restore(text, noflush)

    def iptables_restore_lines(self, lines: Iterable[str], *, noflush: bool = True) -> None:
        self.iptables_restore("\n".join(lines) + "\n", noflush=noflush)

    def iptables_save(self, table: str) -> str:
        if not table:  # every table, as `iptables-save` prints them
            return "".join(self.ipt.save(t) for t in self.ipt.tables)
        return self.ipt.save(table)

    def iptables(self, *args: str) -> bool:
        self.commands.append(shlex.join(args))
        args_l = list(args)
        if args_l[:1] == ["-t"]:
            tname, args_l = args_l[1], args_l[2:]
        else:
            tname = "filter"
        table = self.ipt.tables.setdefault(tname, {})
        # rules are kept as iptables-save prints them: arguments with spaces in double quotes
        op, chain = args_l[0], args_l[1] if len(args_l) > 1 else ""
        rest = " ".join(quote(a) for a in args_l[2:])
        if op == "-N":
            if chain in table:
                return False
            table[chain] = []
            return True
        if op == "-X":
            return table.pop(chain, None) is not None
        if op == "-F":
            if chain in table:
                table[chain] = []
            return chain in table
        if op == "-C":
            return rest in table.get(chain, [])
        if op == "-L":  # listing a chain: only whether it exists matters here
            return chain in table
        if op == "-I":
            table.setdefault(chain, []).insert(0, rest)
            return True
        if op == "-D":
            if rest in table.get(chain, []):
                table[chain].remove(rest)
                return True
            return False
        return False

    def nft(self, script: str) -> None:
        self._maybe_fail()
        self.nf.apply(script)

    def nft_list(self, *what: str) -> str:
        t = self.nf.tables.get("ip kube-proxy")
        if t is None:
            raise NetfilterError("No such file or directory")
        lines = ["table ip kube-proxy {"]
        lines += [f"\tset {s} {{\n\t}}" for s in t.sets]
        lines += [f"\tchain {c} {{\n\t}}" for c in t.chains]
        lines.append("}")
        return "\n".join(lines) + "\n"
