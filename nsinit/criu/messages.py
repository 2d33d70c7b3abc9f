"""The criu RPC message classes, built at run time from ``rpc.proto``.

No protoc step and no generated module: the small proto file beside this
module is read with a parser for the subset of proto2 it uses (messages
with scalar, enum and message fields; top-level enums), turned into a
FileDescriptorProto and handed to the protobuf runtime.  The file stays the
one place the interface is written down, and any protobuf release that
has ``message_factory`` can load it.

Imported only by the checkpoint and restore flows: protobuf costs ~40 ms.
"""
from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROTO_FILE = os.path.join(os.path.dirname(__file__), "rpc.proto")

_BLOCK = re.compile(r"^(message|enum)\s+(\w+)\s*\{(.*?)^\}", re.S | re.M)
_FIELD = re.compile(r"^\s*(optional|required|repeated)\s+(\w+)\s+(\w+)\s*=\s*(\d+)\s*;", re.M)
_VALUE = re.compile(r"^\s*(\w+)\s*=\s*(\d+)\s*;", re.M)
_SCALARS = {"int32": 5, "uint32": 13, "bool": 8, "string": 9}   # FieldDescriptorProto.Type
_LABELS = {"optional": 1, "required": 2, "repeated": 3}
_TYPE_MESSAGE, _TYPE_ENUM = 11, 14


def parse_proto(text: str) -> tuple[str, dict[str, list[tuple[str, str, str, int]]], dict[str, list[tuple[str, int]]]]:
    """(package, messages, enums) of a proto2 file in the subset above:
    messages map to (label, type, name, number) rows, enums to (name, number)."""
    text = re.sub(r"//[^\n]*", "", text)
    package = re.search(r"^package\s+([\w.]+)\s*;", text, re.M)
    messages: dict[str, list[tuple[str, str, str, int]]] = {}
    enums: dict[str, list[tuple[str, int]]] = {}
    for kind, name, body in _BLOCK.findall(text):
        if kind == "message":
            messages[name] = [(label, type_, fname, int(number)) for label, type_, fname, number in _FIELD.findall(body)]
        else:
            enums[name] = [(vname, int(number)) for vname, number in _VALUE.findall(body)]
    return (package.group(1) if package else ""), messages, enums


def build_file_descriptor(text: str) -> Any:
    from google.protobuf import descriptor_pb2

    package, messages, enums = parse_proto(text)
    proto = descriptor_pb2.FileDescriptorProto(name="nsinit_criu_rpc.proto", package=package, syntax="proto2")
    for name, values in enums.items():
        enum = proto.enum_type.add(name=name)
        for vname, number in values:
            enum.value.add(name=vname, number=number)
    for name, rows in messages.items():
        message = proto.message_type.add(name=name)
        for label, type_, fname, number in rows:
            entry = message.field.add(name=fname, number=number, label=_LABELS[label])
            if type_ in _SCALARS:
                entry.type = _SCALARS[type_]
            elif type_ in enums:
                entry.type, entry.type_name = _TYPE_ENUM, f".{package}.{type_}"
            elif type_ in messages:
                entry.type, entry.type_name = _TYPE_MESSAGE, f".{package}.{type_}"
            else:
                raise ValueError(f"rpc.proto: {name}.{fname}: unknown type {type_}")
    return proto


class _Messages:
    """Attribute access to the message classes (``msgs.criu_req``) and enum
    values (``msgs.DUMP``)."""

    def __init__(self) -> None:
        from google.protobuf import descriptor_pool

        with open(PROTO_FILE) as f:
            proto = build_file_descriptor(f.read())
        pool = descriptor_pool.DescriptorPool()
        file_desc = pool.AddSerializedFile(proto.SerializeToString())
        self._classes: dict[str, Any] = {}
        for name, desc in file_desc.message_types_by_name.items():
            self._classes[name] = _message_class(desc)
        self._values: dict[str, int] = {}
        for enum in file_desc.enum_types_by_name.values():
            for value in enum.values:
                self._values[value.name] = value.number

    def __getattr__(self, name: str) -> Any:
        if name in self._classes:
            return self._classes[name]
        if name in self._values:
            return self._values[name]
        raise AttributeError(name)


def _message_class(desc: Any) -> Any:
    from google.protobuf import message_factory

    if hasattr(message_factory, "GetMessageClass"):   # protobuf >= 4.21
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory().GetPrototype(desc)


_loaded: _Messages | None = None


def messages() -> _Messages:
    global _loaded
    if _loaded is None:
        _loaded = _Messages()
    return _loaded
