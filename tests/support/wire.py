"""Protobuf wire bytes built by hand, for requests no generated class would produce."""

from __future__ import annotations


def varint(number: int) -> bytes:
    """A protobuf base-128 varint."""
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        if not number:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def deep_properties(depth: int) -> bytes:
    """A TrackRequest's ``properties`` (field 17) nesting ``depth`` Structs ``{"a": {"a": ...}}``."""
    inner = b""
    for _ in range(depth):
        value = b"\x2a" + varint(len(inner)) + inner  # Value.struct_value (field 5)
        entry = b"\x0a\x01a\x12" + varint(len(value)) + value  # map entry: key (1) "a", value (2)
        inner = b"\x0a" + varint(len(entry)) + entry  # Struct.fields (field 1)
    return b"\x8a\x01" + varint(len(inner)) + inner
