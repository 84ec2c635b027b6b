"""The exception tree of mindckpt.

::

    Exception
     └── CheckpointError                      every error mindckpt raises about a checkpoint
          ├── FormatError (ValueError)         bytes on disk that are not a valid checkpoint:
          │    │                               truncated, a record whose content does not match
          │    │                               its dtype and shape, an unknown dtype, oversized
          │    │                               length fields, trailing garbage
          │    └── ChecksumError               a CRC trailer (or safetensors crc_num) that does not
          │                                    match, or crc_check=True on a file without one
          ├── DecryptionError (ValueError)     wrong key, wrong mode, tampered or re-ordered blocks,
          │                                    a key given for a plain file
          └── AsyncSaveError (RuntimeError)    a background save failed; raised at the next save,
                                               at an explicit wait, or at exit

MindSpore raises ValueError for unreadable checkpoints, so every reading error is also a
ValueError: code written for MindSpore (``except ValueError``) keeps working.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "FormatError",
    "ChecksumError",
    "DecryptionError",
    "AsyncSaveError",
]


class CheckpointError(Exception):
    """Base class of every checkpoint error raised by mindckpt."""


class FormatError(CheckpointError, ValueError):
    """The file is not a valid checkpoint (or not the format that was asked for)."""


class ChecksumError(FormatError):
    """A stored checksum does not match the content, or a required one is missing."""


class DecryptionError(CheckpointError, ValueError):
    """The file cannot be decrypted with the given key and mode, or it was tampered with."""


class AsyncSaveError(CheckpointError, RuntimeError):
    """A background (async) save failed; the cause is chained."""
