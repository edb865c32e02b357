"""`agnhost SUBCOMMAND [flags]`: cobra's dispatch and error shapes, then the subcommand.

Run by path (`python -I -S .../knet/node/agnhost/main.py netexec --http-port 8080`), so that a
container's workload starts without site-packages and uses the kubelet's own knet sources.
"""

from __future__ import annotations

import os
import sys

if not __package__:  # run by path: make `knet` importable from this very source tree
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

from knet.node.agnhost import connect, netexec, porter, servehostname, simple  # noqa: E402
from knet.node.agnhost import flags as fl  # noqa: E402
from knet.node.agnhost.flags import FlagError  # noqa: E402

# name -> (flags, exact positional count or None for "at most 0", runner, short help)
COMMANDS = {
    "netexec": (netexec.FLAGS, None, netexec.run,
                "Creates HTTP(S), UDP, and (optionally) SCTP servers with various endpoints"),
    "serve-hostname": (servehostname.FLAGS, None, servehostname.run, "Serves the hostname"),
    "connect": (connect.FLAGS, 1, connect.run, "Attempts a TCP, UDP or SCTP connection and returns useful errors"),
    "porter": (porter.FLAGS, None, porter.run, "Serves requested data on ports specified in ENV variables"),
    "pause": (simple.PAUSE_FLAGS, None, simple.pause, "Pauses the execution"),
    "dns-suffix": ([], None, simple.dns_suffix_cmd, "Prints the host's DNS suffix list"),
    "dns-server-list": ([], None, simple.dns_server_list_cmd, "Prints the host's DNS Server list"),
    "etc-hosts": ([], None, simple.etc_hosts_cmd, "Prints the host's /etc/hosts file"),
}


def root_help() -> str:
    lines = ["Usage:\n  agnhost [command]\n", "Available Commands:"]
    lines += [f"  {name:<16} {short}" for name, (_, _, _, short) in sorted(COMMANDS.items())]
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
    flags, exact, _, _ = COMMANDS[name]
    try:
        values, args = fl.parse(flags, argv[1:])
    except FlagError as exc:
        return 1, f"Error: {exc}\n{fl.usage(name, flags)}"
    if values.get("help"):
        return 0, f"{COMMANDS[name][3]}\n\n{fl.usage(name, flags)}"
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
    return COMMANDS[argv[0]][2](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
