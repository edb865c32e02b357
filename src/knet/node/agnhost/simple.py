"""agnhost's small subcommands: `pause` (opens no port; SIGINT exits 1, SIGTERM exits 2, after
--delay-shutdown seconds), `dns-suffix`, `dns-server-list` and `etc-hosts` (what the pod's
/etc/resolv.conf and /etc/hosts say, printed as upstream's test/images/agnhost/{pause,dns})."""

from __future__ import annotations

import signal
import sys
import time

from knet.node.agnhost import flags as fl

NO_FLAGS: list[fl.Flag] = []
PAUSE_FLAGS = [fl.Flag("delay-shutdown", fl.INT, 0, "Number of seconds to delay shutdown when receiving SIGTERM/SIGINT.")]


def pause(argv: list[str]) -> int:
    values, _ = fl.parse(PAUSE_FLAGS, argv)
    got: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        if not got:
            got.append(1 if signum == signal.SIGINT else 2)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print("Paused", flush=True)
    while not got:
        signal.pause()
    if values["delay-shutdown"] > 0:
        print(f"Sleeping {values['delay-shutdown']} seconds before exit ...", end="", flush=True)
        time.sleep(values["delay-shutdown"])
    print(f"exiting {got[0]}", flush=True)
    return got[0]


def _first_line_values(text: str, keyword: str) -> list[str] | None:
    """The words after the first line starting with keyword, split on single spaces as upstream."""
    for line in text.split("\n"):
        if line.startswith(keyword):
            return line.split(" ")[1:]
    return None


def dns_suffix(resolv_conf: str) -> str:
    found = _first_line_values(resolv_conf, "search")
    if found is None:
        raise RuntimeError("Could not find DNS search list!")
    return ",".join(found)


def dns_server_list(resolv_conf: str) -> str:
    found = _first_line_values(resolv_conf, "nameserver")
    if found is None:
        raise RuntimeError("Could not find DNS search list!")
    return ",".join(found)


def _print_or_panic(produce: object) -> int:
    try:
        print(produce(), flush=True)  # type: ignore[operator]
    except (RuntimeError, OSError) as exc:
        sys.stderr.write(f"panic: {exc}\n\ngoroutine 1 [running]:\n")
        return 2
    return 0


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def dns_suffix_cmd(argv: list[str]) -> int:
    return _print_or_panic(lambda: dns_suffix(_read("/etc/resolv.conf")))


def dns_server_list_cmd(argv: list[str]) -> int:
    return _print_or_panic(lambda: dns_server_list(_read("/etc/resolv.conf")))


def etc_hosts_cmd(argv: list[str]) -> int:
    return _print_or_panic(lambda: _read("/etc/hosts"))
