"""Where a checkpoint path points: :func:`resolve` turns a path or URL into ``(Store, key)``.

* A local path (``str`` or ``os.PathLike``) -> ``(LOCAL, os.path.realpath(path))``.
* ``file://`` URLs (``file:///abs/path``, ``file://localhost/abs/path``) -> the same local store
  and path, with no fsspec needed: local files get the local store's guarantees (fsync, directory
  fsync, stale temp cleanup, memory-mapped reads), which fsspec's local filesystem would not add to.
* Any other ``scheme://...`` (``s3://``, ``gs://``, ``memory://``, chained ``simplecache::s3://``)
  -> an :class:`~mindckpt.storage.fsspec.FsspecStore` over the filesystem that
  ``fsspec.url_to_fs`` builds, so fsspec's ordinary configuration applies (its config files and
  ``FSSPEC_<PROTOCOL>_<OPTION>`` variables, botocore's ``AWS_ENDPOINT_URL``, profiles and
  credentials), with ``storage_options`` passed on to the filesystem.  For S3 the botocore
  timeouts and retries start from :data:`~mindckpt.storage.s3.S3_CONFIG_DEFAULTS`; a
  ``config_kwargs`` from the options or from fsspec's configuration wins, key by key, and
  ``AWS_MAX_ATTEMPTS``/``AWS_RETRY_MODE`` in the environment leave retries to botocore.

Stores are cached per filesystem instance (fsspec caches those per options and thread), so
that repeated saves to one bucket share one connection pool; :func:`set_store_options` sets
the part size, concurrency and read settings of the stores built for a protocol.
"""

from __future__ import annotations

import copy
import os
import re
import threading
import weakref
from typing import Any
from urllib.parse import unquote, urlsplit

from .base import Store
from .local import LOCAL

__all__ = ["resolve", "is_url", "set_store_options", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'mindckpt[remote]'"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_CHAINED = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*::")
_BACKENDS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
             "abfs": "adlfs", "abfss": "adlfs", "adl": "adlfs"}
_stores: weakref.WeakKeyDictionary[Any, Store] = weakref.WeakKeyDictionary()
_stores_lock = threading.Lock()
_store_options: dict[str, dict[str, Any]] = {}


def is_url(target: Any) -> bool:
    """Whether ``target`` is a URL (``scheme://...`` or a chained ``a::b://...``), not a path."""
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    return isinstance(target, str) and bool(_URL.match(target) or _CHAINED.match(target))


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].split("::", 1)[0].lower()


def _file_url_path(url: str) -> str:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(
            f"{url}: a file:// URL names a local path (file:///abs/path); host "
            f"{parts.netloc!r} is not this machine. Mount the share and pass its local path."
        )
    return unquote(parts.path)


def _import_fsspec(url: str) -> Any:
    try:
        import fsspec
    except ImportError as exc:
        raise ImportError(
            f"Reading or writing {url} needs fsspec: {INSTALL_HINT}"
            + _backend_hint(url) + "."
        ) from exc
    return fsspec


def _backend_hint(url: str) -> str:
    backend = _BACKENDS.get(_scheme(url))
    return f" and {backend} (pip install {backend})" if backend else ""


def _s3_options(options: dict[str, Any]) -> dict[str, Any]:
    from fsspec.config import conf

    from .s3 import S3_CONFIG_DEFAULTS

    config = copy.deepcopy(S3_CONFIG_DEFAULTS)  # botocore edits the retries dict it is given
    if "AWS_MAX_ATTEMPTS" in os.environ or "AWS_RETRY_MODE" in os.environ:
        config.pop("retries")
    for source in (conf.get("s3", {}), options):
        config.update(source.get("config_kwargs") or {})
    return {**options, "config_kwargs": config}


def set_store_options(protocol: str, **options: Any) -> None:
    """Settings of the :class:`~mindckpt.storage.fsspec.FsspecStore` that :func:`resolve` builds
    for ``protocol`` from now on (``part_size``, ``max_concurrency``, ``read_chunk``,
    ``readahead``, ``head_bytes``, ``write_strategy``, ``conditional_writes``); no options
    restores the defaults.  Example: ``set_store_options("s3", part_size=64 << 20)`` for
    checkpoint files over 156 GiB (10,000 parts)."""
    from .fsspec import FsspecStore

    if options:  # checked now, not at the next save
        from .fsspec import STRATEGIES

        if options.get("write_strategy", "buffer") not in STRATEGIES:
            raise ValueError(f"write_strategy must be one of {STRATEGIES}, got "
                             f"{options['write_strategy']!r}.")
        FsspecStore(_ProbeFS(protocol), **{**options, "write_strategy": "buffer"})
    with _stores_lock:
        if options:
            _store_options[protocol] = dict(options)
        else:
            _store_options.pop(protocol, None)
        for fs in [fs for fs in _stores if protocol in _protocols(fs)]:
            del _stores[fs]


class _ProbeFS:
    def __init__(self, protocol: str):
        self.protocol = protocol


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return tuple(proto) if isinstance(proto, (tuple, list)) else (str(proto),)


def _store_for(fs: Any) -> Store:
    from .fsspec import FsspecStore

    with _stores_lock:
        store = _stores.get(fs)
        if store is None:
            options = next((_store_options[p] for p in _protocols(fs) if p in _store_options), {})
            store = _stores[fs] = FsspecStore(fs, **options)
        return store


def resolve(target: Any, storage_options: dict[str, Any] | None = None) -> tuple[Store, str]:
    """``(store, key)`` for a checkpoint path or URL (see the module doc).

    ``storage_options`` go to the fsspec filesystem of a URL; they are refused for local paths,
    which have none.
    """
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    if isinstance(target, bytes):
        raise TypeError(f"A checkpoint path must be a str or os.PathLike, not bytes ({target!r}); "
                        "decode it first.")
    if not isinstance(target, str):
        raise TypeError(f"A checkpoint path must be a str, os.PathLike or URL, not "
                        f"{type(target).__name__}.")
    if storage_options is not None and not isinstance(storage_options, dict):
        raise TypeError(f"storage_options must be a dict, not {type(storage_options).__name__}.")
    if not is_url(target):
        path = target
    elif _scheme(target) == "file" and "::" not in target:
        path = _file_url_path(target)
    else:
        return _resolve_remote(target, dict(storage_options or {}))
    if storage_options:
        raise ValueError(
            f"storage_options={storage_options!r} were given for the local path {target}; they "
            "apply to remote URLs (s3://, gs://, ...) only. Drop them for local paths."
        )
    return LOCAL, os.path.realpath(path)


def _resolve_remote(url: str, options: dict[str, Any]) -> tuple[Store, str]:
    fsspec = _import_fsspec(url)
    if _scheme(url) in ("s3", "s3a"):
        options = _s3_options(options)
    try:
        fs, key = fsspec.url_to_fs(url, **options)
    except ImportError as exc:
        raise ImportError(f"Reading or writing {url} needs {INSTALL_HINT}{_backend_hint(url)}: "
                          f"{exc}") from exc
    except ValueError as exc:
        if "Protocol not known" in str(exc):
            raise ValueError(f"{url}: fsspec has no filesystem for the protocol "
                             f"{_scheme(url)!r}; check the URL or install its fsspec backend."
                             ) from exc
        raise
    return _store_for(fs), key
