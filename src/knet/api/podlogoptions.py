"""PodLogOptions (the pods/log query) decoded and validated as kube-apiserver and the kubelet do.

Decoding follows apimachinery's query conversion: a bool is false only for "0" or "false" (any
case), anything else given is true; an int64 must parse (strconv.ParseInt's error otherwise);
sinceTime is RFC3339 (metav1.Time.UnmarshalQueryParameter). A value that does not decode is a
400; ValidatePodLogOptions' findings are a 422 (pkg/apis/core/validation/validation.go).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from knet.api.errors import FieldError, forbidden, invalid
from knet.node import crilog

INT64_MAX = (1 << 63) - 1
RFC3339 = "2006-01-02T15:04:05Z07:00"


@dataclass
class PodLogOptions:
    container: str | None = None
    follow: bool = False
    previous: bool = False
    since_seconds: int | None = None
    since_time: crilog.Stamp | None = None
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None

    def log_options(self, now: crilog.Stamp | None = None) -> crilog.LogOptions:
        """The kubelet's NewLogOptions of these."""
        return crilog.LogOptions.from_pod_log_options(
            tail_lines=self.tail_lines, limit_bytes=self.limit_bytes, since_seconds=self.since_seconds,
            since_time=self.since_time, follow=self.follow, timestamps=self.timestamps, now=now)


def _bool(value: str | None) -> bool:
    return value is not None and not (value == "0" or value.lower() == "false")


def _int64(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    text = value[1:] if value[:1] in "+-" else value
    if not text.isascii() or not text.isdigit():
        raise ValueError(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    number = int(value)
    if not -INT64_MAX - 1 <= number <= INT64_MAX:
        raise ValueError(f'strconv.ParseInt: parsing "{value}": value out of range')
    return number


def _time(value: str | None) -> crilog.Stamp | None:
    if value is None or value == "" or value == "null":
        return None
    try:
        return crilog.parse_time(value)
    except ValueError:
        raise ValueError(f'parsing time "{value}" as "{RFC3339}": cannot parse "{value}" as "2006"') from None


def from_query(query: Mapping[str, str]) -> PodLogOptions:
    """ValueError (the message of a 400) when a parameter does not decode."""
    return PodLogOptions(
        container=query.get("container") or None,
        follow=_bool(query.get("follow")),
        previous=_bool(query.get("previous")),
        since_seconds=_int64(query.get("sinceSeconds")),
        since_time=_time(query.get("sinceTime")),
        timestamps=_bool(query.get("timestamps")),
        tail_lines=_int64(query.get("tailLines")),
        limit_bytes=_int64(query.get("limitBytes")),
    )


def validate(opts: PodLogOptions) -> list[FieldError]:
    """ValidatePodLogOptions."""
    errs: list[FieldError] = []
    if opts.tail_lines is not None and opts.tail_lines < 0:
        errs.append(invalid("tailLines", opts.tail_lines, "must be greater than or equal to 0"))
    if opts.limit_bytes is not None and opts.limit_bytes < 1:
        errs.append(invalid("limitBytes", opts.limit_bytes, "must be greater than 0"))
    if opts.since_seconds is not None and opts.since_time is not None:
        errs.append(forbidden("", "at most one of `sinceTime` or `sinceSeconds` may be specified"))
    elif opts.since_seconds is not None and opts.since_seconds < 1:
        errs.append(invalid("sinceSeconds", opts.since_seconds, "must be greater than 0"))
    return errs
