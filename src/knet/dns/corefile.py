"""Corefile -> `DnsConfig`: the server blocks and the plugin options knet honours.

The grammar is Caddy's, as CoreDNS reads it: server blocks `ZONE[:PORT] ... { directives }`,
a directive is a line of tokens with an optional `{ ... }` block, `#` starts a comment, quotes
group tokens, `{$ENV}` expands. Plugins knet does not implement are kept in `ignored` so the
server can say so at start. Pure: text in, dataclasses out.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

DEFAULT_PORT = 53
IMPLEMENTED = ("errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache", "loop", "reload",
               "loadbalance")


class CorefileError(ValueError):
    pass


@dataclass(frozen=True)
class Directive:
    name: str
    args: tuple[str, ...]
    block: tuple[Directive, ...] = ()
    line: int = 0


@dataclass
class KubernetesConfig:
    zones: list[str]
    pods: str = "disabled"
    fallthrough: tuple[str, ...] | None = None  # None: off; (): all zones
    ttl: int = 5
    namespaces: frozenset[str] = frozenset()
    endpoint_pod_names: bool = False
    kubeconfig: str | None = None
    kubeconfig_context: str | None = None
    ignored: list[str] = field(default_factory=list)  # options parsed but not implemented


@dataclass
class ForwardConfig:
    from_zone: str
    to: list[str]  # "IP[:PORT]" or a resolv.conf path, as written
    max_concurrent: int = 1000
    expire_timeout: float = 2.0  # how long a query waits for the upstream before SERVFAIL


@dataclass
class CacheConfig:
    ttl: int = 3600  # the cache plugin's cap for positive answers
    denial_ttl: int = 1800
    servfail_ttl: int = 5


@dataclass
class ServerBlock:
    zones: list[str]
    port: int
    kubernetes: KubernetesConfig | None = None
    forward: ForwardConfig | None = None
    cache: CacheConfig | None = None
    health: str | None = None  # listen address, e.g. ":8080"
    ready: str | None = None
    prometheus: str | None = None
    reload: tuple[float, float] | None = None  # (interval, jitter) seconds
    loadbalance: bool = False
    errors: bool = False
    loop: bool = False
    lameduck: float = 0.0  # health's lameduck: keep serving this long after SIGTERM
    ignored: list[str] = field(default_factory=list)


@dataclass
class DnsConfig:
    blocks: list[ServerBlock]

    @property
    def reload(self) -> tuple[float, float] | None:
        return next((b.reload for b in self.blocks if b.reload), None)

    def first(self, attr: str) -> str | None:
        return next((getattr(b, attr) for b in self.blocks if getattr(b, attr)), None)

    def ignored(self) -> list[str]:
        out = []
        for b in self.blocks:
            out += [f"{b.zones[0]}:{b.port} {what}" for what in b.ignored]
            if b.kubernetes:
                out += [f"{b.zones[0]}:{b.port} kubernetes {what}" for what in b.kubernetes.ignored]
        return out


# ---------------------------------------------------------------- tokens and blocks
_ENV = re.compile(r"\{\$([A-Za-z_][A-Za-z0-9_]*)\}")


def _tokens(text: str) -> list[tuple[str, int]]:
    text = _ENV.sub(lambda m: os.environ.get(m.group(1), ""), text)
    out: list[tuple[str, int]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        i, n = 0, len(line)
        while i < n:
            c = line[i]
            if c.isspace():
                i += 1
            elif c == "#":
                break
            elif c == '"':
                j = i + 1
                buf = []
                while j < n and line[j] != '"':
                    if line[j] == "\\" and j + 1 < n:
                        j += 1
                    buf.append(line[j])
                    j += 1
                if j >= n:
                    raise CorefileError(f"line {lineno}: unterminated quote")
                out.append(("".join(buf), lineno))
                i = j + 1
            elif c in "{}":
                out.append((c, lineno))
                i += 1
            else:
                j = i
                while j < n and not line[j].isspace() and line[j] not in "{}#":
                    j += 1
                out.append((line[i:j], lineno))
                i = j
    return out


def _directives(toks: list[tuple[str, int]], pos: int, closing: bool) -> tuple[list[Directive], int]:
    items: list[Directive] = []
    while pos < len(toks):
        tok, line = toks[pos]
        if tok == "}":
            if not closing:
                raise CorefileError(f"line {line}: unexpected '}}'")
            return items, pos + 1
        if tok == "{":
            raise CorefileError(f"line {line}: unexpected '{{'")
        args = []
        pos += 1
        while pos < len(toks) and toks[pos][1] == line and toks[pos][0] not in "{}":
            args.append(toks[pos][0])
            pos += 1
        block: list[Directive] = []
        if pos < len(toks) and toks[pos][0] == "{" and toks[pos][1] == line:
            block, pos = _directives(toks, pos + 1, closing=True)
        items.append(Directive(tok, tuple(args), tuple(block), line))
    if closing:
        raise CorefileError("missing '}'")
    return items, pos


def _server_keys(toks: list[tuple[str, int]], pos: int) -> tuple[list[str], int]:
    keys = []
    while pos < len(toks) and toks[pos][0] != "{":
        keys.extend(k for k in toks[pos][0].split(",") if k)
        pos += 1
    if pos >= len(toks):
        raise CorefileError("server block without '{'")
    return keys, pos + 1


# ---------------------------------------------------------------- plugins
def _zone(text: str) -> str:
    text = text.lower()
    for scheme in ("dns://", "udp://", "tcp://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    return text if text.endswith(".") else text + "."


def _split_key(key: str) -> tuple[str, int]:
    key = key.lower()
    for scheme in ("dns://", "udp://", "tcp://"):
        if key.startswith(scheme):
            key = key[len(scheme):]
    if ":" in key:
        host, port = key.rsplit(":", 1)
        return _zone(host or "."), int(port)
    return _zone(key), DEFAULT_PORT


def _duration(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text)
    if not m:
        raise CorefileError(f"bad duration {text!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    return float(m.group(1)) * scale


def _kubernetes(d: Directive, block_zones: list[str]) -> KubernetesConfig:
    cfg = KubernetesConfig(zones=[_zone(z) for z in d.args] or list(block_zones))
    for opt in d.block:
        if opt.name == "pods":
            if not opt.args or opt.args[0] not in ("disabled", "verified", "insecure"):
                raise CorefileError(f"line {opt.line}: pods takes disabled|verified|insecure")
            cfg.pods = opt.args[0]
        elif opt.name == "fallthrough":
            cfg.fallthrough = tuple(_zone(z) for z in opt.args)
        elif opt.name == "ttl":
            if len(opt.args) != 1 or not opt.args[0].isdigit() or not 0 <= int(opt.args[0]) <= 3600:
                raise CorefileError(f"line {opt.line}: ttl takes one number 0..3600")
            cfg.ttl = int(opt.args[0])
        elif opt.name == "namespaces":
            cfg.namespaces = frozenset(opt.args)
        elif opt.name == "endpoint_pod_names":
            cfg.endpoint_pod_names = True
        elif opt.name == "kubeconfig":
            cfg.kubeconfig = opt.args[0] if opt.args else None
            cfg.kubeconfig_context = opt.args[1] if len(opt.args) > 1 else None
        else:
            cfg.ignored.append(opt.name)
    return cfg


def _forward(d: Directive, ignored: list[str]) -> ForwardConfig:
    if len(d.args) < 2:
        raise CorefileError(f"line {d.line}: forward FROM TO...")
    cfg = ForwardConfig(from_zone=_zone(d.args[0]), to=list(d.args[1:]))
    for opt in d.block:
        if opt.name == "max_concurrent" and opt.args:
            cfg.max_concurrent = int(opt.args[0])
        else:  # policy, health_check, force_tcp, expire, tls...: one-shot UDP, random order
            ignored.append(f"forward {opt.name}")
    return cfg


def _cache(d: Directive, ignored: list[str]) -> CacheConfig:
    cfg = CacheConfig()
    if d.args:
        cfg.ttl = int(d.args[0])
        cfg.denial_ttl = min(cfg.denial_ttl, cfg.ttl)
    for opt in d.block:
        if opt.name == "success" and len(opt.args) >= 2:
            cfg.ttl = int(opt.args[1])
        elif opt.name == "denial" and len(opt.args) >= 2:
            cfg.denial_ttl = int(opt.args[1])
        elif opt.name == "servfail" and opt.args:
            cfg.servfail_ttl = int(_duration(opt.args[0]))
        else:  # prefetch, serve_stale, keepttl, disable...
            ignored.append(f"cache {opt.name}")
    return cfg


def _addr(d: Directive, default: str) -> str:
    return d.args[0] if d.args else default


def _block(keys: list[str], directives: list[Directive]) -> list[ServerBlock]:
    split = [_split_key(k) for k in keys]
    ports = {p for _, p in split}
    blocks = []
    for port in sorted(ports):
        zones = [z for z, p in split if p == port]
        blocks.append(_plugins(ServerBlock(zones=zones, port=port), directives))
    return blocks


def _plugins(b: ServerBlock, directives: list[Directive]) -> ServerBlock:
    for d in directives:
        if d.name == "kubernetes":
            b.kubernetes = _kubernetes(d, b.zones)
        elif d.name == "forward":
            b.forward = _forward(d, b.ignored)
        elif d.name == "cache":
            b.cache = _cache(d, b.ignored)
        elif d.name == "health":
            b.health = _addr(d, ":8080")
            for opt in d.block:
                if opt.name == "lameduck" and opt.args:
                    b.lameduck = _duration(opt.args[0])
                else:
                    b.ignored.append(f"health {opt.name}")
        elif d.name == "ready":
            b.ready = _addr(d, ":8181")
        elif d.name == "prometheus":
            b.prometheus = _addr(d, "localhost:9153")
        elif d.name == "reload":
            interval = _duration(d.args[0]) if d.args else 30.0
            jitter = _duration(d.args[1]) if len(d.args) > 1 else interval / 2
            if interval < 2:
                raise CorefileError(f"line {d.line}: reload interval must be at least 2s")
            b.reload = (interval, jitter)
        elif d.name == "loadbalance":
            b.loadbalance = True
        elif d.name == "errors":
            b.errors = True
        elif d.name == "loop":
            b.loop = True
        else:
            b.ignored.append(d.name)
    return b


def parse_corefile(text: str) -> DnsConfig:
    toks = _tokens(text)
    blocks: list[ServerBlock] = []
    pos = 0
    while pos < len(toks):
        keys, pos = _server_keys(toks, pos)
        directives, pos = _directives(toks, pos, closing=True)
        blocks.extend(_block(keys, directives))
    if not blocks:
        raise CorefileError("no server blocks")
    return DnsConfig(blocks)


def resolv_conf_nameservers(text: str) -> list[str]:
    """The `nameserver` addresses of a resolv.conf, in order."""
    out = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            out.append(parts[1])
    return out


def upstream_addresses(targets: list[str], read_file=lambda p: open(p).read()) -> list[tuple[str, int]]:
    """forward's TO list -> (ip, port) pairs; a path is read as a resolv.conf."""
    out: list[tuple[str, int]] = []
    for target in targets:
        if target.startswith("/"):
            try:
                out += [(ns, 53) for ns in resolv_conf_nameservers(read_file(target))]
            except OSError:
                continue
            continue
        target = target.removeprefix("dns://")
        if target.startswith("["):
            host, _, port = target[1:].partition("]:")
            out.append((host, int(port or 53)))
        elif target.count(":") == 1:
            host, port = target.split(":")
            out.append((host, int(port)))
        else:
            out.append((target, 53))
    return out


KUBEADM_COREFILE = """\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""
