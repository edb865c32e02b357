"""Command lines as agnhost's cobra/pflag parse them. Pure.

pflag rules: `--name=value` and `--name value` for every non-boolean flag; a boolean is `--name`
(true) or `--name=false` and never takes the next word; `--` ends the flags; positional words may
stand between flags; a single dash is a shorthand (agnhost's subcommands define none).
Errors read as cobra prints them (`Error: unknown flag: --x`), exit status 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from knet.node.agnhost.golang import parse_duration

INT, BOOL, STRING, DURATION = "int", "bool", "string", "duration"


class FlagError(ValueError):
    """A command line cobra refuses; str() is the text after `Error: `."""


@dataclass(frozen=True)
class Flag:
    name: str
    kind: str
    default: Any
    usage: str = ""


def _go_int(text: str) -> int:
    """strconv.ParseInt(s, 0, 64): decimal, 0x.., 0o.., 0b.., a leading 0 for octal."""
    s = text.replace("_", "") if "_" in text and text[:2].lower() in ("0x", "0o", "0b") else text
    body = s.lstrip("+-")
    if len(body) > 1 and body[0] == "0" and body[1].isdigit():
        s = s.replace("0", "0o", 1)
    return int(s, 0)


def _convert(flag: Flag, value: str) -> Any:
    try:
        if flag.kind == INT:
            return _go_int(value)
        if flag.kind == BOOL:
            if value in ("1", "t", "T", "TRUE", "true", "True"):
                return True
            if value in ("0", "f", "F", "FALSE", "false", "False"):
                return False
            raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')
        if flag.kind == DURATION:
            return parse_duration(value)
    except ValueError as exc:
        reason = str(exc)
        if flag.kind == INT:
            reason = f'strconv.ParseInt: parsing "{value}": invalid syntax'
        raise FlagError(f'invalid argument "{value}" for "--{flag.name}" flag: {reason}') from None
    return value


def parse(flags: list[Flag], argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """(values by flag name with defaults filled in, positional words). `--help` -> ("help": True)."""
    by_name = {f.name: f for f in flags}
    values: dict[str, Any] = {f.name: f.default for f in flags}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            positional.extend(argv[i:])
            break
        if word.startswith("--") and len(word) > 2:
            name, eq, value = word[2:].partition("=")
            if name == "help" and not eq:
                values["help"] = True
                continue
            flag = by_name.get(name)
            if flag is None:
                raise FlagError(f"unknown flag: --{name}")
            if not eq:
                if flag.kind == BOOL:
                    value = "true"
                elif i < len(argv):
                    value = argv[i]
                    i += 1
                else:
                    raise FlagError(f"flag needs an argument: --{name}")
            values[name] = _convert(flag, value)
        elif word.startswith("-") and len(word) > 1:
            if word[1:2] == "h" and len(word) == 2:
                values["help"] = True
                continue
            raise FlagError(f"unknown shorthand flag: '{word[1]}' in {word}")
        else:
            positional.append(word)
    return values, positional


def usage(command: str, flags: list[Flag]) -> str:
    """cobra's `Usage:` block for a subcommand (what follows an `Error:` line)."""
    lines = [f"Usage:\n  agnhost {command} [flags]\n", "Flags:"]
    for f in flags:
        kind = "" if f.kind == BOOL else f" {f.kind}"
        default = f" (default {f.default!r})" if f.default not in (None, "", False, 0) else ""
        if f.kind == BOOL and f.default:
            default = " (default true)"
        lines.append(f"      --{f.name}{kind}   {f.usage}{default}")
    lines.append("  -h, --help   help for " + command)
    return "\n".join(lines) + "\n"
