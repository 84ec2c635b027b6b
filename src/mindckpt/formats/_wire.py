"""The few pieces of the protobuf wire format that the ``.ckpt`` codec needs.

Hand-written because it must stream: the ``protobuf`` package parses whole messages held in
memory, while a checkpoint can be larger than RAM.  Tests cross-check it against ``protobuf``
when that package is installed.
"""

from __future__ import annotations

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
MAX_VARINT_BYTES = 10


def encode_varint(value: int) -> bytes:
    """Minimal base-128 encoding; negative numbers as 10-byte two's complement (int64)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """Decode the varint at ``buf[pos:]``; return ``(value, next_pos)``.

    Raises ``IndexError`` when the buffer ends inside the varint and ``ValueError`` when it is
    longer than 10 bytes; callers turn both into ``FormatError`` with the file and offset.
    """
    result = 0
    shift = 0
    for i in range(MAX_VARINT_BYTES):
        b = buf[pos + i]
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos + i + 1
        shift += 7
    raise ValueError("varint longer than 10 bytes")


def key(field: int, wire_type: int) -> bytes:
    return encode_varint((field << 3) | wire_type)
