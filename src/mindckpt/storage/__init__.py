"""Where checkpoint bytes live: the :class:`Store` interface and its backends.

``resolve(path_or_url)`` gives ``(store, key)``; ``mindckpt.storage.fsspec.FsspecStore`` (and
``set_store_options`` in ``mindckpt.storage.urls``) need the ``remote`` extra.
"""

from .base import (
    COMMIT_MARKER,
    INDEX_NAME,
    AtomicWrite,
    ByteSource,
    FileInfo,
    PendingWrite,
    Store,
    Transaction,
    default_durable,
    is_committed,
    set_default_durable,
)
from .local import LOCAL, FileSource, LocalStore
from .memory import BytesSource, MemoryStore
from .urls import is_url, resolve

__all__ = [
    "COMMIT_MARKER",
    "INDEX_NAME",
    "AtomicWrite",
    "ByteSource",
    "BytesSource",
    "FileInfo",
    "FileSource",
    "LocalStore",
    "LOCAL",
    "MemoryStore",
    "PendingWrite",
    "Store",
    "Transaction",
    "default_durable",
    "is_committed",
    "set_default_durable",
    "resolve",
    "is_url",
]
