"""Where checkpoint bytes live: the :class:`Store` interface and its backends."""

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
]
