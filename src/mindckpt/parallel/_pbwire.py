"""A tiny protobuf (proto2) message reader and writer for the strategy-file schema.

Strategy files are small (kilobytes to a few megabytes), so unlike the streaming ``.ckpt``
codec this one parses a whole message held in memory into ``{field number: [values]}``.
Every length and varint is checked against the buffer; callers turn ``WireError`` into a
``FormatError`` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..formats._wire import I32, I64, LEN, VARINT, decode_varint, encode_varint, key

__all__ = ["WireError", "parse", "varints", "signed32", "unsigned32", "signed64",
           "emit_varint", "emit_bytes"]


class WireError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


Fields = dict[int, list[tuple[int, int | bytes]]]


def parse(buf: bytes, what: str) -> Fields:
    """Split a message into ``{field: [(wire_type, value)]}`` (value: int or bytes)."""
    out: Fields = {}
    pos, end = 0, len(buf)
    while pos < end:
        k, pos = _varint(buf, pos, what)
        field, wire = k >> 3, k & 7
        if field == 0:
            raise WireError(f"{what}: field number 0 at byte {pos}")
        value: int | bytes
        if wire == VARINT:
            value, pos = _varint(buf, pos, what)
        elif wire == LEN:
            n, pos = _varint(buf, pos, what)
            if n > end - pos:
                raise WireError(f"{what}: field {field} claims {n} bytes, {end - pos} remain")
            value, pos = bytes(buf[pos:pos + n]), pos + n
        elif wire in (I64, I32):
            n = 8 if wire == I64 else 4
            if n > end - pos:
                raise WireError(f"{what}: field {field} is cut short")
            value, pos = int.from_bytes(buf[pos:pos + n], "little"), pos + n
        else:
            raise WireError(f"{what}: field {field} has wire type {wire} (groups are not used "
                            "by this schema)")
        out.setdefault(field, []).append((wire, value))
    return out


def _varint(buf: bytes, pos: int, what: str) -> tuple[int, int]:
    try:
        return decode_varint(buf, pos)
    except (IndexError, ValueError):
        raise WireError(f"{what}: truncated or overlong varint at byte {pos}") from None


def varints(items: Iterable[tuple[int, int | bytes]], what: str) -> list[int]:
    """Values of a repeated scalar field, packed or not."""
    out: list[int] = []
    for wire, value in items:
        if wire == VARINT:
            out.append(int(value))  # type: ignore[arg-type]
        elif wire == LEN:
            data = value
            if not isinstance(data, bytes):
                raise WireError(f"{what}: a length-delimited field without bytes")
            pos = 0
            while pos < len(data):
                v, pos = _varint(data, pos, what)
                out.append(v)
        else:
            raise WireError(f"{what}: expected varints, got wire type {wire}")
    return out


def signed32(v: int, what: str) -> int:
    if v >= 1 << 63:
        v -= 1 << 64
    elif v >= 1 << 31 and v < 1 << 32:
        v -= 1 << 32
    if not -(1 << 31) <= v < 1 << 31:
        raise WireError(f"{what}: {v} does not fit int32")
    return v


def unsigned32(v: int, what: str) -> int:
    if not 0 <= v < 1 << 32:
        raise WireError(f"{what}: {v} does not fit uint32")
    return v


def signed64(v: int, what: str) -> int:
    if v >= 1 << 63:
        v -= 1 << 64
    return v


def emit_varint(field: int, value: int) -> bytes:
    return key(field, VARINT) + encode_varint(value)


def emit_bytes(field: int, payload: bytes) -> bytes:
    return key(field, LEN) + encode_varint(len(payload)) + payload
