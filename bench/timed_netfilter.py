"""A RealNetfilter that adds up the time spent in the kernel tools (iptables-save,
iptables-restore, nft): the benches report apply time apart from render time with it."""

from __future__ import annotations

import time

from knet.proxy.netfilter import RealNetfilter


class TimedNetfilter(RealNetfilter):
    seconds: float = 0.0

    def _timed(self, fn, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            self.seconds += time.perf_counter() - t

    def iptables_restore(self, text: str, *, noflush: bool = True) -> None:
        self._timed(super().iptables_restore, text, noflush=noflush)

    def iptables_restore_lines(self, lines, *, noflush: bool = True) -> None:  # noqa: ANN001
        # streamed: the time includes the rendering the tool waits for
        self._timed(super().iptables_restore_lines, lines, noflush=noflush)

    def iptables_save(self, table: str) -> str:
        return self._timed(super().iptables_save, table)

    def nft(self, script: str) -> None:
        self._timed(super().nft, script)
