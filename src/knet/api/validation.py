"""Shared validation: object names, labels, annotations, ports, IPs -- with apimachinery's
messages (k8s.io/apimachinery/pkg/util/validation)."""

from __future__ import annotations

import functools
import ipaddress
import re

from knet.api.errors import FieldError, invalid, required

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])*$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
               "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
               "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
QUALIFIED_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                 "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                 "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                   "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                   "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


def name_errors(name: str, rule: str) -> list[str]:
    """The detail messages for an invalid metadata.name under a naming rule."""
    if rule == "path":
        bad = [f"may not contain '{c}'" for c in ("/", "%") if c in name]
        if name in (".", ".."):
            bad.append(f"may not be '{name}'")
        return bad
    if rule == "label":
        msgs = []
        if len(name) > 63:
            msgs.append("must be no more than 63 characters")
        if not DNS1123_LABEL.match(name):
            msgs.append(LABEL_MSG)
        return msgs
    if rule == "dns1035":
        msgs = []
        if len(name) > 63:
            msgs.append("must be no more than 63 characters")
        if not DNS1035_LABEL.match(name):
            msgs.append(DNS1035_MSG)
        return msgs
    msgs = []
    if len(name) > 253:
        msgs.append("must be no more than 253 characters")
    if not DNS1123_SUBDOMAIN.match(name):
        msgs.append(SUBDOMAIN_MSG)
    return msgs


def qualified_name_errors(key: str) -> list[str]:
    return list(_qualified_name_errors(key))


@functools.lru_cache(maxsize=4096)
def _qualified_name_errors(key: str) -> tuple[str, ...]:
    # Memoised: every write checks its labels' and annotations' keys, nearly always the same few.
    msgs = []
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        msgs.append("prefix part must be non-empty")
    if prefix and not DNS1123_SUBDOMAIN.match(prefix):
        msgs.append("prefix part " + SUBDOMAIN_MSG)
    if not name:
        msgs.append("name part must be non-empty")
    elif len(name) > 63:
        msgs.append("name part must be no more than 63 characters")
    elif not QUALIFIED_NAME.match(name):
        msgs.append(QUALIFIED_MSG)
    return tuple(msgs)


def validate_labels(labels: dict | None, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for k, v in (labels or {}).items():
        for msg in qualified_name_errors(k):
            errs.append(invalid(path, k, msg))
        if not isinstance(v, str):
            errs.append(invalid(f"{path}[{k}]", v, "label values must be strings"))
            continue
        if len(v) > 63:
            errs.append(invalid(path, v, "must be no more than 63 characters"))
        if not LABEL_VALUE.match(v):
            errs.append(invalid(path, v, LABEL_VALUE_MSG))
    return errs


def validate_annotations(annotations: dict | None, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    total = 0
    for k, v in (annotations or {}).items():
        for msg in qualified_name_errors(k.lower()):
            errs.append(invalid(path, k, msg))
        total += len(k) + len(str(v))
    if total > 256 * 1024:
        errs.append(FieldError("TooLong", path, None, "may not be more than 262144 bytes"))
    return errs


def validate_port(value, path: str) -> list[FieldError]:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        return [invalid(path, value, "must be between 1 and 65535, inclusive")]
    return []


def validate_ip(value, path: str) -> list[FieldError]:
    try:
        ipaddress.ip_address(value)
    except (ValueError, TypeError):
        return [invalid(path, value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]
    return []


def require_str(obj: dict, key: str, path: str) -> list[FieldError]:
    v = obj.get(key)
    if v in (None, ""):
        return [required(path)]
    return []


def validate_config_keys(data: dict | None, path: str) -> list[FieldError]:
    errs = []
    for k in data or {}:
        if not CONFIG_KEY.match(k) or len(k) > 253:
            errs.append(invalid(f"{path}", k, "a valid config key must consist of alphanumeric characters, '-', '_' "
                                "or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
                                "validation is '[-._a-zA-Z0-9]+')"))
    return errs
