"""MindSpore's shared argument checks, with their exact messages.

Used by ``save_checkpoint``/``load_checkpoint`` and by ``CheckpointConfig``/``ModelCheckpoint``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "check_non_negative_int",
    "check_bool",
    "check_isinstance",
    "check_async_save",
    "is_network",
    "check_enc_key_length",
    "check_crc_enc",
]


def check_non_negative_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(
            f"The input value must be int and must >= 0, but got '{value}' with type 'bool'."
        )
    if not isinstance(value, int):
        raise TypeError(f"The input value must be int, but got '{type(value).__name__}'")
    if value < 0:
        raise ValueError(
            f"The input value must be int and must >= 0, but got '{value}' with type 'int'."
        )
    return value


def check_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"The input value must be a bool, but got {type(value).__name__}.")
    return value


def check_isinstance(name: str, value: Any, classes: type | tuple[type, ...]) -> Any:
    if not isinstance(value, classes):
        shown = classes if isinstance(classes, type) else tuple(classes)
        raise ValueError(f"The parameter '{name}' must be isinstance of {shown}, but got {value}.")
    return value


def check_async_save(async_save: Any) -> Any:
    if not isinstance(async_save, (bool, str)):
        raise TypeError(
            f"For 'save_checkpoint', the parameter 'async_save' must be bool or str, "
            f"but got {type(async_save)}."
        )
    if isinstance(async_save, str) and async_save not in ("process", "thread"):
        raise ValueError(
            f"For 'save_checkpoint', the argument 'async_save' can only be 'process' or 'thread',"
            f"but got {async_save}."
        )
    return async_save


def is_network(obj: Any) -> bool:
    """A mindckpt ``nn.Cell`` or a ``torch.nn.Module`` (torch is never imported for this)."""
    from mindckpt.collect import is_torch_module
    from mindckpt.nn import Cell

    return isinstance(obj, Cell) or is_torch_module(obj)


def check_crc_enc(crc_check: bool, enc_key: Any, api: str) -> None:
    """mindckpt refuses ``crc_check=True`` with ``enc_key`` (MindSpore writes an unloadable file)."""
    if enc_key is not None and crc_check:
        raise ValueError(
            f"For '{api}', 'crc_check=True' cannot be used together with 'enc_key': "
            "the two are mutually exclusive (MindSpore writes the CRC trailer after the "
            "ciphertext, and the file can never be loaded). AES-GCM already authenticates the "
            "data; drop crc_check."
        )


def check_enc_key_length(enc_key: bytes, enc_mode: str, api: str) -> None:
    """Deviation: MindSpore checks the key only while writing (after deleting the old file).

    The rule and its message live in :func:`mindckpt.codecs.crypto.check_cipher_args`.
    """
    from mindckpt.codecs.crypto import check_cipher_args

    check_cipher_args(enc_key, enc_mode, api=api)
