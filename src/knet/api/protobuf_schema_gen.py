"""Regenerate protobuf_schema.json: the field numbers of Kubernetes' protobuf messages, read
from the gzipped FileDescriptorProtos that every Go Kubernetes client (kubectl) embeds.

    python -m knet.api.protobuf_schema_gen /usr/bin/kubectl

Output: {".pkg.Message": {"NUMBER": [json name, kind, message type]}} with kind one of
string, bytes, bool, int, msg, map (value type in the third slot), and a trailing "*" on
the kind for repeated fields.
"""

from __future__ import annotations

import json
import re
import sys
import zlib
from pathlib import Path

from knet.api.protowire import fields

PACKAGES = ("k8s.io/api/core/v1/", "k8s.io/api/apps/v1/", "k8s.io/api/discovery/v1/", "k8s.io/api/networking/v1/",
            "k8s.io/api/coordination/v1/", "k8s.io/api/events/v1/", "k8s.io/api/authentication/v1/",
            "k8s.io/api/autoscaling/v1/", "k8s.io/api/batch/v1/", "k8s.io/api/policy/v1/", "k8s.io/api/authorization/v1/", "k8s.io/api/rbac/v1/", "k8s.io/apimachinery/pkg/apis/meta/v1/",
            "k8s.io/apimachinery/pkg/util/intstr/", "k8s.io/apimachinery/pkg/api/resource/",
            "k8s.io/apimachinery/pkg/runtime/")
# Proto field names derived from Go names that the Go JSON tags spell otherwise (`UID` -> "uid").
JSON_NAMES = {"uID": "uid", "aPIGroup": "apiGroup"}
SCALARS = {9: "string", 12: "bytes", 8: "bool", 3: "int", 4: "int", 5: "int", 13: "int", 17: "int", 18: "int",
           1: "double", 2: "float"}


def _descriptor_files(binary: bytes):
    for m in re.finditer(b"\x1f\x8b\x08\x00\x00\x00\x00\x00", binary):
        try:
            out = zlib.decompressobj(31).decompress(binary[m.start():m.start() + 1_000_000])
        except zlib.error:
            continue
        if out[:1] == b"\n" and b"generated.proto" in out[:120]:
            yield out


def _message(buf: bytes, prefix: str, out: dict) -> None:
    name = ""
    field_list, nested = [], []
    is_map = False
    for num, _, val in fields(buf):
        if num == 1:
            name = val.decode()
        elif num == 2:
            field_list.append(val)
        elif num == 3:
            nested.append(val)
        elif num == 7:  # MessageOptions
            is_map = any(n == 7 and v == 1 for n, _, v in fields(val))
    full = f"{prefix}.{name}"
    for n in nested:
        _message(n, full, out)
    entry: dict = {}
    for f in field_list:
        fname, number, label, ftype, type_name, json_name = "", 0, 1, 0, "", ""
        for n, _, v in fields(f):
            if n == 1:
                fname = v.decode()
            elif n == 3:
                number = v
            elif n == 4:
                label = v
            elif n == 5:
                ftype = v
            elif n == 6:
                type_name = v.decode()
            elif n == 10:
                json_name = v.decode()
        kind = "msg" if ftype == 11 else SCALARS.get(ftype, "int")
        name = fname or json_name
        entry[str(number)] = [JSON_NAMES.get(name, name), kind + ("*" if label == 3 else ""), type_name]
    out[full] = {"map": is_map, "fields": entry}


def generate(binary_path: str) -> dict:
    messages: dict = {}
    for fd in _descriptor_files(Path(binary_path).read_bytes()):
        fname = package = ""
        raw_messages = []
        for n, _, v in fields(fd):
            if n == 1:
                fname = v.decode()
            elif n == 2:
                package = v.decode()
            elif n == 4:
                raw_messages.append(v)
        if not fname.startswith(PACKAGES) or fname.count("/") != PACKAGES[0].count("/") + (
                1 if fname.startswith("k8s.io/apimachinery/pkg/apis") else 0) and not fname.startswith(PACKAGES):
            continue
        if not any(fname == p + "generated.proto" for p in PACKAGES):
            continue
        for m in raw_messages:
            _message(m, "." + package, messages)
    # Fold map entries into their parents: kind "map", value type in slot 3.
    out: dict = {}
    for name, msg in messages.items():
        if msg["map"]:
            continue
        fields_out = {}
        for num, (fname, kind, tname) in msg["fields"].items():
            entry_msg = messages.get(tname)
            if kind == "msg*" and entry_msg and entry_msg["map"]:
                vname, vkind, vtype = entry_msg["fields"]["2"]
                fields_out[num] = [fname, "map", vtype if vkind == "msg" else vkind]
            else:
                fields_out[num] = [fname, kind, tname]
        out[name] = fields_out
    return out


if __name__ == "__main__":
    schema = generate(sys.argv[1] if len(sys.argv) > 1 else "/usr/bin/kubectl")
    target = Path(__file__).with_name("protobuf_schema.json")
    target.write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True))
    print(f"{len(schema)} messages -> {target}")
