"""Encrypted files framed like MindSpore's own writer, for the codec tests."""

from __future__ import annotations

import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mindckpt.codecs import _blocks

KEY = bytes(range(16))


def ms_encrypt(data: bytes, mode: str = "AES-GCM", key: bytes = KEY, block: int = 1024,
               legacy: bool | list[bool] = False) -> bytes:
    """MindSpore's framing with random IVs; ``legacy``: GCM over all 16 IV bytes (pre-2.10)."""
    out = bytearray()
    for n, i in enumerate(range(0, len(data), block)):
        chunk = data[i : i + block]
        iv = os.urandom(16)
        if mode == "AES-GCM":
            old = legacy[n] if isinstance(legacy, list) else legacy
            enc = Cipher(algorithms.AES(key), modes.GCM(iv if old else iv[:12])).encryptor()
            ct = enc.update(chunk) + enc.finalize()
            out += struct.pack("<4s16sii16si", _blocks.MAGICS[mode], enc.tag, 24 + len(ct), 16, iv,
                               len(ct))
        else:
            pad = 16 - len(chunk) % 16
            alg = algorithms.AES(key) if mode == "AES-CBC" else algorithms.SM4(key)
            enc = Cipher(alg, modes.CBC(iv)).encryptor()
            ct = enc.update(chunk + bytes([pad]) * pad) + enc.finalize()
            out += struct.pack("<4sii16si", _blocks.MAGICS[mode], 24 + len(ct), 16, iv, len(ct))
        out += ct
    return bytes(out)
