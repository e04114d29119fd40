"""Writes the Lua client's message schema (clients/lua/audiodream/schema.lua) from
the proto's descriptor, so a field added to the proto reaches Lua with `make proto`.

    python scripts/gen_lua_schema.py            write the file
    python scripts/gen_lua_schema.py --check    exit 1 if the file is stale
"""

from __future__ import annotations

import pathlib
import sys

from google.protobuf.descriptor import FieldDescriptor as FD

from audiodream_proto.v1 import audiodream_pb2 as pb

TARGET = pathlib.Path(__file__).resolve().parents[1] / "clients/lua/audiodream/schema.lua"

HEADER = """\
--- The protobuf messages of audiodream.v1, as data for the codec in pb.lua.
--
-- Generated from proto/audiodream/v1/audiodream.proto by
-- scripts/gen_lua_schema.py (`make proto`); do not edit. A test fails when
-- this file differs from what the script writes.
--
-- Each message is a list of fields {number, name, type, label}:
--   type   a scalar ("string", "bytes", "bool", "int32", "uint32", "uint64",
--          "float", "double") or the name of another message here;
--   label  nil        proto3 implicit presence: the default (0, "", false) is
--                     not written and is filled in on decode;
--          "optional" explicit presence: written whenever the Lua value is
--                     non-nil (0 included), nil on decode when absent;
--          "repeated" a Lua array; int32/float are written packed;
--          "oneof:N"  member of oneof N: written when non-nil, one at a time.
-- Message-typed fields always have presence (nil = absent, {} = empty).

local S = {}
"""

SCALARS = {
    FD.TYPE_STRING: "string", FD.TYPE_BYTES: "bytes", FD.TYPE_BOOL: "bool",
    FD.TYPE_INT32: "int32", FD.TYPE_UINT32: "uint32", FD.TYPE_UINT64: "uint64",
    FD.TYPE_FLOAT: "float", FD.TYPE_DOUBLE: "double",
}


def field_row(field) -> str:
    """`{number, "name", "type"[, "label"]}` for one field."""
    if field.message_type:
        typ = field.message_type.name
    elif field.type in SCALARS:
        typ = SCALARS[field.type]
    else:
        raise SystemExit(f"{field.full_name}: type {field.type} is not in the Lua codec")
    oneof = field.containing_oneof
    if oneof is not None and oneof.name == "_" + field.name:
        oneof = None  # the synthetic oneof of a proto3 `optional`
    if field.is_repeated:
        label = "repeated"
    elif oneof is not None:
        label = "oneof:" + oneof.name
    elif field.has_presence and not field.message_type:
        label = "optional"
    else:
        label = None
    parts = [str(field.number), f'"{field.name}"', f'"{typ}"']
    if label:
        parts.append(f'"{label}"')
    return "  {" + ", ".join(parts) + "},"


def schema() -> str:
    out = [HEADER]
    for message in pb.DESCRIPTOR.message_types_by_name.values():
        if not message.fields:
            out.append(f"S.{message.name} = {{}}\n")
            continue
        rows = "\n".join(field_row(f) for f in message.fields)
        out.append(f"S.{message.name} = {{\n{rows}\n}}\n")
    out.append("return S\n")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    text = schema()
    if "--check" in argv:
        if TARGET.read_text() != text:
            print(f"{TARGET.name} is stale: run `make proto`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
