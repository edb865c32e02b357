"""One long-lived libnftables context for `nft -f`-style transactions, without an `nft` process.

Why: before every transaction that adds a rule or a map element, nft builds a cache of every
chain in the ruleset. At 10,000 Services that is 110,000 chains, and the kernel's chain dump is
quadratic (each dump round walks the table's chain list from its head), so a one-Service change
spent ~0.5 s listing and ~0.2 s on everything else. A context that lives on keeps its cache
between transactions, but libnftables 1.0.6 (Debian 12) throws it away whenever the kernel's
ruleset generation differs from the cached one, which our own commit always makes it. A
netfilter-devel patch to libnftables (nft_cache_is_updated accepting the cached generation + 1)
treats the generation right after its own commit as still cached; this module does the same
from outside for 1.0.6: after a transaction of ours
succeeded, if the kernel's generation is exactly one past the cached one (no other writer
committed in between), it moves the cached generation forward. Any other writer (the network
policy controller, iptables-nft, an operator's `nft`) bumps the generation further and the next
transaction re-reads the kernel as before, so the cache is never trusted past a foreign change.

The bindings are ctypes on libnftables.so.1 (the `libnftables1` package that `nftables` depends
on), so no Python package is needed and the same code runs on pyenv's Python and Debian's. The
generation's place inside the context is found at run time (the one 32-bit word holding the
generation the context just fetched) and checked before every write; if it cannot be found the
context still works, it just re-reads the kernel each time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import struct
import threading
from collections.abc import Callable

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETGEN = 16
NFTA_GEN_ID = 1
CLONE_NEWNET = 0x40000000
_CTX_SCAN_BYTES = 1024  # struct nft_ctx: the cache (with its generation) sits in its first few hundred bytes


class LibNftError(Exception):
    pass


def netfilter_socket() -> socket.socket:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.bind((0, 0))
    return s


def ruleset_generation(s: socket.socket) -> int:
    """The kernel's nf_tables generation id in the socket's network namespace (NFT_MSG_GETGEN)."""
    # nlmsghdr (len, type, flags=NLM_F_REQUEST, seq, pid) + nfgenmsg (family, version, res_id)
    s.send(struct.pack("=LHHLL", 20, NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN, 1, 1, 0)
           + struct.pack("=BBH", 0, 0, 0))
    data = s.recv(65536)
    length, msg_type = struct.unpack_from("=LH", data)
    if msg_type == 2:  # NLMSG_ERROR
        raise LibNftError(f"NFT_MSG_GETGEN: error {struct.unpack_from('=i', data, 16)[0]}")
    off = 20
    while off + 4 <= length:
        alen, atype = struct.unpack_from("=HH", data, off)
        if atype & 0x7FFF == NFTA_GEN_ID:
            return struct.unpack_from("!L", data, off + 4)[0]
        off += (alen + 3) & ~3
    raise LibNftError("NFT_MSG_GETGEN: no generation id in the answer")


def _load() -> ctypes.CDLL:
    name = ctypes.util.find_library("nftables") or "libnftables.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise LibNftError(f"cannot load libnftables: {exc}") from None
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    for fn in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p]
        getattr(lib, fn).restype = ctypes.c_int
    for fn in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p]
        getattr(lib, fn).restype = ctypes.c_char_p
    return lib


def in_netns(netns: str | None, fn: Callable[[], object]) -> object:
    """Run fn in a thread that entered /run/netns/NETNS (setns is per thread; sockets keep the
    namespace they were created in). netns=None: here, in this thread."""
    if netns is None:
        return fn()
    result: list[object] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {netns}")
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)

    t = threading.Thread(target=target, name=f"netns-{netns}")
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return result[0]


class NftContext:
    """A libnftables context bound to one network namespace (the caller's, or /run/netns/NAME).

    `run(script)` applies one atomic transaction (as `nft -f -`); failures raise LibNftError with
    nft's own message. Calls are serialised (the proxier syncs from worker threads)."""

    def __init__(self, netns: str | None = None) -> None:
        self._lib = _load()
        self.netns = netns
        self._lock = threading.Lock()
        # the context's netlink socket is opened by nft_ctx_new, in the namespace of that thread
        ctx, sock = in_netns(netns, lambda: (self._lib.nft_ctx_new(0), netfilter_socket()))  # type: ignore[misc]
        if not ctx:
            sock.close()
            raise LibNftError("nft_ctx_new failed")
        self._ctx: int = ctx
        self._gen_sock: socket.socket = sock
        self._lib.nft_ctx_buffer_output(self._ctx)
        self._lib.nft_ctx_buffer_error(self._ctx)
        self._genid_offset: int | None = None
        self._candidates: set[int] | None = None  # offsets that held the cached generation every time
        self._calibrations = 0
        self.carried = 0  # transactions that started from the cache kept since our previous one

    def close(self) -> None:
        with self._lock:
            if self._ctx:
                self._lib.nft_ctx_free(self._ctx)
                self._ctx = 0
                self._gen_sock.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def generation(self) -> int:
        return ruleset_generation(self._gen_sock)

    def _cached_generation(self) -> int | None:
        if self._genid_offset is None:
            return None
        return ctypes.c_uint32.from_address(self._ctx + self._genid_offset).value

    def _calibrate(self, fetched: int) -> None:
        """Find the word holding the generation the context cached for this transaction: the one
        word that held the fetched generation after each of three commits at different generations
        (nothing is ever written before that)."""
        raw = ctypes.string_at(self._ctx, _CTX_SCAN_BYTES)
        hits = {o for o in range(0, _CTX_SCAN_BYTES - 3, 4) if struct.unpack_from("=L", raw, o)[0] == fetched}
        self._candidates = hits if self._candidates is None else self._candidates & hits
        self._calibrations += 1
        if self._calibrations >= 3 and 1 <= len(self._candidates) <= 2:
            # struct nft_cache is {genid, table cache, seqnum, flags}: its netlink sequence number
            # can move in step with the generation (one cache read per transaction), and comes after it
            self._genid_offset = min(self._candidates)
        elif not self._candidates or self._calibrations >= 8:
            self._candidates = set()  # give up: every transaction re-reads the kernel, as plain nft

    def run(self, script: str) -> str:
        with self._lock:
            before = self.generation()
            cached = self._cached_generation()
            if cached is not None and cached == before:
                self.carried += 1
            rc = self._lib.nft_run_cmd_from_buffer(self._ctx, script.encode())
            err = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode(errors="replace")
            out = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode(errors="replace")
            if rc != 0:
                raise LibNftError(err.strip() or f"nft_run_cmd_from_buffer returned {rc}")
            after = self.generation()
            if after == before:  # nothing committed (a script of only listings, say)
                return out
            if self._genid_offset is None and self._candidates != set() and before == after - 1:
                # the context read generation `before` for this transaction and we committed the next
                self._calibrate(before)
            cached = self._cached_generation()
            # carry the cache over our own commit only: the kernel moved exactly one step past
            # the generation the cache was read at, and that step was this transaction
            if cached is not None and cached == before and after == before + 1:
                ctypes.c_uint32.from_address(self._ctx + self._genid_offset).value = after  # type: ignore[operator]
            return out
