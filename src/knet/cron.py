"""Cron schedules as CronJobs use them: github.com/robfig/cron/v3's ParseStandard (five fields,
`@hourly`-style descriptors, `@every <duration>`, a `TZ=`/`CRON_TZ=` prefix) and its
SpecSchedule.Next. Pure: parse a spec, ask for the first activation after a time.

Error texts are the library's, since kube-apiserver puts them into 422 field errors
(`spec.schedule: Invalid value: "x": expected exactly 5 fields, found 1: [x]`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

STAR = 1 << 63  # robfig's starBit: the field was `*` or `?` (matters for day-of-month/-week)


class CronError(ValueError):
    """A spec the parser refuses; str() is robfig/cron's message."""


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: dict[str, int] | None = None


SECONDS = _Bounds(0, 59)
MINUTES = _Bounds(0, 59)
HOURS = _Bounds(0, 23)
DOM = _Bounds(1, 31)
MONTHS = _Bounds(1, 12, {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))})
DOW = _Bounds(0, 6, {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))})


def _bits(low: int, high: int, step: int) -> int:
    out = 0
    for i in range(low, high + 1, step):
        out |= 1 << i
    return out


def _all(b: _Bounds) -> int:
    return _bits(b.low, b.high, 1) | STAR


def _atoi(text: str) -> int:
    """Go's strconv.Atoi, with its error wording."""
    if not re.fullmatch(r"[+-]?\d+", text):
        raise CronError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    num = int(text)
    if num < 0:
        raise CronError(f"negative number ({num}) not allowed: {text}")
    return num


def _int_or_name(text: str, b: _Bounds) -> int:
    if b.names and text.lower() in b.names:
        return b.names[text.lower()]
    return _atoi(text)


def _range(expr: str, b: _Bounds) -> int:
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    single = len(low_high) == 1
    extra = 0
    if low_high[0] in ("*", "?"):
        start, end, extra = b.low, b.high, STAR
    else:
        start = _int_or_name(low_high[0], b)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], b)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _atoi(range_and_step[1])
        if single:  # "N/step" means "N-max/step"
            end = b.high
        if step > 1:
            extra = 0
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < b.low:
        raise CronError(f"beginning of range ({start}) below minimum ({b.low}): {expr}")
    if end > b.high:
        raise CronError(f"end of range ({end}) above maximum ({b.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return _bits(start, end, step) | extra


def _field(text: str, b: _Bounds) -> int:
    out = 0
    for expr in (p for p in text.split(",") if p):
        out |= _range(expr, b)
    return out


_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def _go_duration(text: str) -> timedelta:
    """time.ParseDuration for the positive durations `@every` takes."""
    rest, total = text, 0.0
    if not rest:
        raise CronError(f'time: invalid duration "{text}"')
    while rest:
        m = _GO_DURATION.match(rest)
        if not m:
            raise CronError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        rest = rest[m.end():]
    return timedelta(seconds=total)


def load_location(name: str) -> tzinfo:
    """time.LoadLocation: "" and "UTC" are UTC; else the zoneinfo database."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        raise CronError("Local is not a time zone of the zoneinfo database")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {name}") from None


@dataclass(frozen=True)
class Schedule:
    """A parsed spec: bit sets per field (SpecSchedule), or a fixed period (`@every`)."""
    second: int = 0
    minute: int = 0
    hour: int = 0
    dom: int = 0
    month: int = 0
    dow: int = 0
    location: tzinfo = UTC
    every: timedelta | None = None

    def next(self, t: datetime) -> datetime | None:
        """The first activation strictly after `t` (an aware datetime), in t's zone; None if
        none within five years (robfig's answer to "30 February")."""
        if self.every is not None:
            period = max(self.every, timedelta(seconds=1))
            period = timedelta(seconds=int(period.total_seconds()))  # rounded down to a second
            return t.replace(microsecond=0) + period
        orig = t.tzinfo
        loc = self.location
        t = t.astimezone(loc)
        t = _add(t.replace(microsecond=0), timedelta(seconds=1))
        added = False
        year_limit = t.year + 5
        while True:  # robfig's WRAP label
            if t.year > year_limit:
                return None
            wrapped = False
            while not (1 << t.month) & self.month:
                if not added:
                    added = True
                    t = _wall(loc, t.year, t.month, 1)
                y, m = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = _wall(loc, y, m, t.day, t.hour, t.minute, t.second)
                if t.month == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self._day_matches(t):
                if not added:
                    added = True
                    t = _wall(loc, t.year, t.month, t.day)
                t = _wall(loc, t.year, t.month, t.day + 1, t.hour, t.minute, t.second)
                if t.hour != 0:  # DST moved midnight
                    t = _add(t, timedelta(hours=24 - t.hour) if t.hour > 12 else timedelta(hours=-t.hour))
                if t.day == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << t.hour) & self.hour:
                if not added:
                    added = True
                    t = _wall(loc, t.year, t.month, t.day, t.hour)
                t = _add(t, timedelta(hours=1))
                if t.hour == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << t.minute) & self.minute:
                if not added:
                    added = True
                    t = t.replace(second=0)
                t = _add(t, timedelta(minutes=1))
                if t.minute == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << t.second) & self.second:
                added = True
                t = _add(t, timedelta(seconds=1))
                if t.second == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            return t.astimezone(orig)

    def _day_matches(self, t: datetime) -> bool:
        dom_match = bool((1 << t.day) & self.dom)
        dow_match = bool((1 << ((t.weekday() + 1) % 7)) & self.dow)  # Go: Sunday is 0
        if self.dom & STAR or self.dow & STAR:
            return dom_match and dow_match
        return dom_match or dow_match


def _add(t: datetime, delta: timedelta) -> datetime:
    """Go's Time.Add: absolute time, not wall-clock arithmetic (Python's aware + timedelta)."""
    tz = t.tzinfo
    return (t.astimezone(UTC) + delta).astimezone(tz)


def _wall(loc: tzinfo, year: int, month: int, day: int = 1, hour: int = 0, minute: int = 0,
          second: int = 0) -> datetime:
    """Go's time.Date: normalises overflowing days (Jan 32 -> Feb 1) and resolves the wall time in
    `loc` (a time in a DST gap moves forward)."""
    naive = datetime(year, month, 1, hour, minute, second) + timedelta(days=day - 1)
    return naive.replace(tzinfo=loc).astimezone(UTC).astimezone(loc)


_DESCRIPTORS = {
    "@yearly": dict(month=1 << 1, dom=1 << 1, dow_all=True),
    "@annually": dict(month=1 << 1, dom=1 << 1, dow_all=True),
    "@monthly": dict(month_all=True, dom=1 << 1, dow_all=True),
    "@weekly": dict(month_all=True, dom_all=True, dow=1 << 0),
    "@daily": dict(month_all=True, dom_all=True, dow_all=True),
    "@midnight": dict(month_all=True, dom_all=True, dow_all=True),
    "@hourly": dict(month_all=True, dom_all=True, dow_all=True, hour_all=True),
}


def parse_standard(spec: str) -> Schedule:
    """cron.ParseStandard."""
    if not spec:
        raise CronError("empty spec string")
    loc: tzinfo = UTC
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        eq = spec.find("=")
        name = spec[eq + 1:space if space >= 0 else len(spec)]
        try:
            loc = load_location(name)
        except CronError as exc:
            raise CronError(f"provided bad location {name}: {exc}") from None
        spec = spec[space:].strip() if space >= 0 else ""
        if not spec:
            raise CronError("empty spec string")
    if spec.startswith("@"):
        return _descriptor(spec, loc)
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    return Schedule(second=1 << 0, minute=_field(fields[0], MINUTES), hour=_field(fields[1], HOURS),
                    dom=_field(fields[2], DOM), month=_field(fields[3], MONTHS), dow=_field(fields[4], DOW),
                    location=loc)


def _descriptor(spec: str, loc: tzinfo) -> Schedule:
    d = _DESCRIPTORS.get(spec)
    if d is not None:
        return Schedule(second=1 << 0, minute=1 << 0,
                        hour=_all(HOURS) if d.get("hour_all") else 1 << 0,
                        dom=_all(DOM) if d.get("dom_all") else d["dom"],
                        month=_all(MONTHS) if d.get("month_all") else d["month"],
                        dow=_all(DOW) if d.get("dow_all") else d["dow"], location=loc)
    if spec.startswith("@every "):
        text = spec[len("@every "):]
        try:
            return Schedule(every=_go_duration(text), location=loc)
        except CronError as exc:
            raise CronError(f"failed to parse duration {spec}: {exc}") from None
    raise CronError(f"unrecognized descriptor: {spec}")
