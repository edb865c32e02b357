"""Decoding `application/vnd.kubernetes.protobuf` request bodies into wire dicts.

kubectl's typed clients (`kubectl create namespace|configmap|secret|deployment|serviceaccount|
token`, ...) send protobuf: the magic `k8s\\x00`, then a runtime.Unknown holding apiVersion,
kind and the object's message. Field numbers come from protobuf_schema.json (generated from
the descriptors Kubernetes' Go clients embed, see protobuf_schema_gen.py). Go's JSON encoding
omits empty optional fields; protobuf carries them, so zero values are dropped here except
where zero is meaningful (pointer fields such as `replicas`)."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
from pathlib import Path

import orjson

from knet.api.protowire import WireError, fields, signed64

MAGIC = b"k8s\x00"
GROUP_PACKAGES = {"": "core", "apps": "apps", "discovery.k8s.io": "discovery", "networking.k8s.io": "networking",
                  "coordination.k8s.io": "coordination", "events.k8s.io": "events",
                  "authentication.k8s.io": "authentication", "authorization.k8s.io": "authorization",
                  "autoscaling": "autoscaling", "policy": "policy", "rbac.authorization.k8s.io": "rbac",
                  "batch": "batch", "scheduling.k8s.io": "scheduling"}
META_KINDS = {"DeleteOptions", "Status", "List", "PartialObjectMetadata"}
KEEP_ZERO_INTS = {"replicas", "terminationGracePeriodSeconds", "activeDeadlineSeconds", "port", "containerPort",
                  "expirationSeconds", "revisionHistoryLimit", "progressDeadlineSeconds", "gracePeriodSeconds",
                  "priority", "exitCode",
                  # batch/v1 pointer fields where 0 is a choice (backoffLimit: 0 fails at the first failure)
                  "backoffLimit", "completions", "parallelism", "ttlSecondsAfterFinished", "startingDeadlineSeconds",
                  "successfulJobsHistoryLimit", "failedJobsHistoryLimit", "backoffLimitPerIndex", "maxFailedIndexes",
                  # HorizontalPodAutoscaler: a stated 0 is refused or means "no window", never "unset"
                  "minReplicas", "maxReplicas", "stabilizationWindowSeconds", "averageUtilization",
                  "targetCPUUtilizationPercentage", "periodSeconds"}
KEEP_FALSE = {"immutable", "automountServiceAccountToken", "enableServiceLinks", "allocateLoadBalancerNodePorts",
              "ready", "serving", "terminating"}

# Embedded Go structs whose JSON tag is `,inline`: their fields belong to the enclosing object
# (an IngressRule's `http`, a Volume's `configMap`, a Probe's `httpGet`).
INLINE_TYPES = {".k8s.io.api.networking.v1.IngressRuleValue", ".k8s.io.api.core.v1.VolumeSource",
                ".k8s.io.api.core.v1.ProbeHandler", ".k8s.io.api.core.v1.PersistentVolumeSource"}


class ProtobufError(ValueError):
    pass


@functools.cache
def _schema() -> dict:
    return json.loads(Path(__file__).with_name("protobuf_schema.json").read_text())


def _time(msg: bytes, micro: bool) -> str | None:
    seconds = nanos = 0
    for n, _, v in fields(msg):
        if n == 1:
            seconds = signed64(v)
        elif n == 2:
            nanos = v
    if seconds == 0 and nanos == 0:
        return None
    t = dt.datetime.fromtimestamp(seconds, dt.UTC)
    if micro:
        return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _special(type_name: str, raw: bytes):
    """Messages whose JSON form is not an object. Returns (handled, value)."""
    short = type_name.rsplit(".", 1)[-1]
    if short == "Time" and "meta.v1" in type_name:
        return True, _time(raw, False)
    if short == "MicroTime":
        return True, _time(raw, True)
    if short == "IntOrString":
        kind, ival, sval = 0, 0, ""
        for n, _, v in fields(raw):
            if n == 1:
                kind = v
            elif n == 2:
                ival = signed64(v) if v >= 1 << 63 else v
            elif n == 3:
                sval = v.decode()
        return True, (sval if kind == 1 else ival)
    if short == "Quantity":
        for n, _, v in fields(raw):
            if n == 1:
                return True, v.decode()
        return True, "0"
    if short in ("RawExtension", "FieldsV1", "JSON"):
        for n, _, v in fields(raw):
            if n == 1:
                return True, orjson.loads(v) if v else None
        return True, None
    if short == "Duration" and "meta.v1" in type_name:
        for n, _, v in fields(raw):
            if n == 1:
                return True, f"{signed64(v) / 1e9:g}s"
        return True, "0s"
    return False, None


def _scalar(kind: str, value, wire: int):
    if kind == "string":
        return value.decode()
    if kind == "bytes":
        return base64.b64encode(value).decode()
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return signed64(value)
    if kind == "double" and isinstance(value, int):
        import struct

        return struct.unpack("<d", struct.pack("<Q", value))[0]
    return value


def decode_message(raw: bytes, type_name: str) -> dict:
    schema = _schema().get(type_name)
    if schema is None:
        raise ProtobufError(f"unknown protobuf message {type_name}")
    out: dict = {}
    for number, wire, value in fields(raw):
        spec = schema.get(str(number))
        if spec is None:
            continue  # a field newer than our schema: ignored, as proto decoders do
        name, kind, tname = spec
        repeated = kind.endswith("*")
        kind = kind.rstrip("*")
        if kind == "map":
            key = val = None
            for n, _w, v in fields(value):
                if n == 1:
                    key = v.decode()
                elif n == 2:
                    val = v
            entry = out.setdefault(name, {})
            if tname.startswith("."):
                handled, special = _special(tname, val or b"")
                entry[key] = special if handled else decode_message(val or b"", tname)
            else:
                entry[key] = _scalar(tname, val if val is not None else (b"" if tname in ("string", "bytes") else 0), 0)
            continue
        if kind == "msg":
            handled, item = _special(tname, value)
            if not handled:
                item = decode_message(value, tname)
                if tname in INLINE_TYPES and not repeated:
                    out.update(item)
                    continue
        elif wire == 2 and kind in ("int", "bool"):  # packed repeated scalars
            pos_items = []
            pos = 0
            from knet.api.protowire import read_varint

            while pos < len(value):
                v, pos = read_varint(value, pos)
                pos_items.append(_scalar(kind, v, 0))
            out.setdefault(name, []).extend(pos_items)
            continue
        else:
            item = _scalar(kind, value, wire)
        if repeated:
            out.setdefault(name, []).append(item)
        else:
            out[name] = item
    return {k: v for k, v in out.items() if not _omitted(k, v)}


def _omitted(name: str, value) -> bool:
    if value is None:
        return name != "creationTimestamp"
    if value == "" or value == [] or value == {} and name not in ("resources", "spec", "status", "metadata"):
        return True
    if value is False and name not in KEEP_FALSE:
        return True
    if value == 0 and not isinstance(value, bool) and isinstance(value, int) and name not in KEEP_ZERO_INTS:
        return True
    return False


def message_name(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    if kind in META_KINDS or group == "meta.k8s.io":
        return f".k8s.io.apimachinery.pkg.apis.meta.{version}.{kind}"
    package = GROUP_PACKAGES.get(group)
    if package is None:
        raise ProtobufError(f"no protobuf encoding known for {api_version} {kind}")
    return f".k8s.io.api.{package}.{version}.{kind}"


def decode(body: bytes) -> dict:
    """A `k8s\\x00` + runtime.Unknown body -> the object as a JSON-style dict."""
    if not body.startswith(MAGIC):
        raise ProtobufError("provided object is not a protobuf message (missing the k8s magic prefix)")
    try:
        api_version = kind = ""
        raw = b""
        for n, _, v in fields(body[len(MAGIC):]):
            if n == 1:
                for tn, _, tv in fields(v):
                    if tn == 1:
                        api_version = tv.decode()
                    elif tn == 2:
                        kind = tv.decode()
            elif n == 2:
                raw = v
        obj = decode_message(raw, message_name(api_version, kind))
    except (WireError, UnicodeDecodeError) as exc:
        raise ProtobufError(f"malformed protobuf body: {exc}") from None
    return {"apiVersion": api_version, "kind": kind, **obj}
