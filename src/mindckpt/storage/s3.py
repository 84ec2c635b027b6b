"""S3 for :class:`~mindckpt.storage.fsspec.FsspecStore`: multipart writes, ETag-pinned ranged
reads, fresh listings, crashed uploads; straight to s3fs's aiobotocore client on fsspec's IO loop.

Writes (:class:`MultipartPending`): the bytes go into one reused part buffer; each full part is
handed to ``UploadPart`` as an in-memory stream (the HTTP client reads it in small pieces: no
copies), at most ``max_concurrency`` parts in flight, so a save holds at most
``(max_concurrency + 2) * part_size`` bytes.  ``publish`` = ``CompleteMultipartUpload`` (or one
``PutObject`` for an object under one part), ``discard`` = ``AbortMultipartUpload``; create-only
sends ``If-None-Match: *`` and a refused completion is aborted.  Uploads still open at interpreter
exit are aborted.

Reads (:class:`S3Source`): the first ``head_bytes`` come with the size and ETag; later ranges ask
``If-Match`` that ETag.  Reads that follow each other switch on a read-ahead that starts at
1 MiB and doubles up to half of ``readahead`` (the bytes fetched ahead, at most); isolated reads fetch
their span only, large ones in parallel ranges straight into the caller's buffer.

Retries are botocore's (configured through the filesystem's ``config_kwargs``); s3fs's own
retry loop and listing cache are not used.
"""

from __future__ import annotations

import builtins
import asyncio
import atexit
import concurrent.futures
import contextlib
import io
import os
import posixpath
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from ..errors import CheckpointError, CheckpointNotFoundError, MissingDirectoryError, StorageError
from ._remote import as_epoch, cause, client_error, wrap
from .base import ByteSource, FileInfo, PendingWrite



class FsspecStore(Protocol):
    """What the S3 backend uses of its :class:`~mindckpt.storage.fsspec.FsspecStore` (named
    here, not imported, so that the two modules do not import each other)."""

    part_size: int
    max_concurrency: int
    read_chunk: int
    readahead: int
    head_bytes: int

    def describe(self, key: str) -> str: ...

    def _s3_client(self) -> S3Client: ...

__all__ = ["S3Client", "S3Objects", "MultipartPending", "S3Source", "UploadInfo",
           "MIN_PART_SIZE", "MAX_PARTS", "S3_CONFIG_DEFAULTS"]

MIN_PART_SIZE = 5 << 20  # S3 refuses smaller parts (EntityTooSmall), except the last
MAX_PARTS = 10_000
_FIRST_WINDOW = 1 << 20  # read-ahead ranges start at 1 MiB, double up to half of readahead
_SEQ_GAP = 64 << 10  # a read starting at most this far past the previous one follows it
#: botocore settings a store built by :func:`mindckpt.storage.urls.resolve` starts from (a
#: user's ``config_kwargs``, from ``storage_options`` or fsspec's configuration, wins):
#: 3 attempts in all; a refused connection fails in seconds, an unreachable endpoint in ~15 s,
#: a stalled one in ~3 min (and at the latest at S3Client.deadline()).
S3_CONFIG_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 5,
    "read_timeout": 60,
    "retries": {"total_max_attempts": 3, "mode": "standard"},
}


_Infos = list[FileInfo]
_Items = list[dict[str, Any]]


class S3Client:
    """Calls of one S3FileSystem's client, on fsspec's IO loop.

    fsspec's filesystems are not fork-safe (their loop thread stays in the parent): a forked
    child (a process-mode async save) gets a filesystem of its own, built from the same
    options."""

    def __init__(self, fs: Any):
        if getattr(fs, "asynchronous", False):
            raise ValueError(
                "FsspecStore needs a synchronous S3FileSystem (asynchronous=False): its calls "
                "run on fsspec's IO thread."
            )
        self._fs = fs
        self._pid = os.getpid()

    @property
    def fs(self) -> Any:
        if self._pid != os.getpid():
            fs = self._fs
            self._fs = type(fs)(*getattr(fs, "storage_args", ()),
                                **getattr(fs, "storage_options", {}))
            self._pid = os.getpid()
        return self._fs

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.fs.loop  # type: ignore[no-any-return]

    @staticmethod
    def split(key: str) -> tuple[str, str]:
        bucket, _, obj = key.lstrip("/").partition("/")
        return bucket, obj

    def deadline(self) -> float:
        """Seconds one call may take, retries included: botocore's timeouts do not cover every
        wait (a server that accepts a PUT and never answers its ``Expect: 100-continue``)."""
        cfg = getattr(self._fs, "config_kwargs", None) or {}
        connect = float(cfg.get("connect_timeout", getattr(self._fs, "connect_timeout", 5)))
        read = float(cfg.get("read_timeout", getattr(self._fs, "read_timeout", 15)))
        retries = cfg.get("retries") or {}  # botocore: max_attempts counts retries only
        attempts = int(retries.get("total_max_attempts") or retries.get("max_attempts", 4) + 1)
        return attempts * (connect + read) + 20.0 * (attempts - 1) + 5.0

    async def call(self, method: str, **kwargs: Any) -> Any:
        client = await self.fs.set_session()
        fn = getattr(client, method)
        helper = getattr(self.fs, "_get_s3_method_kwargs", None)
        if helper is not None:  # s3fs's s3_additional_kwargs (SSE, requester pays)
            kwargs = helper(fn, **kwargs)
        limit = self.deadline()
        try:
            return await asyncio.wait_for(fn(**kwargs), limit)
        except asyncio.TimeoutError:
            raise TimeoutError(f"{method} got no answer within {limit:.0f} s") from None

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


_live: weakref.WeakSet[MultipartPending] = weakref.WeakSet()
_live_lock = threading.Lock()


_hooked = False


def _hook_exit() -> None:
    """Register :func:`_abort_live_uploads` once, after the client's session exists: atexit runs
    hooks last-in first-out, and s3fs closes its session from an exit hook of its own."""
    global _hooked
    with _live_lock:
        if not _hooked:
            _hooked = True
            atexit.register(_abort_live_uploads)


def _abort_live_uploads() -> None:
    """At interpreter exit (after an unhandled exception, ``sys.exit``), abort what is open."""
    with _live_lock:
        pending = list(_live)
    for p in pending:
        if p.pid != os.getpid():
            continue  # a forked child's exit never aborts its parent's uploads
        with contextlib.suppress(BaseException):
            p.abort_open_upload()


class MultipartPending(PendingWrite):
    def __init__(self, store: FsspecStore, key: str, create_only: bool = False):
        self.s3 = store._s3_client()
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
        self.pid = os.getpid()
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
        # botocore takes bytes, not views: one copy here; the BytesIO around it shares it, and
        # the HTTP client reads it in small pieces (a bytearray body would be copied twice more)
        body = bytes(memoryview(self.buf)[:self.fill]) if self.buf is not None else b""
        self.fill = 0
        return body

    def _start(self) -> None:
        try:
            resp = self.s3.run(self.s3.call("create_multipart_upload", Bucket=self.bucket,
                                            Key=self.obj))
        except Exception as exc:
            raise wrap(exc, "save", self.url) from exc
        self.upload_id = str(resp["UploadId"])
        _hook_exit()

    def _ship(self) -> None:
        if self.upload_id is None:
            self._start()
        number = len(self.parts) + len(self.inflight) + 1
        if number > MAX_PARTS:
            raise StorageError(
                f"Failed to save {self.url}: it needs more than {MAX_PARTS} parts of "
                f"{self.part_size} bytes; raise the part size: "
                "mindckpt.storage.urls.set_store_options('s3', part_size=...)."
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
            raise wrap(exc, "save", self.url) from exc
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
            self._forget()
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
        self._forget()

    def _publish_error(self, exc: BaseException) -> BaseException:
        if self.create_only and cause(exc)[0] == "precondition":
            return StorageError(f"{self.url} already exists; refusing to overwrite it.")
        return wrap(exc, "save", self.url)

    def sync_parent(self) -> None:
        """Nothing to do: a completed upload is the durable publication."""

    def discard(self) -> None:
        if self.state == "discarded":
            return
        was_published = self.state == "published"
        self.state = "discarded"
        self.buf, self.fill = None, 0
        futures = [f for _, f in self.inflight]
        self.inflight.clear()
        for f in futures:
            f.cancel()
        concurrent.futures.wait(futures, timeout=30)
        if was_published:
            self.upload_id = None
        self.abort_open_upload()

    def abort_open_upload(self) -> None:
        """Abort the upload if one is open (also from the exit hook); warn if that fails."""
        upload_id = self.upload_id
        if upload_id is not None:
            try:
                self.s3.run(self.s3.call("abort_multipart_upload", Bucket=self.bucket,
                                         Key=self.obj, UploadId=upload_id))
            except Exception as exc:
                if cause(exc)[0] != "missing":  # missing: already completed or aborted
                    warnings.warn(
                        f"Aborting the unfinished upload {upload_id} of {self.url} failed "
                        f"({exc}); it stays listed (FsspecStore.incomplete_uploads) until "
                        "aborted (abort_incomplete_uploads) or a bucket lifecycle rule "
                        "removes it.", RuntimeWarning, stacklevel=4)
            # (interrupted here, e.g. by Ctrl-C: it stays registered for the exit hook)
            self.upload_id = None
        self._forget()

    def _forget(self) -> None:
        with _live_lock:
            _live.discard(self)

    def written(self) -> int:
        return self.size


class S3Source(ByteSource):
    """Ranged GETs of one S3 object, pinned to the ETag seen at open."""

    def __init__(self, store: FsspecStore, key: str):
        s3 = self.s3 = store._s3_client()
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
            ce = client_error(exc)
            if ce is not None and ce[0] == "InvalidRange":
                self._stat()  # an empty object has no byte 0
            else:
                raise wrap(exc, "read", self.name, reading=True) from exc

    def _stat(self) -> None:
        try:
            resp = self.s3.run(self.s3.call("head_object", Bucket=self.bucket, Key=self.obj))
        except Exception as exc:
            raise wrap(exc, "read", self.name, reading=True) from exc
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
        self._window = min(self._window * 2, max(_FIRST_WINDOW, self.store.readahead // 2))
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
            ahead = sum(b - a for a, b, _ in self._segs)
            while tail < self.size and (not self._segs or (
                    ahead + self._window <= self.store.readahead
                    and len(self._segs) <= self.store.max_concurrency)):
                self._issue(tail)
                ahead += self._segs[-1][1] - tail
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
        if cause(exc)[0] == "precondition":
            return StorageError(f"{self.name} was replaced while it was being read; open it again.")
        return wrap(exc, "read", self.name, reading=True)

    def _short(self, got: int, want: int, at: int) -> StorageError:
        return StorageError(
            f"Failed to read {self.name}: the server sent {got} of {want} bytes at byte {at}; "
            "the connection was cut. Read it again.")

    def close(self) -> None:
        with self._lock:
            self._drop_segments()


class UploadInfo:
    """An unfinished multipart upload (a writer died, or its abort failed)."""

    def __init__(self, key: str, upload_id: str, initiated: float):
        self.key = key
        self.upload_id = upload_id
        self.initiated = initiated

    def __repr__(self) -> str:
        return f"UploadInfo(key={self.key!r}, upload_id={self.upload_id!r}, initiated={self.initiated})"




_Uploads = list[UploadInfo]


class S3Objects:
    """The S3 side of an :class:`~mindckpt.storage.fsspec.FsspecStore` (keys ``bucket/path``):
    every call asks the server (no listing cache)."""

    def __init__(self, store: FsspecStore, client: S3Client):
        self.store = store
        self.s3 = client

    def describe(self, key: str) -> str:
        return self.store.describe(key)

    def pending(self, key: str, create_only: bool) -> MultipartPending:
        return MultipartPending(self.store, key, create_only=create_only)

    def open_read(self, key: str) -> S3Source:
        return S3Source(self.store, key)

    def _listing(self, directory: str, delimiter: bool) -> tuple[_Items, list[str]]:
        """Every page of a listing under ``directory/``: the objects and (with
        ``delimiter``) the common prefixes; ([], []) when the bucket or prefix is missing."""
        s3 = self.s3
        bucket, prefix = s3.split(directory.rstrip("/"))
        prefix = prefix + "/" if prefix else ""
        extra = {"Delimiter": "/"} if delimiter else {}

        async def pages() -> tuple[_Items, list[str]]:
            items: _Items = []
            prefixes: list[str] = []
            token: dict[str, str] = {}
            while True:
                resp = await s3.call("list_objects_v2", Bucket=bucket, Prefix=prefix,
                                     **extra, **token)
                items.extend(resp.get("Contents", []))
                prefixes.extend(str(p["Prefix"]) for p in resp.get("CommonPrefixes", []))
                if not resp.get("IsTruncated"):
                    return items, prefixes
                token = {"ContinuationToken": resp["NextContinuationToken"]}

        try:
            return s3.run(pages())
        except Exception as exc:
            if cause(exc)[0] in ("bucket", "missing"):
                return [], []
            raise wrap(exc, "list", self.describe(directory)) from exc

    def list(self, directory: str) -> _Infos:
        _bucket, prefix = self.s3.split(directory.rstrip("/"))
        prefix = prefix + "/" if prefix else ""
        items, _dirs = self._listing(directory, delimiter=True)
        base = directory.rstrip("/")
        return [FileInfo(posixpath.join(base, str(it["Key"])[len(prefix):]), int(it["Size"]),
                         as_epoch(it.get("LastModified")))
                for it in items if not str(it["Key"]).endswith("/")]

    def list_dirs(self, directory: str) -> builtins.list[str]:
        _bucket, prefix = self.s3.split(directory.rstrip("/"))
        prefix = prefix + "/" if prefix else ""
        _items, dirs = self._listing(directory, delimiter=True)
        base = directory.rstrip("/")
        return sorted(posixpath.join(base, d[len(prefix):].rstrip("/")) for d in dirs)

    def remove_tree(self, directory: str) -> None:
        bucket, _prefix = self.s3.split(directory.rstrip("/"))
        items, _dirs = self._listing(directory, delimiter=False)
        keys = [str(it["Key"]) for it in items]
        try:
            for i in range(0, len(keys), 1000):  # the most one DeleteObjects call takes
                batch = {"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True}
                resp = self.s3.run(self.s3.call("delete_objects", Bucket=bucket,
                                                Delete=batch))
                if resp.get("Errors"):
                    err = resp["Errors"][0]
                    raise OSError(f"{err.get('Key')}: {err.get('Code')} {err.get('Message')}")
        except Exception as exc:
            raise wrap(exc, "remove", self.describe(directory)) from exc

    def remove(self, key: str) -> None:
        bucket, obj = self.s3.split(key)
        try:
            self.s3.run(self.s3.call("delete_object", Bucket=bucket, Key=obj))
        except Exception as exc:
            raise wrap(exc, "remove", self.describe(key)) from exc

    def _present(self, what: str, op: str, **params: str) -> bool:
        """Whether ``op`` (a HEAD request) finds ``what``: False when the object or bucket
        is missing, any other failure raised as a storage error."""
        try:
            self.s3.run(self.s3.call(op, **params))
            return True
        except Exception as exc:
            if cause(exc)[0] in ("missing", "bucket"):
                return False
            raise wrap(exc, "check", self.describe(what), reading=True) from exc

    def exists(self, key: str) -> bool:
        bucket, obj = self.s3.split(key)
        if not obj:
            return self.bucket_exists(bucket)
        return self._present(key, "head_object", Bucket=bucket, Key=obj)

    def bucket_exists(self, bucket: str) -> bool:
        return self._present(bucket, "head_bucket", Bucket=bucket)

    def isdir(self, key: str) -> bool:
        bucket, obj = self.s3.split(key.rstrip("/"))
        if not obj:
            return self.bucket_exists(bucket)
        try:
            resp = self.s3.run(self.s3.call("list_objects_v2", Bucket=bucket, Prefix=obj + "/",
                                            MaxKeys=1))
        except Exception as exc:
            if cause(exc)[0] in ("missing", "bucket"):
                return False
            raise wrap(exc, "check", self.describe(key), reading=True) from exc
        return bool(resp.get("KeyCount") or resp.get("Contents"))

    def check_bucket(self, directory: str) -> None:
        """Prefixes need no creating; a missing bucket fails here, before a save starts."""
        bucket, _ = self.s3.split(directory)
        if not self.bucket_exists(bucket):
            raise MissingDirectoryError(
                f"Cannot save into {self.describe(directory)}: the bucket {bucket} does not "
                "exist. Create the bucket first.")

    def incomplete_uploads(self, directory: str) -> _Uploads:
        s3 = self.s3
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
            raise wrap(exc, "list the uploads of", self.describe(directory)) from exc
        return [UploadInfo(f"{bucket}/{it['Key']}", str(it["UploadId"]),
                           as_epoch(it.get("Initiated"))) for it in items]

    def abort_incomplete_uploads(self, directory: str, older_than: float,
                                 now: Callable[[], float] | None) -> _Uploads:
        t = (now or time.time)()
        aborted = []
        for up in self.incomplete_uploads(directory):
            if t - up.initiated < older_than:
                continue
            bucket, obj = self.s3.split(up.key)
            try:
                self.s3.run(self.s3.call("abort_multipart_upload", Bucket=bucket, Key=obj,
                                         UploadId=up.upload_id))
            except Exception as exc:
                if cause(exc)[0] != "missing":
                    raise wrap(exc, "abort an upload of", self.describe(up.key)) from exc
            aborted.append(up)
        return aborted
