"""Block framing of MindSpore's encrypted ``.ckpt`` files: pack, scan and check headers.

No cipher work happens here; :mod:`mindckpt.codecs.crypto` does that. The byte layout is
documented in that module's docstring (format-spec §7.2). All integers are little-endian;
the length fields are signed 32-bit.

AES-GCM block (48-byte header)::

    0  4  magic d8 5e 3a 7f
    4  16 tag
    20 4  L = 24 + C
    24 4  IV length = 16
    28 16 IV field (bytes 0-11: GCM nonce; bytes 12-15 unused by MindSpore)
    44 4  C
    48 C  ciphertext

AES-CBC / SM4-CBC block (32-byte header)::

    0  4  magic d9 5e 3a 7f (AES-CBC) / da 5e 3a 7f (SM4-CBC)
    4  4  L = 24 + C
    8  4  IV length = 16
    12 16 IV
    28 4  C (a multiple of 16, PKCS#7 padded)
    32 C  ciphertext

mindckpt's GCM nonce (bytes 0-11 of the IV field, authenticated by the tag)::

    0 3  NONCE_MARKER  b"mck"
    3 6  file id       random per file
    9 3  big-endian (block_index << 1) | is_last

and IV bytes 12-15 are IV_TAIL (b"MCK1"), so a flip there is caught too. MindSpore decrypts
such blocks like any other (it only feeds the nonce to GCM).
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, NamedTuple

from mindckpt.errors import DecryptionError

BLOCK_SIZE = 64 * 1024 * 1024
MAX_L = BLOCK_SIZE + 50  # MindSpore rejects a block whose L field is larger
IV_SIZE = 16
TAG_SIZE = 16
GCM_HEADER_SIZE = 48
CBC_HEADER_SIZE = 32
HEADER_ROOM = GCM_HEADER_SIZE  # payload offset inside a block buffer, for every mode
MAGICS = {
    "AES-GCM": b"\xd8\x5e\x3a\x7f",
    "AES-CBC": b"\xd9\x5e\x3a\x7f",
    "SM4-CBC": b"\xda\x5e\x3a\x7f",
}
MODE_OF_MAGIC = {v: k for k, v in MAGICS.items()}

NONCE_MARKER = b"mck"
FILE_ID_SIZE = 6
IV_TAIL = b"MCK1"
MAX_BLOCKS = 1 << 23  # 3-byte counter holds index << 1 | last

CRC_TRAILER_PREFIX = b"crc_num"
CRC_TRAILER_SIZE = 17

_I32 = struct.Struct("<i")
_GCM_HDR = struct.Struct("<4s16sii16si")
_CBC_HDR = struct.Struct("<4sii16si")


class BlockInfo(NamedTuple):
    index: int  # type: ignore[assignment]  # shadows tuple.index, on purpose
    offset: int  # byte offset of the block's magic
    data_offset: int  # byte offset of the ciphertext
    size: int  # C, ciphertext length
    tag: bytes  # b"" for CBC modes
    iv: bytes


def header_size(mode: str) -> int:
    return GCM_HEADER_SIZE if mode == "AES-GCM" else CBC_HEADER_SIZE


def make_gcm_iv(file_id: bytes, index: int, last: bool) -> bytes:
    """16-byte IV field of mindckpt's GCM block ``index`` (nonce = first 12 bytes)."""
    if index >= MAX_BLOCKS:
        raise ValueError(f"too many encrypted blocks: at most {MAX_BLOCKS} per file")
    counter = (index << 1) | int(last)
    return NONCE_MARKER + file_id + counter.to_bytes(3, "big") + IV_TAIL


def pack_header_into(buf, mode: str, c: int, iv: bytes, tag: bytes = b"") -> int:
    """Write the header just before ``buf[HEADER_ROOM:]``; return where the block starts."""
    if mode == "AES-GCM":
        _GCM_HDR.pack_into(buf, 0, MAGICS[mode], tag, 24 + c, IV_SIZE, iv, c)
        return 0
    start = HEADER_ROOM - CBC_HEADER_SIZE
    _CBC_HDR.pack_into(buf, start, MAGICS[mode], 24 + c, IV_SIZE, iv, c)
    return start


def _fail(path: str, mode: str, index: int | None, offset: int | None, what: str, fix: str):
    where = "" if index is None else f", block {index} at byte offset {offset}"
    return DecryptionError(f"Cannot decrypt {path!r} (dec_mode={mode!r}{where}): {what}. {fix}")


def describe_plain_head(head: bytes) -> str:
    if not head:
        return "the file is empty"
    if head[:1] == b"\x0a":
        return "it starts like a plain (unencrypted) MindSpore checkpoint (first byte 0x0a)"
    if head[:2] == b"PK":
        return "it looks like a zip file (e.g. torch.save output), not a MindSpore checkpoint"
    return f"its first bytes are {head[:4].hex(' ')}, which is no encryption magic"


def file_size(f: BinaryIO) -> int:
    try:
        return os.fstat(f.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        pos = f.tell()
        end = f.seek(0, os.SEEK_END)
        f.seek(pos)
        return end


def _read_exact_at(f: BinaryIO, offset: int, n: int) -> bytes:
    f.seek(offset)
    return f.read(n)


def scan_blocks(f: BinaryIO, mode: str, path: str) -> list[BlockInfo]:
    """Read and check every block header (seeking over the ciphertext).

    Raises DecryptionError for anything MindSpore's decryptor rejects (bad magic, IV length
    != 16, L > 64 MiB + 50, C != L - 24, a block running past EOF, bytes after the last block)
    and for CBC ciphertext lengths that cannot hold PKCS#7 padding.
    """
    total = file_size(f)
    hsize = header_size(mode)
    magic = MAGICS[mode]
    blocks: list[BlockInfo] = []
    off = 0
    while off < total:
        i = len(blocks)
        head = _read_exact_at(f, off, hsize)
        if head[:4] != magic:
            raise _bad_magic(path, mode, i, off, head, total - off)
        if len(head) < hsize:
            raise _fail(
                path,
                mode,
                i,
                off,
                f"the file ends {total - off} bytes into a {hsize}-byte block header: it is truncated",
                "Re-copy or re-download the checkpoint; a truncated encrypted file cannot be "
                "recovered past its last complete block",
            )
        if mode == "AES-GCM":
            _, tag, length, ivlen, iv, c = _GCM_HDR.unpack(head)
        else:
            _, length, ivlen, iv, c = _CBC_HDR.unpack(head)
            tag = b""
        if ivlen != IV_SIZE:
            raise _fail(
                path,
                mode,
                i,
                off,
                f"the IV length field is {ivlen}, MindSpore always writes 16: the header is corrupted or tampered with",
                "Restore the file from a good copy",
            )
        if length < 24 or length > MAX_L:
            raise _fail(
                path,
                mode,
                i,
                off,
                f"the block length field L is {length}, outside 24..{MAX_L} (64 MiB + 50): the header is corrupted or tampered with",
                "Restore the file from a good copy",
            )
        if c != length - 24:
            raise _fail(
                path,
                mode,
                i,
                off,
                f"the ciphertext length field C={c} disagrees with L={length} (expected C = L - 24): the header is corrupted or tampered with",
                "Restore the file from a good copy",
            )
        if mode != "AES-GCM" and (c == 0 or c % 16):
            raise _fail(
                path,
                mode,
                i,
                off,
                f"the CBC ciphertext length {c} is not a positive multiple of 16: the header is corrupted or tampered with",
                "Restore the file from a good copy",
            )
        end = off + hsize + c
        if end > total:
            raise _fail(
                path,
                mode,
                i,
                off,
                f"the block declares {c} bytes of ciphertext but only {total - off - hsize} remain: the file is truncated",
                "Re-copy or re-download the checkpoint; a truncated encrypted file cannot be "
                "recovered past its last complete block",
            )
        blocks.append(BlockInfo(i, off, off + hsize, c, tag, iv))
        off = end
    return blocks


def _bad_magic(path: str, mode: str, i: int, off: int, head: bytes, remaining: int):
    other = MODE_OF_MAGIC.get(head[:4])
    if other is not None:
        return _fail(
            path,
            mode,
            i,
            off,
            f"the block is {other}-encrypted, not {mode}",
            f"Pass dec_mode={other!r}",
        )
    if i == 0:
        return _fail(
            path,
            mode,
            None,
            None,
            f"the file is not encrypted: {describe_plain_head(head)}",
            "Load it without dec_key (and dec_mode)",
        )
    if remaining == CRC_TRAILER_SIZE and head.startswith(CRC_TRAILER_PREFIX[:4]):
        return _fail(
            path,
            mode,
            i,
            off,
            "the file ends with a clear-text 17-byte 'crc_num' trailer after the last block, which "
            "MindSpore writes when enc_key and crc_check=True are combined (MindSpore cannot load "
            "such files either)",
            "The ciphertext before it is intact: copy the file without its last 17 bytes and load that",
        )
    return _fail(
        path,
        mode,
        i,
        off,
        f"{remaining} unexpected bytes follow the last complete block (no {mode} magic there): "
        "junk was appended or files were concatenated",
        "Restore the file from a good copy, or truncate it to the length of its valid blocks",
    )


def is_ours(blocks: list[BlockInfo]) -> bool:
    """True when the first GCM block carries mindckpt's nonce layout (authenticated by its tag)."""
    return bool(blocks) and bool(blocks[0].tag) and blocks[0].iv[:3] == NONCE_MARKER


def check_sequence(blocks: list[BlockInfo], mode: str, path: str) -> None:
    """Enforce mindckpt's block chain: same file id, indices 0,1,2..., last flag only at the end.

    The nonce fields read here are not yet authenticated; each block's tag check confirms them
    later, so an edited nonce fails either here or there.
    """
    fid = blocks[0].iv[3 : 3 + FILE_ID_SIZE]
    n = len(blocks)
    for b in blocks:
        iv = b.iv
        if iv[:3] != NONCE_MARKER or iv[3 : 3 + FILE_ID_SIZE] != fid:
            raise _fail(
                path,
                mode,
                b.index,
                b.offset,
                "the block was not written as part of this file (its nonce carries another file "
                "id): blocks were spliced in from another checkpoint encrypted with the same key",
                "Restore the file from a good copy",
            )
        counter = int.from_bytes(iv[9:12], "big")
        idx, last = counter >> 1, counter & 1
        if idx != b.index:
            what = (
                "blocks were duplicated or reordered"
                if idx < b.index
                else "blocks were dropped or reordered"
            )
            raise _fail(
                path,
                mode,
                b.index,
                b.offset,
                f"the block was written as block {idx}: {what}",
                "Restore the file from a good copy",
            )
        if last and b.index != n - 1:
            raise _fail(
                path,
                mode,
                b.index,
                b.offset,
                f"the block was written as the final block but {n - 1 - b.index} more follow: "
                "blocks were appended or files concatenated",
                "Restore the file from a good copy, or truncate it after this block",
            )
        if not last and b.index == n - 1:
            raise _fail(
                path,
                mode,
                b.index,
                b.offset,
                "the file ends here but this block was not written as the final one: the file "
                "was truncated at a block boundary (trailing blocks are missing)",
                "Re-copy or re-download the checkpoint",
            )
        if iv[12:16] != IV_TAIL:
            raise _fail(
                path,
                mode,
                b.index,
                b.offset,
                "IV bytes 12-15 were altered (MindSpore ignores them, mindckpt writes a fixed value): "
                "the header is corrupted or tampered with",
                "Restore the file from a good copy",
            )
