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

import struct
from array import array
from typing import NamedTuple

from mindckpt.codecs._source import PositionalSource, read_at
from mindckpt.codecs.crc import TRAILER_MAGIC, TRAILER_SIZE
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
MAX_SCAN_BLOCKS = 1 << 21  # 128 TiB of 64 MiB blocks; bounds the index of a crafted file

ZERO_TAG = bytes(TAG_SIZE)  # stands for the tag of CBC blocks in a BlockTable
CRC_TRAILER_PREFIX = TRAILER_MAGIC
CRC_TRAILER_SIZE = TRAILER_SIZE

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


class BlockTable:
    """The scanned headers of one file, stored compactly (about 56 bytes per block).

    ``table[i]`` gives a :class:`BlockInfo`; ``tag(i)``/``iv(i)``/``size(i)`` avoid building one.
    A hostile file of a million empty blocks thus costs ~1.2x its size to index, not 7x.
    """

    __slots__ = ("mode", "hsize", "offsets", "sizes", "_heads")

    def __init__(self, mode: str):
        self.mode = mode
        self.hsize = header_size(mode)
        self.offsets = array("q")
        self.sizes = array("q")
        self._heads = bytearray()  # tag (16, zeros for CBC) + IV (16) per block

    def append(self, offset: int, c: int, tag: bytes, iv: bytes) -> None:
        self.offsets.append(offset)
        self.sizes.append(c)
        self._heads += tag or ZERO_TAG
        self._heads += iv

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int) -> BlockInfo:
        n = len(self.offsets)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        off = self.offsets[i]
        return BlockInfo(i, off, off + self.hsize, self.sizes[i], self.tag(i), self.iv(i))

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def size(self, i: int) -> int:
        return self.sizes[i]

    def data_offset(self, i: int) -> int:
        return self.offsets[i] + self.hsize

    def tag(self, i: int) -> bytes:
        if self.mode != "AES-GCM":
            return b""
        return bytes(self._heads[32 * i : 32 * i + 16])

    def iv(self, i: int) -> bytes:
        return bytes(self._heads[32 * i + 16 : 32 * i + 32])

    def marked(self, i: int) -> bool:
        """Does GCM block ``i``'s nonce start with mindckpt's marker (authenticated by its tag)?"""
        o = 32 * i + 16
        return self.mode == "AES-GCM" and self._heads[o : o + 3] == NONCE_MARKER


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


SCAN_READAHEAD = 1 << 16  # header bytes read at once while blocks are small


def scan_blocks(src: PositionalSource, mode: str, path: str) -> BlockTable:
    """Read and check every block header (skipping over the ciphertext).

    Raises DecryptionError for anything MindSpore's decryptor rejects (bad magic, IV length
    != 16, L > 64 MiB + 50, C != L - 24, a block running past EOF, bytes after the last block)
    and for CBC ciphertext lengths that cannot hold PKCS#7 padding. Cost: one read per block
    header (48 or 32 bytes), batched into 64 KiB reads while blocks are small.
    """
    total = src.size
    hsize = header_size(mode)
    magic = MAGICS[mode]
    table = BlockTable(mode)
    unpack = _GCM_HDR.unpack_from if mode == "AES-GCM" else _CBC_HDR.unpack_from
    add_offset, add_size, heads = table.offsets.append, table.sizes.append, table._heads
    buf, buf_start = b"", 0
    last_c = SCAN_READAHEAD  # first header alone: blocks are usually large
    off = 0
    while off < total:
        i = len(table)
        if i >= MAX_SCAN_BLOCKS:
            raise _fail(
                path,
                mode,
                i,
                off,
                f"the file has more than {MAX_SCAN_BLOCKS} blocks (MindSpore writes 64 MiB blocks, "
                "so this is a 128 TiB checkpoint or a crafted file)",
                "Restore the file from a good copy",
            )
        rel = off - buf_start
        if rel < 0 or rel + hsize > len(buf):
            want = hsize if last_c >= SCAN_READAHEAD else SCAN_READAHEAD
            buf, buf_start, rel = read_at(src, want, off), off, 0
        head = buf[rel : rel + hsize]
        if head[:4] != magic and not (len(head) < 4 and magic.startswith(head)):
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
            _, tag, length, ivlen, iv, c = unpack(head)
        else:
            _, length, ivlen, iv, c = unpack(head)
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
        add_offset(off)
        add_size(c)
        heads += tag or ZERO_TAG
        heads += iv
        last_c = c
        off = end
    return table


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


def check_binding(table: BlockTable, path: str, *, require_bound: bool = False) -> bool:
    """Is this file's block order protected? Raise if its blocks disagree about it.

    A GCM block is *bound* when its nonce starts with mindckpt's marker; the nonce is
    authenticated by the block's tag, so the answer cannot be changed without failing that
    block later. Either every block is bound (then :func:`check_sequence` runs and True is
    returned) or none is (MindSpore's random nonces: False). A mix means blocks of different
    writers were combined (e.g. block 0 replaced by a MindSpore-written block to switch the
    checks off) and is rejected, naming the first block of the minority. With
    ``require_bound`` an unbound file (any CBC file, any MindSpore-written GCM file) is
    rejected too.
    """
    mode = table.mode
    n = len(table)
    if mode != "AES-GCM":
        if require_bound and n:
            raise _fail(
                path,
                mode,
                None,
                None,
                f"strict mode (require_bound=True) accepts only AES-GCM files written by mindckpt, "
                f"whose blocks are bound to their file and position; {mode} has no integrity check "
                "at all",
                "Re-save the checkpoint with enc_mode='AES-GCM', or load it without strict mode",
            )
        return False
    marked = [i for i in range(n) if table.marked(i)]
    if not marked:
        if require_bound and n:
            raise _fail(
                path,
                mode,
                0,
                0,
                "strict mode (require_bound=True) needs blocks bound to their file and position, "
                "but this file's nonces are random (written by MindSpore, or by another writer): "
                "reordered, dropped or spliced blocks could not be detected",
                "Re-save the checkpoint with mindckpt, or load it without strict mode",
            )
        return False
    if len(marked) < n:
        marks = set(marked)
        if 2 * len(marked) < n:
            i, what = marked[0], "carries"
        else:
            i = next(j for j in range(n) if j not in marks)
            what = "lacks"
        raise _fail(
            path,
            mode,
            i,
            table.offsets[i],
            f"the block {what} mindckpt's block-order marker but {len(marked)} of the file's {n} "
            "blocks carry it: blocks of different files (mindckpt- and MindSpore-written, same "
            "key) were combined, e.g. to switch off the order checks",
            "Restore the file from a good copy",
        )
    check_sequence(table, path)
    return True


def file_id(table: BlockTable) -> bytes | None:
    """The random id in a bound file's nonces (None for unbound files)."""
    if not len(table) or not table.marked(0):
        return None
    return table.iv(0)[3 : 3 + FILE_ID_SIZE]


def check_sequence(table: BlockTable, path: str) -> None:
    """Enforce mindckpt's block chain: same file id, indices 0,1,2..., last flag only at the end.

    The nonce fields read here are not yet authenticated; each block's tag check confirms them
    later, so an edited nonce fails either here or there.
    """
    mode = table.mode
    fid = table.iv(0)[3 : 3 + FILE_ID_SIZE]
    n = len(table)
    if n > MAX_BLOCKS:
        raise _fail(
            path,
            mode,
            MAX_BLOCKS,
            table.offsets[MAX_BLOCKS],
            f"mindckpt writes at most {MAX_BLOCKS} blocks per file but this one has {n}",
            "Restore the file from a good copy",
        )
    for index in range(n):
        iv = table.iv(index)
        offset = table.offsets[index]
        if iv[3 : 3 + FILE_ID_SIZE] != fid:
            raise _fail(
                path,
                mode,
                index,
                offset,
                "the block was not written as part of this file (its nonce carries another file "
                "id): blocks were spliced in from another checkpoint encrypted with the same key",
                "Restore the file from a good copy",
            )
        counter = int.from_bytes(iv[9:12], "big")
        idx, last = counter >> 1, counter & 1
        if idx != index:
            what = (
                "blocks were duplicated or reordered"
                if idx < index
                else "blocks were dropped or reordered"
            )
            raise _fail(
                path,
                mode,
                index,
                offset,
                f"the block was written as block {idx}: {what}",
                "Restore the file from a good copy",
            )
        if last and index != n - 1:
            raise _fail(
                path,
                mode,
                index,
                offset,
                f"the block was written as the final block but {n - 1 - index} more follow: "
                "blocks were appended or files concatenated",
                "Restore the file from a good copy, or truncate it after this block",
            )
        if not last and index == n - 1:
            raise _fail(
                path,
                mode,
                index,
                offset,
                "the file ends here but this block was not written as the final one: the file "
                "was truncated at a block boundary (trailing blocks are missing)",
                "Re-copy or re-download the checkpoint",
            )
        if iv[12:16] != IV_TAIL:
            raise _fail(
                path,
                mode,
                index,
                offset,
                "IV bytes 12-15 were altered (MindSpore ignores them, mindckpt writes a fixed value): "
                "the header is corrupted or tampered with",
                "Restore the file from a good copy",
            )
