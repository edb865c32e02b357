"""`agnhost SUBCOMMAND [flags]`: cobra's dispatch and error shapes, then the subcommand.

Run by path (`python -I -S .../knet/node/agnhost/main.py netexec --http-port 8080`), so that a
container's workload starts without site-packages and uses the kubelet's own knet sources.
"""

from __future__ import annotations

import os
import sys

if not __package__:  # run by path: make `knet` importable from this very source tree
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

import importlib  # noqa: E402

from knet.node.agnhost import flags as fl  # noqa: E402
from knet.node.agnhost.flags import FlagError  # noqa: E402

# name -> (module, its flags, its runner, exact positional count or None for "at most 0", short
# help); a subcommand's module is imported only when it runs (a container starts faster).
COMMANDS = {
    "netexec": ("netexec", "FLAGS", "run", None,
                "Creates HTTP(S), UDP, and (optionally) SCTP servers with various endpoints"),
    "serve-hostname": ("servehostname", "FLAGS", "run", None, "Serves the hostname"),
    "connect": ("connect", "FLAGS", "run", 1, "Attempts a TCP, UDP or SCTP connection and returns useful errors"),
    "porter": ("porter", "FLAGS", "run", None, "Serves requested data on ports specified in ENV variables"),
    "pause": ("simple", "PAUSE_FLAGS", "pause", None, "Pauses the execution"),
    "dns-suffix": ("simple", "NO_FLAGS", "dns_suffix_cmd", None, "Prints the host's DNS suffix list"),
    "dns-server-list": ("simple", "NO_FLAGS", "dns_server_list_cmd", None, "Prints the host's DNS Server list"),
    "etc-hosts": ("simple", "NO_FLAGS", "etc_hosts_cmd", None, "Prints the host's /etc/hosts file"),
    "liveness": ("liveness", "FLAGS", "run", None, "Starts a server that is alive for 10 seconds"),
    "test-webserver": ("testwebserver", "FLAGS", "run", None, "Starts a simple HTTP fileserver"),
}


def _load(name: str) -> tuple[list[fl.Flag], object]:
    module_name, flags_attr, run_attr, _, _ = COMMANDS[name]
    module = importlib.import_module(f"knet.node.agnhost.{module_name}")
    return getattr(module, flags_attr), getattr(module, run_attr)


def root_help() -> str:
    lines = ["Usage:\n  agnhost [command]\n", "Available Commands:"]
    lines += [f"  {name:<16} {entry[4]}" for name, entry in sorted(COMMANDS.items())]
    lines += ["", "Flags:", "  -h, --help   help for agnhost", "",
              'Use "agnhost [command] --help" for more information about a command.']
    return "\n".join(lines) + "\n"


def check(argv: list[str]) -> tuple[int, str] | None:
    """What cobra does before the subcommand runs: None to run it, else (exit status, output)."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        return 0, root_help()
    name = argv[0]
    if name not in COMMANDS:
        if name.startswith("-"):
            return 1, f"Error: unknown flag: {name}\nRun 'agnhost --help' for usage.\n"
        return 1, f'Error: unknown command "{name}" for "agnhost"\nRun \'agnhost --help\' for usage.\n'
    flags, _ = _load(name)
    exact = COMMANDS[name][3]
    try:
        values, args = fl.parse(flags, argv[1:])
    except FlagError as exc:
        return 1, f"Error: {exc}\n{fl.usage(name, flags)}"
    if values.get("help"):
        return 0, f"{COMMANDS[name][4]}\n\n{fl.usage(name, flags)}"
    if exact is not None and len(args) != exact:
        return 1, f"Error: accepts {exact} arg(s), received {len(args)}\n{fl.usage(name, flags)}"
    if exact is None and args:
        return 1, f"Error: accepts at most 0 arg(s), received {len(args)}\n{fl.usage(name, flags)}"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    refused = check(argv)
    if refused is not None:
        code, text = refused
        (sys.stderr if code else sys.stdout).write(text)
        return code
    _, run = _load(argv[0])
    return run(argv[1:])  # type: ignore[operator]


if __name__ == "__main__":
    sys.exit(main())
