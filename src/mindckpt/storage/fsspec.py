"""Checkpoints on any fsspec filesystem: :class:`FsspecStore`.

How a write is made atomic depends on the filesystem (``write_strategy``, chosen from the
filesystem's protocol unless given); docs/remote.md states what each one guarantees.

``"multipart"`` (S3 and S3-compatible, through s3fs)
    The object is streamed out as an S3 multipart upload while the checkpoint is produced: the
    bytes are cut into parts of ``part_size`` (>= 5 MiB, 16 MiB by default), at most
    ``max_concurrency`` parts in flight (4), so a save holds at most
    ``(max_concurrency + 2) * part_size`` bytes (96 MiB: the parts in flight, the one being
    filled, the one being handed over) whatever the checkpoint's size.
    ``publish`` completes the upload, the moment S3 makes the whole object visible; ``discard``
    aborts it.  An object smaller than one part is sent as a single PUT at ``publish``.
    ``create_only`` sends ``If-None-Match: *`` (on the PUT, or on the completion, aborting the
    upload when the server refuses it).  Nothing is ever written in place or renamed by copy.
    The S3 calls go straight to s3fs's aiobotocore client (its session, credentials, endpoint
    and ``s3_additional_kwargs``), with botocore's retries only (no s3fs retry loop around
    them) and no listing cache.
``"rename"`` (local and other filesystems with a real rename)
    A temporary ``.{name}.XXXXXXXX.tmp`` beside the target, then ``mv`` over it.  Atomic where
    the filesystem's ``mv`` is a rename (the local filesystem).  On other protocols this is
    used with a warning, because their ``mv`` may be a copy.
``"buffer"`` (``memory://``)
    The bytes are gathered, then put under the key in one assignment (fsspec's memory
    filesystem swaps a whole file object).
``"upload"`` (``gs://``/``gcs://``)
    The filesystem's own resumable upload straight to the key: the object appears when the
    upload is finalized at ``publish``; ``discard`` cancels it (``discard()``) and the file is
    marked closed so that it never finalizes partial data on garbage collection.

Reads (:meth:`FsspecStore.open_read`) are ranged: nothing is downloaded but the spans asked
for.  On S3 the first ``head_bytes`` (1 MiB) come with the request that learns the object's size
and ETag; every later range is asked ``If-Match`` that ETag, so a reader never mixes two
versions of an object (a replaced object raises :class:`StorageError`: open it again).  Large
reads are split into ``read_chunk`` ranges fetched ``max_concurrency`` at a time, each straight
into the caller's buffer; reads that follow each other (a full load) switch on a read-ahead that
starts at 1 MiB and doubles up to ``read_chunk``, ``max_concurrency`` ranges ahead.
"""

from __future__ import annotations

import asyncio
import atexit
import io
import concurrent.futures
import contextlib
import posixpath
import secrets
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from datetime import datetime, timezone
from typing import Any

from ..errors import CheckpointError, CheckpointNotFoundError, MissingDirectoryError, StorageError
from .base import ByteSource, FileInfo, PendingWrite, Store
from .local import TEMP_PATTERN

__all__ = [
    "FsspecStore",
    "UploadInfo",
    "DEFAULT_PART_SIZE",
    "DEFAULT_CONCURRENCY",
    "MIN_PART_SIZE",
    "S3_CONFIG_DEFAULTS",
]

MIN_PART_SIZE = 5 << 20  # S3 refuses smaller parts (EntityTooSmall), except the last
MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 16 << 20
DEFAULT_CONCURRENCY = 4
DEFAULT_READ_CHUNK = 16 << 20
DEFAULT_HEAD_BYTES = 1 << 20
_FIRST_WINDOW = 1 << 20  # read-ahead starts at 1 MiB and doubles up to read_chunk
_SEQ_GAP = 64 << 10  # a read starting at most this far past the previous one follows it
#: botocore settings a store built by :func:`mindckpt.storage.urls.resolve` starts from (a
#: user's ``config_kwargs``, from ``storage_options`` or fsspec's configuration, wins):
#: a refused connection fails in ~2 s, an unreachable endpoint in ~15 s, a stalled one in 3 min.
S3_CONFIG_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 5,
    "read_timeout": 60,
    "retries": {"max_attempts": 3, "mode": "standard"},
}

_S3_PROTOCOLS = {"s3", "s3a"}
_RENAME_PROTOCOLS = {"file", "local"}
_UPLOAD_PROTOCOLS = {"gs", "gcs"}
_STRATEGIES = ("multipart", "rename", "buffer", "upload")
_warned: set[str] = set()


def _protocol(fs: Any) -> str:
    proto = fs.protocol
    return str(proto[0] if isinstance(proto, (tuple, list)) else proto)


def _as_epoch(value: Any) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


# ---------------------------------------------------------------------------------------------
# error translation: every failure names the URL and the cause

def _client_error(exc: BaseException) -> tuple[str, int] | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def _cause(exc: BaseException) -> tuple[str, str]:
    """(kind, text): kind is one of missing, bucket, exists, changed, denied, credentials,
    network, refused, other."""
    name = type(exc).__name__
    ce = _client_error(exc)
    if ce is not None:
        code, status = ce
        msg = str(getattr(exc, "response", {}).get("Error", {}).get("Message", "")) or str(exc)
        if code == "NoSuchBucket":
            return "bucket", "the bucket does not exist"
        if code in ("NoSuchKey", "NotFound", "404") or status == 404:
            return "missing", "the object does not exist"
        if code in ("PreconditionFailed", "412") or status == 412:
            return "precondition", "a conditional request was refused (412 Precondition Failed)"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                    "InvalidToken", "AccessDenied", "AllAccessDisabled") or status == 403:
            return "denied", (f"access was refused ({code or status}: {msg}); check the "
                              "credentials and the bucket's permissions")
        if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
            return "network", f"the server failed ({code or status}: {msg}) after retries"
        return "refused", f"the server refused the request ({code or status}: {msg})"
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return "credentials", ("no usable credentials were found; set AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY (or a profile), pass storage_options="
                               "{'key': ..., 'secret': ...}, or {'anon': True} for a public "
                               "bucket")
    if (name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
                 "ConnectionClosedError", "ServerTimeoutError", "ClientConnectorError",
                 "ServerDisconnectedError", "ClientOSError", "ClientPayloadError")
            or isinstance(exc, (TimeoutError, asyncio.TimeoutError, ConnectionError))):
        return "network", (f"the connection failed or timed out ({name}: {exc}) after retries; "
                           "check the endpoint and the network (timeouts and retries: "
                           "storage_options={'config_kwargs': {...}})")
    if isinstance(exc, FileNotFoundError):
        return "missing", "it does not exist"
    if isinstance(exc, FileExistsError):
        return "exists", "it already exists"
    if isinstance(exc, PermissionError):
        return "denied", f"permission denied ({exc})"
    return "other", f"{name}: {exc}"


def _wrap(exc: BaseException, action: str, url: str, *, reading: bool = False) -> BaseException:
    """A mindckpt error for ``exc`` raised while ``action``-ing ``url``."""
    if isinstance(exc, CheckpointError):
        return exc
    kind, text = _cause(exc)
    if reading and kind == "missing":
        return CheckpointNotFoundError(f"The checkpoint file {url} does not exist; check the URL.")
    tail = "" if reading else " Nothing was replaced: any previous object under that name is unchanged."
    msg = f"Failed to {action} {url}: {text}.{tail}"
    if kind == "bucket":
        return (CheckpointNotFoundError(msg + " Create the bucket first.") if reading
                else MissingDirectoryError(msg + " Create the bucket first."))
    return StorageError(msg)


# ---------------------------------------------------------------------------------------------
# S3: a thin layer over s3fs's aiobotocore client, run on fsspec's IO loop

class _S3:
    def __init__(self, fs: Any):
        if getattr(fs, "asynchronous", False):
            raise ValueError(
                "FsspecStore needs a synchronous S3FileSystem (asynchronous=False): its calls "
                "run on fsspec's IO thread."
            )
        self.fs = fs

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.fs.loop  # type: ignore[no-any-return]

    @staticmethod
    def split(key: str) -> tuple[str, str]:
        bucket, _, obj = key.lstrip("/").partition("/")
        return bucket, obj

    async def call(self, method: str, **kwargs: Any) -> Any:
        client = await self.fs.set_session()
        fn = getattr(client, method)
        helper = getattr(self.fs, "_get_s3_method_kwargs", None)
        if helper is not None:  # s3fs's s3_additional_kwargs (SSE, requester pays)
            kwargs = helper(fn, **kwargs)
        return await fn(**kwargs)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.submit(coro).result()

    async def get_range(self, bucket: str, obj: str, start: int, stop: int,
                        etag: str | None, into: memoryview | None = None) -> Any:
        kw: dict[str, Any] = {"Range": f"bytes={start}-{stop - 1}"}
        if etag:
            kw["IfMatch"] = etag
        resp = await self.call("get_object", Bucket=bucket, Key=obj, **kw)
        body = resp["Body"]
        try:
            if into is None:
                return resp, await body.read()
            done = 0
            while done < len(into):
                chunk = await body.read(min(len(into) - done, 1 << 20))
                if not chunk:
                    break
                into[done:done + len(chunk)] = chunk
                done += len(chunk)
            return done
        finally:
            body.close()


# ---------------------------------------------------------------------------------------------
# pending writes

_live: weakref.WeakSet[_MultipartPending] = weakref.WeakSet()
_live_lock = threading.Lock()


@atexit.register
def _abort_live_uploads() -> None:
    """At interpreter exit (after an unhandled exception, ``sys.exit``), abort what is open."""
    with _live_lock:
        pending = list(_live)
    for p in pending:
        with contextlib.suppress(BaseException):
            p.discard()


class _MultipartPending(PendingWrite):
    def __init__(self, store: FsspecStore, key: str, create_only: bool = False):
        self.s3 = _need_s3(store._s3)
        self.store = store
        self.url = store.describe(key)
        self.bucket, self.obj = self.s3.split(key)
        if not self.bucket or not self.obj:
            raise StorageError(f"Cannot save {self.url}: an S3 key is 's3://bucket/name'.")
        self.create_only = create_only
        self.part_size = store.part_size
        self.buf: bytearray | None = None
        self.fill = 0
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.inflight: deque[tuple[int, concurrent.futures.Future[Any]]] = deque()
        self.size = 0
        self.state = "open"
        with _live_lock:
            _live.add(self)

    # -- write
    def write(self, data: Any) -> None:
        if self.state != "open":
            raise StorageError(f"write to {self.url} after it was {self.state}")
        mv = memoryview(data).cast("B")
        self.size += len(mv)
        while mv:
            if self.buf is None:
                self.buf = bytearray()
            take = min(len(mv), self.part_size - self.fill)
            if len(self.buf) == self.fill:  # the first part grows the buffer (small objects
                self.buf += mv[:take]       # stay small); later parts reuse it in place
            else:
                self.buf[self.fill:self.fill + take] = mv[:take]
            self.fill += take
            mv = mv[take:]
            if self.fill == self.part_size:
                self._ship()

    def _body(self) -> bytes:
        # botocore takes bytes (no memoryview), and copies a bytearray again on its way out
        body = bytes(memoryview(self.buf)[:self.fill]) if self.buf is not None else b""
        self.fill = 0
        return body

    def _start(self) -> None:
        try:
            resp = self.s3.run(self.s3.call("create_multipart_upload", Bucket=self.bucket,
                                            Key=self.obj))
        except Exception as exc:
            raise _wrap(exc, "save", self.url) from exc
        self.upload_id = str(resp["UploadId"])

    def _ship(self) -> None:
        if self.upload_id is None:
            self._start()
        number = len(self.parts) + len(self.inflight) + 1
        if number > MAX_PARTS:
            raise StorageError(
                f"Failed to save {self.url}: it needs more than {MAX_PARTS} parts of "
                f"{self.part_size} bytes; pass a larger part_size to FsspecStore."
            )
        while len(self.inflight) >= self.store.max_concurrency:
            self._reap()
        body = self._body()
        fut = self.s3.submit(self.s3.call(
            "upload_part", Bucket=self.bucket, Key=self.obj, UploadId=self.upload_id,
            PartNumber=number, Body=io.BytesIO(body)))
        self.inflight.append((number, fut))

    def _reap(self) -> None:
        number, fut = self.inflight.popleft()
        try:
            resp = fut.result()
        except Exception as exc:
            raise _wrap(exc, "save", self.url) from exc
        self.parts.append({"PartNumber": number, "ETag": resp["ETag"]})

    # -- the sequence
    def sync(self) -> None:
        """Nothing to do: S3 acknowledges a part once it is stored redundantly."""

    def publish(self) -> None:
        if self.state != "open":
            raise StorageError(f"{self.url} was {self.state}")
        match = {"IfNoneMatch": "*"} if self.create_only else {}
        if self.upload_id is None:
            body = self._body()
            self.buf = None
            try:
                self.s3.run(self.s3.call("put_object", Bucket=self.bucket, Key=self.obj,
                                         Body=body, **match))
            except Exception as exc:
                raise self._publish_error(exc) from exc
            self.state = "published"
            return
        if self.fill or not (self.parts or self.inflight):
            self._ship()
        self.buf = None
        while self.inflight:
            self._reap()
        try:
            self.s3.run(self.s3.call(
                "complete_multipart_upload", Bucket=self.bucket, Key=self.obj,
                UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}, **match))
        except Exception as exc:
            raise self._publish_error(exc) from exc  # the caller's discard aborts the upload
        self.state = "published"
        self.upload_id = None

    def _publish_error(self, exc: BaseException) -> BaseException:
        if self.create_only and _cause(exc)[0] == "precondition":
            return StorageError(f"{self.url} already exists; refusing to overwrite it.")
        return _wrap(exc, "save", self.url)

    def sync_parent(self) -> None:
        """Nothing to do: a completed upload is the durable publication."""

    def discard(self) -> None:
        if self.state == "discarded":
            return
        was_published = self.state == "published"
        self.state = "discarded"
        with _live_lock:
            _live.discard(self)
        self.buf, self.fill = None, 0
        futures = [f for _, f in self.inflight]
        self.inflight.clear()
        for f in futures:
            f.cancel()
        concurrent.futures.wait(futures, timeout=30)
        if self.upload_id is None or was_published:
            return
        upload_id, self.upload_id = self.upload_id, None
        try:
            self.s3.run(self.s3.call("abort_multipart_upload", Bucket=self.bucket, Key=self.obj,
                                     UploadId=upload_id))
        except Exception as exc:
            if _cause(exc)[0] == "missing":  # already completed or aborted
                return
            warnings.warn(
                f"Aborting the unfinished upload {upload_id} of {self.url} failed ({exc}); it "
                "stays listed (FsspecStore.incomplete_uploads) until aborted "
                "(abort_incomplete_uploads) or a bucket lifecycle rule removes it.",
                RuntimeWarning, stacklevel=3)

    def written(self) -> int:
        return self.size


class _RenamePending(PendingWrite):
    def __init__(self, store: FsspecStore, key: str):
        self.store = store
        self.fs = store.fs
        self.key = key
        parent, base = posixpath.split(key)
        self.parent = parent
        self.tmp = posixpath.join(parent, f".{base}.{secrets.token_hex(4)}.tmp")
        try:
            if parent and not self.fs.isdir(parent):
                raise MissingDirectoryError(
                    f"Cannot save {store.describe(key)}: its directory "
                    f"{store.describe(parent)} does not exist; create it first.")
            self.f: Any = self.fs.open(self.tmp, "wb")
        except CheckpointError:
            raise
        except Exception as exc:
            raise _wrap(exc, "save", store.describe(key)) from exc
        self.size = 0

    def write(self, data: Any) -> None:
        try:
            self.f.write(data)
        except Exception as exc:
            raise _wrap(exc, "save", self.store.describe(self.key)) from exc
        self.size += memoryview(data).nbytes

    def sync(self) -> None:
        self.f.flush()
        fileno = getattr(self.f, "fileno", None)
        if fileno is not None:
            import os
            with contextlib.suppress(OSError, ValueError, AttributeError,
                                     NotImplementedError, TypeError):
                fd = fileno()
                os.fsync(fd)

    def publish(self) -> None:
        self.f.close()
        self.fs.mv(self.tmp, self.key)

    def sync_parent(self) -> None:
        if self.store.write_strategy == "rename" and _protocol(self.fs) in _RENAME_PROTOCOLS:
            from .local import fsync_dir

            fsync_dir(self.fs._strip_protocol(self.parent) or "/")

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.f.close()
        with contextlib.suppress(Exception):
            self.fs.rm_file(self.tmp)

    def written(self) -> int:
        return self.size


class _BufferPending(PendingWrite):
    def __init__(self, store: FsspecStore, key: str):
        self.store = store
        self.key = key
        self.buf: bytearray | None = bytearray()

    def write(self, data: Any) -> None:
        if self.buf is None:
            raise StorageError(f"write to {self.store.describe(self.key)} after it was closed")
        self.buf += memoryview(data).cast("B")

    def sync(self) -> None:
        pass

    def publish(self) -> None:
        if self.buf is None:
            raise StorageError(f"{self.store.describe(self.key)} was discarded")
        data, self.buf = bytes(self.buf), None
        with self.store._lock:
            self.store.fs.pipe_file(self.key, data)

    def sync_parent(self) -> None:
        pass

    def discard(self) -> None:
        self.buf = None

    def written(self) -> int:
        return len(self.buf or b"")


class _UploadPending(PendingWrite):
    def __init__(self, store: FsspecStore, key: str, create_only: bool = False):
        self.store = store
        self.key = key
        self.create_only = create_only
        try:  # "xb": gcsfs uploads with ifGenerationMatch=0, a server-side create-only
            self.f: Any = store.fs.open(key, "xb" if create_only else "wb",
                                        block_size=store.part_size)
        except Exception as exc:
            raise _wrap(exc, "save", store.describe(key)) from exc
        self.size = 0

    def write(self, data: Any) -> None:
        try:
            self.f.write(data)
        except Exception as exc:
            raise _wrap(exc, "save", self.store.describe(self.key)) from exc
        self.size += memoryview(data).nbytes

    def sync(self) -> None:
        pass

    def publish(self) -> None:
        try:
            self.f.close()
        except Exception as exc:
            if self.create_only and _cause(exc)[0] in ("precondition", "exists"):
                raise StorageError(f"{self.store.describe(self.key)} already exists; refusing "
                                   "to overwrite it.") from exc
            raise _wrap(exc, "save", self.store.describe(self.key)) from exc

    def sync_parent(self) -> None:
        pass

    def discard(self) -> None:
        # never close(): fsspec's buffered files finalize (publish) whatever was written
        with contextlib.suppress(Exception):
            self.f.discard()
        self.f.closed = True
        self.f.buffer = None

    def written(self) -> int:
        return self.size


# ---------------------------------------------------------------------------------------------
# reads

class _S3Source(ByteSource):
    """Ranged GETs of one S3 object, pinned to the ETag seen at open."""

    def __init__(self, store: FsspecStore, key: str):
        s3 = self.s3 = _need_s3(store._s3)
        self.store = store
        self.name = store.describe(key)
        self.bucket, self.obj = s3.split(key)
        if not self.obj:
            raise CheckpointNotFoundError(f"{self.name} names a bucket, not a checkpoint file.")
        self.bytes_fetched = 0
        self.requests = 0
        self.etag: str | None = None
        self.head = b""
        self._lock = threading.Lock()
        self._last = (0, 0)  # the span of the last read outside the head
        self._run = 0  # how many reads in a row followed the one before
        self._segs: deque[tuple[int, int, concurrent.futures.Future[Any]]] = deque()
        self._window = _FIRST_WINDOW
        try:
            if store.head_bytes:
                resp, data = s3.run(s3.get_range(self.bucket, self.obj, 0, store.head_bytes, None))
                total = str(resp.get("ContentRange", "")).rpartition("/")[2]
                self.size = int(total) if total.isdigit() else int(resp["ContentLength"])
                self.etag = resp.get("ETag")
                self.head = data
                self.requests += 1
                self.bytes_fetched += len(data)
            else:
                self._stat()
        except CheckpointError:
            raise
        except Exception as exc:
            ce = _client_error(exc)
            if ce is not None and ce[0] == "InvalidRange":
                self._stat()  # an empty object has no byte 0
            else:
                raise _wrap(exc, "read", self.name, reading=True) from exc

    def _stat(self) -> None:
        try:
            resp = self.s3.run(self.s3.call("head_object", Bucket=self.bucket, Key=self.obj))
        except Exception as exc:
            raise _wrap(exc, "read", self.name, reading=True) from exc
        self.requests += 1
        self.size = int(resp["ContentLength"])
        self.etag = resp.get("ETag")
        self.head = b""

    def readinto_at(self, mv: memoryview, offset: int) -> int:
        return self.readinto(mv, offset)

    def readinto(self, mv: Any, offset: int) -> int:
        view = memoryview(mv).cast("B")
        n = max(0, min(len(view), self.size - offset))
        if n == 0:
            return 0
        done = 0
        if offset < len(self.head):
            done = min(n, len(self.head) - offset)
            view[:done] = self.head[offset:offset + done]
        if done < n:
            with self._lock:
                sequential = self._note(offset + done, offset + n)
                if sequential:
                    self._from_segments(view[done:n], offset + done)
            if not sequential:
                self._direct(view[done:n], offset + done)
        return n

    # -- access pattern: reads that follow each other switch on a growing read-ahead
    def _note(self, start: int, stop: int) -> bool:
        follows = self._last[0] <= start <= self._last[1] + _SEQ_GAP
        self._last = (start, stop)
        self._run = self._run + 1 if follows else 0
        if self._run < 2:
            self._drop_segments()
            return False
        return True

    def _drop_segments(self) -> None:
        for _a, _b, fut in self._segs:
            fut.cancel()
        self._segs.clear()
        self._window = _FIRST_WINDOW

    def _issue(self, start: int) -> None:
        stop = min(self.size, start + self._window)
        self._window = min(self._window * 2, self.store.read_chunk)
        fut = self.s3.submit(self.s3.get_range(self.bucket, self.obj, start, stop, self.etag))
        self._segs.append((start, stop, fut))
        self.requests += 1

    def _from_segments(self, view: memoryview, start: int) -> None:
        stop = start + len(view)
        while self._segs and self._segs[0][1] <= start:
            self._segs.popleft()
        if self._segs and not self._segs[0][0] <= start:
            self._drop_segments()
        pos = start
        while pos < stop:
            tail = self._segs[-1][1] if self._segs else pos
            while len(self._segs) < self.store.max_concurrency + 1 and tail < self.size:
                self._issue(tail)
                tail = self._segs[-1][1]
            a, b, fut = self._segs[0]
            data = self._result(fut, a)
            if len(data) != b - a:
                raise self._short(len(data), b - a, a)
            take = min(stop, b) - pos
            view[pos - start:pos - start + take] = memoryview(data)[pos - a:pos - a + take]
            pos += take
            if pos >= b:
                self._segs.popleft()

    def _result(self, fut: concurrent.futures.Future[Any], at: int) -> bytes:
        try:
            _resp, data = fut.result()
        except Exception as exc:
            self._drop_segments()
            raise self._read_error(exc) from exc
        if not getattr(fut, "_mindckpt_counted", False):
            fut._mindckpt_counted = True  # type: ignore[attr-defined]
            self.bytes_fetched += len(data)
        return data  # type: ignore[no-any-return]

    def _direct(self, view: memoryview, start: int) -> None:
        stop = start + len(view)
        chunk = self.store.read_chunk
        spans = [(a, min(a + chunk, stop)) for a in range(start, stop, chunk)]
        limit = self.store.max_concurrency

        async def fetch_all() -> list[int]:
            sem = asyncio.Semaphore(limit)

            async def one(a: int, b: int) -> int:
                async with sem:
                    return int(await self.s3.get_range(
                        self.bucket, self.obj, a, b, self.etag, into=view[a - start:b - start]))
            return list(await asyncio.gather(*(one(a, b) for a, b in spans)))

        try:
            got = sum(self.s3.run(fetch_all()))
        except Exception as exc:
            raise self._read_error(exc) from exc
        with self._lock:
            self.requests += len(spans)
            self.bytes_fetched += got
        if got != stop - start:
            raise self._short(got, stop - start, start)

    def _read_error(self, exc: BaseException) -> BaseException:
        if _cause(exc)[0] == "precondition":
            return StorageError(f"{self.name} was replaced while it was being read; open it again.")
        return _wrap(exc, "read", self.name, reading=True)

    def _short(self, got: int, want: int, at: int) -> StorageError:
        return StorageError(
            f"Failed to read {self.name}: the server sent {got} of {want} bytes at byte {at}; "
            "the connection was cut. Read it again.")

    def close(self) -> None:
        with self._lock:
            self._drop_segments()


class _FileSource(ByteSource):
    """Positional reads through one open fsspec file (local: the same inode throughout)."""

    def __init__(self, store: FsspecStore, key: str):
        self.name = store.describe(key)
        try:
            self.f: Any = store.fs.open(key, "rb")
            self.size = self._size_of_open_file(store, key)
        except Exception as exc:
            raise _wrap(exc, "read", self.name, reading=True) from exc
        self._lock = threading.Lock()

    def _size_of_open_file(self, store: FsspecStore, key: str) -> int:
        size = getattr(self.f, "size", None)  # fsspec's buffered files: from the open
        if isinstance(size, int):
            return size
        try:
            import os

            return os.fstat(self.f.fileno()).st_size  # the inode that was opened
        except (AttributeError, OSError, ValueError, NotImplementedError, TypeError):
            return int(store.fs.size(key))

    def readinto_at(self, mv: memoryview, offset: int) -> int:
        if offset >= self.size:
            return 0
        with self._lock:
            self.f.seek(offset)
            readinto = getattr(self.f, "readinto", None)
            if readinto is not None:
                return int(readinto(mv) or 0)
            data = self.f.read(len(mv))
        mv[:len(data)] = data
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.f.close()


class _SnapshotSource(ByteSource):
    """An in-memory object as it was at open (the memory filesystem)."""

    def __init__(self, store: FsspecStore, key: str):
        self.name = store.describe(key)
        try:
            with store._lock:
                data = store.fs.cat_file(key)
        except Exception as exc:
            raise _wrap(exc, "read", self.name, reading=True) from exc
        self._mv = memoryview(data).cast("B")
        self.size = len(self._mv)

    def readinto_at(self, mv: memoryview, offset: int) -> int:
        part = self._mv[offset:offset + len(mv)]
        mv[:len(part)] = part
        return len(part)

    def mapping(self) -> memoryview | None:
        return self._mv.toreadonly()


# ---------------------------------------------------------------------------------------------

class UploadInfo:
    """An unfinished multipart upload (a writer died, or its abort failed)."""

    def __init__(self, key: str, upload_id: str, initiated: float):
        self.key = key
        self.upload_id = upload_id
        self.initiated = initiated

    def __repr__(self) -> str:
        return f"UploadInfo(key={self.key!r}, upload_id={self.upload_id!r}, initiated={self.initiated})"


_Infos = list[FileInfo]
_Uploads = list[UploadInfo]
_Items = list[dict[str, Any]]


class FsspecStore(Store):
    """A :class:`~mindckpt.storage.base.Store` over an fsspec filesystem ``fs``.

    Keys are the filesystem's paths (``bucket/run1/net.ckpt`` for S3); messages name them as
    URLs.  ``part_size`` (>= 5 MiB) and ``max_concurrency`` bound the memory of a multipart
    save ((max_concurrency + 2) * part_size) and of a read ((max_concurrency + 1) *
    read_chunk of read-ahead).  ``write_strategy`` overrides the choice made from the protocol (see the
    module doc); ``conditional_writes=False`` makes ``create_only`` check, then write, for
    S3-compatible servers that do not honour ``If-None-Match``.
    """

    def __init__(self, fs: Any, *, part_size: int = DEFAULT_PART_SIZE,
                 max_concurrency: int = DEFAULT_CONCURRENCY,
                 read_chunk: int = DEFAULT_READ_CHUNK, head_bytes: int = DEFAULT_HEAD_BYTES,
                 write_strategy: str | None = None, conditional_writes: bool = True):
        if int(part_size) < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (5 MiB, S3's "
                             f"smallest part), got {part_size}.")
        if int(max_concurrency) < 1 or int(read_chunk) < 1 or int(head_bytes) < 0:
            raise ValueError("max_concurrency and read_chunk must be >= 1, head_bytes >= 0; got "
                             f"{max_concurrency}, {read_chunk}, {head_bytes}.")
        self.fs = fs
        self.protocol = _protocol(fs)
        self.part_size = int(part_size)
        self.max_concurrency = int(max_concurrency)
        self.read_chunk = int(read_chunk)
        self.head_bytes = int(head_bytes)
        self.conditional_writes = bool(conditional_writes)
        self._lock = threading.Lock()
        is_s3 = self.protocol in _S3_PROTOCOLS and hasattr(fs, "set_session")
        self._s3 = _S3(fs) if is_s3 else None
        if write_strategy is None:
            write_strategy = self._default_strategy()
        if write_strategy not in _STRATEGIES:
            raise ValueError(f"write_strategy must be one of {_STRATEGIES}, got {write_strategy!r}.")
        if write_strategy == "multipart" and self._s3 is None:
            raise ValueError(f"write_strategy='multipart' needs an S3 filesystem (s3fs), not "
                             f"{type(fs).__name__}.")
        self.write_strategy = write_strategy
        #: whether a published object survives a crash (object stores, fsync'ed local files)
        self.durable_capable = write_strategy != "buffer"

    def _default_strategy(self) -> str:
        if self._s3 is not None:
            return "multipart"
        if self.protocol in _RENAME_PROTOCOLS:
            return "rename"
        if self.protocol == "memory":
            return "buffer"
        if self.protocol in _UPLOAD_PROTOCOLS:
            return "upload"
        if self.protocol not in _warned:
            _warned.add(self.protocol)
            warnings.warn(
                f"mindckpt does not know whether {self.protocol}:// can replace a file "
                "atomically; it writes a temporary file and renames it (fs.mv). If that "
                "filesystem's mv is a copy, a reader may see a partial checkpoint during a save. "
                "See docs/remote.md.", RuntimeWarning, stacklevel=3)
        return "rename"

    # -- naming
    def describe(self, key: str) -> str:
        try:
            return str(self.fs.unstrip_protocol(key))
        except Exception:
            return f"{self.protocol}://{key}"

    def join(self, *parts: str) -> str:
        return posixpath.join(*parts)

    def parent(self, key: str) -> str:
        return posixpath.dirname(key.rstrip("/"))

    # -- writes
    def _begin(self, key: str, mode: int) -> PendingWrite:
        return self._pending(key, create_only=False)

    def _pending(self, key: str, create_only: bool) -> PendingWrite:
        if self.write_strategy == "multipart":
            return _MultipartPending(self, key, create_only=create_only)
        if self.write_strategy == "buffer":
            return _BufferPending(self, key)
        if self.write_strategy == "upload":
            return _UploadPending(self, key, create_only=create_only)
        return _RenamePending(self, key)

    def create_only(self, key: str, data: bytes, *, durable: bool | None = None) -> None:
        """Write ``key`` only if it does not exist: ``If-None-Match: *`` on S3, mode ``"xb"``
        (``ifGenerationMatch=0``) on GCS, a hard link (local), a check under the store's lock
        (memory); elsewhere (and with ``conditional_writes=False``) a check, then the write."""
        if self.write_strategy in ("multipart", "upload") and self.conditional_writes:
            from .base import AtomicWrite

            with AtomicWrite(self._pending(key, create_only=True), self.describe(key),
                             durable) as w:
                w.write(data)
            return
        if self.write_strategy == "rename" and self.protocol in _RENAME_PROTOCOLS:
            self._create_only_link(key, data, durable)
            return
        with self._lock if self.write_strategy == "buffer" else contextlib.nullcontext():
            if self.exists(key):
                raise StorageError(f"{self.describe(key)} already exists; refusing to overwrite it.")
            if self.write_strategy == "buffer":
                self.fs.pipe_file(key, bytes(data))
                return
        self.write_bytes(key, data, durable=durable)

    def _create_only_link(self, key: str, data: bytes, durable: bool | None) -> None:
        import os

        from .local import fsync_dir

        path = self.fs._strip_protocol(key)
        directory = os.path.dirname(path) or "."
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                if durable is None or durable:
                    os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # fails if the target exists: race-free create-only
            except FileExistsError:
                raise StorageError(f"{self.describe(key)} already exists; refusing to overwrite "
                                   "it.") from None
        except CheckpointError:
            raise
        except OSError as exc:
            raise _wrap(exc, "save", self.describe(key)) from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if durable is None or durable:
            fsync_dir(directory)

    # -- reads
    def open_read(self, key: str) -> ByteSource:
        if self._s3 is not None:
            return _S3Source(self, key)
        if self.write_strategy == "buffer":
            return _SnapshotSource(self, key)
        if not self.exists(key):
            raise self.missing(key)
        if self.isdir(key):
            raise CheckpointNotFoundError(
                f"The checkpoint file {self.describe(key)} is a directory, not a checkpoint file.")
        return _FileSource(self, key)

    # -- namespace
    def list(self, directory: str) -> _Infos:
        if self._s3 is not None:
            return self._s3_list(directory)
        try:
            self.fs.invalidate_cache(directory)
            entries = self.fs.ls(directory, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except Exception as exc:
            raise _wrap(exc, "list", self.describe(directory)) from exc
        out = []
        for e in entries:
            name = str(e["name"])
            if e.get("type") != "file" or TEMP_PATTERN.match(posixpath.basename(name)):
                continue
            mtime = _as_epoch(e.get("mtime") or e.get("LastModified") or e.get("created")
                              or e.get("updated"))
            key = posixpath.join(directory, posixpath.basename(name))
            out.append(FileInfo(key, int(e.get("size") or 0), mtime))
        return out

    def _s3_list(self, directory: str) -> _Infos:
        s3 = _need_s3(self._s3)
        bucket, prefix = s3.split(directory.rstrip("/"))
        prefix = prefix + "/" if prefix else ""

        async def pages() -> _Items:
            items: _Items = []
            token: dict[str, str] = {}
            while True:
                resp = await s3.call("list_objects_v2", Bucket=bucket, Prefix=prefix,
                                     Delimiter="/", **token)
                items.extend(resp.get("Contents", []))
                if not resp.get("IsTruncated"):
                    return items
                token = {"ContinuationToken": resp["NextContinuationToken"]}

        try:
            items = s3.run(pages())
        except Exception as exc:
            kind = _cause(exc)[0]
            if kind in ("bucket", "missing"):
                return []
            raise _wrap(exc, "list", self.describe(directory)) from exc
        base = directory.rstrip("/")
        return [FileInfo(posixpath.join(base, str(it["Key"])[len(prefix):]), int(it["Size"]),
                         _as_epoch(it.get("LastModified")))
                for it in items if not str(it["Key"]).endswith("/")]

    def remove(self, key: str) -> None:
        if not self.exists(key):
            raise self.missing(key)
        try:
            if self._s3 is not None:
                bucket, obj = self._s3.split(key)
                self._s3.run(self._s3.call("delete_object", Bucket=bucket, Key=obj))
            else:
                self.fs.rm_file(key)
                self.fs.invalidate_cache(self.parent(key))
        except Exception as exc:
            raise _wrap(exc, "remove", self.describe(key)) from exc

    def exists(self, key: str) -> bool:
        if self._s3 is not None:
            bucket, obj = self._s3.split(key)
            if not obj:
                return self._s3_bucket_exists(bucket)
            try:
                self._s3.run(self._s3.call("head_object", Bucket=bucket, Key=obj))
                return True
            except Exception as exc:
                if _cause(exc)[0] in ("missing", "bucket"):
                    return False
                raise _wrap(exc, "check", self.describe(key), reading=True) from exc
        try:
            self.fs.invalidate_cache(key)
            return bool(self.fs.exists(key))
        except Exception as exc:
            raise _wrap(exc, "check", self.describe(key), reading=True) from exc

    def _s3_bucket_exists(self, bucket: str) -> bool:
        s3 = _need_s3(self._s3)
        try:
            s3.run(s3.call("head_bucket", Bucket=bucket))
            return True
        except Exception as exc:
            if _cause(exc)[0] in ("missing", "bucket"):
                return False
            raise _wrap(exc, "check", self.describe(bucket), reading=True) from exc

    def isdir(self, key: str) -> bool:
        if self._s3 is not None:
            bucket, obj = self._s3.split(key.rstrip("/"))
            if not obj:
                return self._s3_bucket_exists(bucket)
            s3 = self._s3
            try:
                resp = s3.run(s3.call("list_objects_v2", Bucket=bucket, Prefix=obj + "/",
                                      MaxKeys=1))
            except Exception as exc:
                if _cause(exc)[0] in ("missing", "bucket"):
                    return False
                raise _wrap(exc, "check", self.describe(key), reading=True) from exc
            return bool(resp.get("KeyCount") or resp.get("Contents"))
        try:
            self.fs.invalidate_cache(key)
            return bool(self.fs.isdir(key))
        except Exception:
            return False

    def makedirs(self, directory: str) -> None:
        """Create ``directory`` where the filesystem has directories; on S3 check the bucket
        (prefixes need no creating), so that a missing bucket fails before a save starts."""
        if self._s3 is not None:
            bucket, _ = self._s3.split(directory)
            if not self._s3_bucket_exists(bucket):
                raise MissingDirectoryError(
                    f"Cannot save into {self.describe(directory)}: the bucket {bucket} does not "
                    "exist. Create the bucket first.")
            return
        if self.write_strategy == "buffer" and self.protocol == "memory":
            return
        try:
            self.fs.makedirs(directory, exist_ok=True)
        except Exception as exc:
            raise _wrap(exc, "create", self.describe(directory)) from exc

    # -- crashed uploads
    def incomplete_uploads(self, directory: str) -> _Uploads:
        """Unfinished multipart uploads of objects directly under ``directory`` (S3 only):
        writers killed mid-save leave them (they are invisible, but billed)."""
        s3 = self._s3
        if s3 is None:
            return []
        bucket, prefix = s3.split(directory.rstrip("/"))
        prefix = prefix + "/" if prefix else ""

        async def pages() -> _Items:
            items: _Items = []
            marker: dict[str, str] = {}
            while True:
                resp = await s3.call("list_multipart_uploads", Bucket=bucket, Prefix=prefix,
                                     Delimiter="/", **marker)
                items.extend(resp.get("Uploads", []))
                if not resp.get("IsTruncated"):
                    return items
                marker = {"KeyMarker": resp["NextKeyMarker"],
                          "UploadIdMarker": resp["NextUploadIdMarker"]}

        try:
            items = s3.run(pages())
        except Exception as exc:
            raise _wrap(exc, "list the uploads of", self.describe(directory)) from exc
        return [UploadInfo(f"{bucket}/{it['Key']}", str(it["UploadId"]),
                           _as_epoch(it.get("Initiated"))) for it in items]

    def abort_incomplete_uploads(self, directory: str, older_than: float = 24 * 3600.0,
                                 now: Callable[[], float] | None = None) -> _Uploads:
        """Abort the unfinished uploads under ``directory`` started more than ``older_than``
        seconds ago (a live writer's upload is younger than its save); return them."""
        import time

        t = (now or time.time)()
        s3 = self._s3
        aborted = []
        for up in self.incomplete_uploads(directory):
            if t - up.initiated < older_than or s3 is None:
                continue
            bucket, obj = s3.split(up.key)
            try:
                s3.run(s3.call("abort_multipart_upload", Bucket=bucket, Key=obj,
                               UploadId=up.upload_id))
            except Exception as exc:
                if _cause(exc)[0] != "missing":
                    raise _wrap(exc, "abort an upload of", self.describe(up.key)) from exc
            aborted.append(up)
        return aborted


def _need_s3(s3: _S3 | None) -> _S3:
    if s3 is None:  # pragma: no cover - callers check the strategy first
        raise StorageError("this operation needs an S3 filesystem")
    return s3
