"""resourceVersion parameters as kube-apiserver judges them: parsed as etcd revisions
(strconv.ParseUint: 400 for anything else), ListOptions' resourceVersionMatch rules (422), and
a version newer than the store's answered 504 "Too large resource version" (the cacher's
TooLargeResourceVersionError) or, for an exact list of a version knet no longer has, 410."""

from __future__ import annotations

import re

from knet.api import errors
from knet.api.errors import ApiError, FieldError, forbidden, not_supported

_UINT = re.compile(r"[0-9]+")
_UINT64_MAX = (1 << 64) - 1


def parse(text: str | None) -> int:
    """A resourceVersion as an etcd revision; "" and "0" are 0 (any version)."""
    if not text or text == "0":
        return 0
    if _UINT.fullmatch(text) and int(text) <= _UINT64_MAX:
        return int(text)
    why = "value out of range" if _UINT.fullmatch(text) else "invalid syntax"
    raise errors.bad_request(f'invalid resource version: resourceVersion: Invalid value: "{text}": '
                             f'strconv.ParseUint: parsing "{text}": {why}')


def too_large(requested: int, current: int) -> ApiError:
    """storage.NewTooLargeResourceVersionError: 504, retry after a second."""
    return ApiError(504, "Timeout", f"Timeout: Too large resource version: {requested}, current: {current}",
                    {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                     "retryAfterSeconds": 1})


def list_too_old() -> ApiError:
    return ApiError(410, "Expired", "The resourceVersion for the provided list is too old.")


def check_list_options(query, watch: bool) -> None:
    """apimachinery's ValidateListOptions (422 Invalid ListOptions)."""
    match = query.get("resourceVersionMatch", "")
    rv = query.get("resourceVersion", "")
    cont = query.get("continue", "")
    initial = query.get("sendInitialEvents")
    errs: list[FieldError] = []
    if watch:
        if initial is not None and match != "NotOlderThan":
            errs.append(forbidden("resourceVersionMatch",
                                  "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
        if match:
            if initial is None:
                errs.append(forbidden("resourceVersionMatch",
                                      "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"))
            if match != "NotOlderThan":
                errs.append(not_supported("resourceVersionMatch", match, ["NotOlderThan"]))
            if cont:
                errs.append(forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"))
    else:
        if match:
            if not rv:
                errs.append(forbidden("resourceVersionMatch",
                                      "resourceVersionMatch is forbidden unless resourceVersion is provided"))
            if cont:
                errs.append(forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"))
            if match not in ("Exact", "NotOlderThan"):
                errs.append(not_supported("resourceVersionMatch", match, ["Exact", "NotOlderThan", ""]))
            if match == "Exact" and rv == "0":
                errs.append(forbidden("resourceVersionMatch",
                                      'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'))
        if initial is not None:
            errs.append(forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"))
    if errs:
        raise errors.invalid_object("ListOptions", "meta.k8s.io", "", errs)


def check_list(query, current: int) -> None:
    """A list's resourceVersion against the store's revision. knet serves lists at the current
    revision only: a newer one is 504 (as the watch cache answers once it gave up waiting), an
    exact older one 410 (as etcd answers for a compacted revision)."""
    check_list_options(query, watch=False)
    if query.get("continue"):
        return
    rv = parse(query.get("resourceVersion"))
    if rv > current:
        raise too_large(rv, current)
    if query.get("resourceVersionMatch") == "Exact" and rv != current:
        raise list_too_old()


def check_get(query, current: int) -> None:
    rv = parse(query.get("resourceVersion"))
    if rv > current:
        raise too_large(rv, current)
