"""FsspecStore over fsspec's memory and local filesystems (the conformance kit), and
:func:`mindckpt.storage.urls.resolve`.  The S3 runs live in tests/remote (they need a server)."""

from __future__ import annotations

import os
import posixpath
import sys
import time
import uuid

import pytest

fsspec = pytest.importorskip("fsspec")

from mindckpt.errors import StorageError  # noqa: E402
from mindckpt.storage import urls  # noqa: E402
from mindckpt.storage.fsspec import FsspecStore  # noqa: E402
from mindckpt.storage.local import LOCAL  # noqa: E402

from .conformance import StoreConformance  # noqa: E402


class TestMemoryFsspecStore(StoreConformance):
    @pytest.fixture
    def store(self):
        return FsspecStore(fsspec.filesystem("memory"))

    @pytest.fixture
    def root(self, store):
        root = f"/mindckpt-test-{uuid.uuid4().hex[:8]}"
        yield root
        store.fs.rm(root, recursive=True) if store.fs.exists(root) else None

    def test_strategy_and_names(self, store, root):
        assert store.write_strategy == "buffer"
        assert store.describe(root + "/a.ckpt") == f"memory://{root}/a.ckpt"

    def test_reader_keeps_its_snapshot(self, store, root):
        k = store.join(root, "s.ckpt")
        store.write_bytes(k, b"old" * 10)
        with store.open_read(k) as src:
            store.write_bytes(k, b"new" * 20)
            assert src.pread(30, 0) == b"old" * 10
        assert store.read_bytes(k) == b"new" * 20


class TestLocalFsspecStore(StoreConformance):
    @pytest.fixture
    def store(self):
        return FsspecStore(fsspec.filesystem("file"))

    @pytest.fixture
    def root(self, tmp_path):
        return str(tmp_path)

    def test_temp_beside_target_then_rename(self, store, root):
        k = os.path.join(root, "t.ckpt")
        with store.open_write(k) as w:
            w.write(b"abc")
            temps = [n for n in os.listdir(root) if n.startswith(".t.ckpt.")]
            assert len(temps) == 1 and temps[0].endswith(".tmp")
            assert store.list(root) == []  # temps are not objects
        assert sorted(os.listdir(root)) == ["t.ckpt"]

    def test_create_only_is_a_link(self, store, root):
        k = os.path.join(root, "mark")
        store.create_only(k, b"1")
        with pytest.raises(StorageError, match="already exists"):
            store.create_only(k, b"2")
        assert store.read_bytes(k) == b"1"
        assert sorted(os.listdir(root)) == ["mark"]

    def test_reader_keeps_inode_across_replace(self, store, root):
        k = os.path.join(root, "r.ckpt")
        store.write_bytes(k, b"o" * 4096)
        with store.open_read(k) as src:
            store.write_bytes(k, b"n" * 4096)
            assert src.pread(4096, 0) == b"o" * 4096


def test_unknown_protocol_warns_and_renames():
    from fsspec.implementations.memory import MemoryFileSystem

    class OddFS(MemoryFileSystem):
        protocol = "oddfs-test"

    with pytest.warns(RuntimeWarning, match="oddfs-test.*atomically"):
        store = FsspecStore(OddFS(skip_instance_cache=True, global_store=False))
    assert store.write_strategy == "rename"


def test_part_size_floor_and_bad_strategy():
    fs = fsspec.filesystem("memory")
    with pytest.raises(ValueError, match="5 MiB"):
        FsspecStore(fs, part_size=1 << 20)
    with pytest.raises(ValueError, match="write_strategy"):
        FsspecStore(fs, write_strategy="inplace")
    with pytest.raises(ValueError, match="S3"):
        FsspecStore(fs, write_strategy="multipart")


# -- resolve
def test_local_paths_resolve_to_local_store(tmp_path):
    path = tmp_path / "a" / ".." / "x.ckpt"
    store, key = urls.resolve(path)
    assert store is LOCAL and key == os.path.realpath(str(path))
    assert urls.resolve(str(path)) == (LOCAL, key)
    assert not urls.is_url(str(path)) and not urls.is_url(path)
    assert not urls.is_url("C:\\x\\y.ckpt") and not urls.is_url("s3:/b/x")


def test_file_urls_are_local(tmp_path):
    p = str(tmp_path / "x y.ckpt")
    assert urls.is_url("file://" + p)
    assert urls.resolve("file://" + p.replace(" ", "%20")) == (LOCAL, os.path.realpath(p))
    assert urls.resolve("file://localhost" + p)[1] == os.path.realpath(p)
    with pytest.raises(ValueError, match="not this machine"):
        urls.resolve("file://otherhost/x.ckpt")


def test_storage_options_refused_for_local_paths(tmp_path):
    with pytest.raises(ValueError, match="storage_options.*remote URLs"):
        urls.resolve(str(tmp_path / "x"), {"anon": True})
    assert urls.resolve(str(tmp_path / "x"), {})[0] is LOCAL


def test_bad_targets():
    with pytest.raises(TypeError, match="bytes"):
        urls.resolve(b"/x.ckpt")
    with pytest.raises(TypeError, match="int"):
        urls.resolve(3)
    with pytest.raises(TypeError, match="storage_options"):
        urls.resolve("memory://x", storage_options=[("a", 1)])
    with pytest.raises(ValueError, match="no filesystem for the protocol 'nosuchproto'"):
        urls.resolve("nosuchproto://b/x.ckpt")


def test_memory_url_is_cached_store():
    s1, k1 = urls.resolve("memory://run/x.ckpt")
    s2, k2 = urls.resolve("memory://run/y.ckpt")
    assert isinstance(s1, FsspecStore) and s1 is s2
    assert (k1, k2) == ("/run/x.ckpt", "/run/y.ckpt")
    s1.write_bytes(k1, b"abc")
    assert fsspec.filesystem("memory").cat_file("/run/x.ckpt") == b"abc"
    s1.remove(k1)


def test_missing_fsspec_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(ImportError, match=r"pip install 'mindckpt\[remote\]' and s3fs"):
        urls.resolve("s3://bucket/x.ckpt")


def test_missing_backend_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "gcsfs", None)
    with pytest.raises(ImportError, match=r"mindckpt\[remote\]' and gcsfs"):
        urls.resolve("gs://bucket/x.ckpt")


# -- the "upload" strategy (gcsfs-like: a buffered file whose upload finalizes at close)
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem  # noqa: E402


class _UploadFile(AbstractBufferedFile):
    def _initiate_upload(self):
        self.parts = []

    def _upload_chunk(self, final=False):
        self.parts.append(self.buffer.getvalue())
        if final:  # the object appears only now, whole (create-only for "xb")
            if self.mode == "xb" and self.path in self.fs.objects:
                raise FileExistsError(self.path)
            self.fs.objects[self.path] = (b"".join(self.parts), time.time())
        return True

    def discard(self):
        self.fs.discarded += 1
        self.parts = None

    def _fetch_range(self, start, end):
        return self.fs.objects[self.path][0][start:end]


class UploadFS(AbstractFileSystem):
    """An object store in the style of gcsfs, in memory."""

    protocol = "gcs"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.objects = {}
        self.discarded = 0

    def _open(self, path, mode="rb", block_size=None, **kw):
        path = self._strip_protocol(path)
        if mode == "rb" and path not in self.objects:
            raise FileNotFoundError(path)
        return _UploadFile(self, path, mode, block_size=block_size or 5 << 20)

    def ls(self, path, detail=True, **kw):
        path = self._strip_protocol(path).rstrip("/")
        out = [{"name": k, "size": len(v), "type": "file", "mtime": t}
               for k, (v, t) in self.objects.items() if posixpath.dirname(k) == path]
        subdirs = {path + "/" + k[len(path) + 1:].split("/", 1)[0] for k in self.objects
                   if k.startswith(path + "/") and "/" in k[len(path) + 1:]}
        out += [{"name": d, "size": 0, "type": "directory"} for d in sorted(subdirs)]
        if not out and not any(k.startswith(path + "/") for k in self.objects):
            raise FileNotFoundError(path)
        return out if detail else [o["name"] for o in out]

    def info(self, path, **kw):
        path = self._strip_protocol(path)
        if path in self.objects:
            return {"name": path, "size": len(self.objects[path][0]), "type": "file"}
        if any(k.startswith(path.rstrip("/") + "/") for k in self.objects):
            return {"name": path, "size": 0, "type": "directory"}
        raise FileNotFoundError(path)

    def rm_file(self, path):
        del self.objects[self._strip_protocol(path)]


class TestUploadStrategy(StoreConformance):
    @pytest.fixture
    def store(self):
        return FsspecStore(UploadFS(skip_instance_cache=True))

    @pytest.fixture
    def root(self):
        return "bucket/run1"

    def test_strategy(self, store):
        assert store.write_strategy == "upload"

    def test_failed_write_is_discarded_never_finalized(self, store, root):
        k = store.join(root, "x.ckpt")
        store.write_bytes(k, b"old")
        with pytest.raises(RuntimeError):
            with store.open_write(k) as w:
                w.write(b"partial" * 1000)
                raise RuntimeError("interrupted")
        import gc

        gc.collect()  # fsspec's file __del__ would close() -> finalize a partial object
        assert store.fs.discarded == 1
        assert store.read_bytes(k) == b"old"

    def test_create_only_is_create_mode(self, store, root):
        k = store.join(root, "mark")
        store.create_only(k, b"1")
        with pytest.raises(StorageError, match="already exists"):
            store.create_only(k, b"2")
        assert store.read_bytes(k) == b"1"


def test_set_store_options():
    urls.set_store_options("memory", part_size=6 << 20, max_concurrency=2)
    try:
        store, _ = urls.resolve("memory://opts/x.ckpt")
        assert (store.part_size, store.max_concurrency) == (6 << 20, 2)
    finally:
        urls.set_store_options("memory")
    store, _ = urls.resolve("memory://opts/x.ckpt")
    assert store.part_size == 16 << 20
    with pytest.raises(ValueError, match="5 MiB"):
        urls.set_store_options("s3", part_size=1 << 20)
    with pytest.raises(ValueError, match="write_strategy"):
        urls.set_store_options("s3", write_strategy="copy")
