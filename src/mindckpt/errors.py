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
          ├── CheckpointNotFoundError          the checkpoint (file, object, directory) does not
          │    (FileNotFoundError, ValueError) exist, or is not a file
          ├── StorageError (OSError)           a store operation failed (write, publish, list,
          │    │                               remove), naming the key; nothing was replaced
          │    ├── DurabilityError             the new file is in place but not known durable
          │    └── MissingDirectoryError       the target's directory does not exist
          │         (FileNotFoundError)
          ├── LayoutError (ValueError)         a parallel layout (device matrix, tensor map,
          │                                    optimizer shard) that describes no valid slicing
          ├── TransformError (ValueError)      a reshard/merge that cannot be done as asked
          ├── DistributedCheckpointError       a distributed save or load failed on one or more
          │    (RuntimeError)                  ranks; raised on every rank, naming them
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
    "CheckpointNotFoundError",
    "StorageError",
    "DurabilityError",
    "MissingDirectoryError",
    "LayoutError",
    "TransformError",
    "DistributedCheckpointError",
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


class CheckpointNotFoundError(CheckpointError, FileNotFoundError, ValueError):
    """The checkpoint does not exist (``FileNotFoundError``; also ``ValueError``, which is what
    MindSpore raises for a missing file)."""


class StorageError(CheckpointError, OSError):
    """A store operation failed; the message names the key and the cause."""


class DurabilityError(StorageError):
    """The new object is in place under its final name, but it is not known to be durable."""


class MissingDirectoryError(StorageError, FileNotFoundError):
    """The directory to save into does not exist (MindSpore raises FileNotFoundError)."""


class LayoutError(CheckpointError, ValueError):
    """A layout that does not describe a valid slicing (MindSpore raises ValueError too)."""


class TransformError(CheckpointError, ValueError):
    """A transform that cannot be done as asked (the message says why and how to fix it)."""


class DistributedCheckpointError(CheckpointError, RuntimeError):
    """A distributed save or load failed on one or more ranks (raised on every rank).

    ``failures`` maps each failing rank to what went wrong there.
    """

    def __init__(self, message: str, failures: dict[int, str] | None = None):
        super().__init__(message)
        self.failures = dict(failures or {})
