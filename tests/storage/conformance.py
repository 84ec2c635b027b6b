"""The store conformance kit: every :class:`~mindckpt.storage.base.Store` runs these.

A backend's test module subclasses :class:`StoreConformance` and provides a ``store`` fixture
(a fresh, empty store) and a ``root`` fixture (a directory key inside it); a backend that cannot
inject faults into its primitives overrides ``fail_primitive``.
"""

from __future__ import annotations

import threading

import pytest

from mindckpt.errors import CheckpointNotFoundError, DurabilityError, StorageError
from mindckpt.storage.base import (
    COMMIT_MARKER,
    ByteSource,
    Store,
    Transaction,
    is_committed,
)


class _Boom(OSError):
    pass


class StoreConformance:
    """Tests shared by all stores.  Fixtures: ``store`` (Store) and ``root`` (str)."""

    # -- helpers
    def key(self, store: Store, root: str, name: str) -> str:
        return store.join(root, name)

    def names(self, store: Store, root: str) -> set[str]:
        return {info.name for info in store.list(root)}

    def fail_primitive(self, monkeypatch, store: Store, step: str) -> None:
        """Make the backend's ``step`` primitive (write, sync, publish) raise ``_Boom``."""
        original = store._begin

        def begin(key, mode):
            pending = original(key, mode)
            def boom(*_a, **_k):
                raise _Boom(5, f"injected failure at {step}")
            setattr(pending, step, boom)
            return pending
        monkeypatch.setattr(store, "_begin", begin)

    # -- atomic publish
    def test_write_then_read(self, store, root):
        k = self.key(store, root, "a.ckpt")
        with store.open_write(k) as w:
            w.write(b"hello ")
            w.write(memoryview(b"world"))
        assert store.exists(k)
        assert store.read_bytes(k) == b"hello world"

    def test_not_visible_before_publish(self, store, root):
        k = self.key(store, root, "b.ckpt")
        with store.open_write(k) as w:
            w.write(b"x" * 1000)
            assert not store.exists(k)
            assert "b.ckpt" not in self.names(store, root)
        assert store.exists(k)

    def test_overwrite_replaces_whole(self, store, root):
        k = self.key(store, root, "c.ckpt")
        store.write_bytes(k, b"old" * 100)
        store.write_bytes(k, b"new")
        assert store.read_bytes(k) == b"new"

    def test_exception_in_block_discards_and_keeps_old(self, store, root):
        k = self.key(store, root, "d.ckpt")
        store.write_bytes(k, b"old")
        with pytest.raises(RuntimeError):
            with store.open_write(k) as w:
                w.write(b"partial")
                raise RuntimeError("caller failed")
        assert store.read_bytes(k) == b"old"
        assert self.names(store, root) == {"d.ckpt"}

    @pytest.mark.parametrize("step", ["write", "sync", "publish"])
    def test_failure_at_each_step_keeps_old(self, store, root, monkeypatch, step):
        k = self.key(store, root, "e.ckpt")
        store.write_bytes(k, b"old")
        self.fail_primitive(monkeypatch, store, step)
        with pytest.raises(OSError) as info:
            with store.open_write(k, durable=True) as w:
                w.write(b"new data")
        assert "e.ckpt" in str(info.value) or step == "write" and isinstance(info.value, _Boom)
        monkeypatch.undo()
        assert store.read_bytes(k) == b"old"
        assert self.names(store, root) == {"e.ckpt"}

    def test_failure_new_key_leaves_nothing(self, store, root, monkeypatch):
        k = self.key(store, root, "f.ckpt")
        self.fail_primitive(monkeypatch, store, "publish")
        with pytest.raises(OSError):
            store.write_bytes(k, b"data", durable=True)
        monkeypatch.undo()
        assert not store.exists(k)
        assert self.names(store, root) == set()

    def test_sync_parent_failure_is_durability_error(self, store, root, monkeypatch):
        k = self.key(store, root, "g.ckpt")
        self.fail_primitive(monkeypatch, store, "sync_parent")
        with pytest.raises(DurabilityError, match="in place"):
            store.write_bytes(k, b"data", durable=True)
        monkeypatch.undo()
        assert store.read_bytes(k) == b"data"

    def test_not_durable_skips_sync(self, store, root, monkeypatch):
        k = self.key(store, root, "h.ckpt")
        self.fail_primitive(monkeypatch, store, "sync")
        store.write_bytes(k, b"data", durable=False)
        monkeypatch.undo()
        assert store.read_bytes(k) == b"data"

    def test_write_after_discard_refused(self, store, root):
        k = self.key(store, root, "i.ckpt")
        w = store.open_write(k)
        w.write(b"a")
        w.discard()
        with pytest.raises(StorageError):
            w.write(b"b")
        assert not store.exists(k)

    # -- reads
    def test_positional_reads(self, store, root):
        k = self.key(store, root, "r.ckpt")
        data = bytes(range(256)) * 4096
        store.write_bytes(k, data)
        with store.open_read(k) as src:
            assert isinstance(src, ByteSource)
            assert src.size == len(data)
            assert src.pread(10, 1000) == data[1000:1010]
            buf = bytearray(5000)
            assert src.readinto(buf, len(data) - 3000) == 3000
            assert bytes(buf[:3000]) == data[-3000:]
            assert src.pread(10, len(data)) == b""
            big = bytearray(len(data))
            assert src.readinto(memoryview(big), 0) == len(data)
            assert bytes(big) == data

    def test_missing_key_names_it(self, store, root):
        k = self.key(store, root, "nope.ckpt")
        with pytest.raises(CheckpointNotFoundError, match="nope.ckpt"):
            store.open_read(k)
        with pytest.raises(FileNotFoundError):
            store.remove(k)
        assert not store.exists(k)

    # -- list / remove
    def test_list_and_remove(self, store, root):
        for name, size in (("x-1_1.ckpt", 3), ("x-1_2.ckpt", 5)):
            store.write_bytes(self.key(store, root, name), b"z" * size)
        infos = {i.name: i for i in store.list(root)}
        assert set(infos) == {"x-1_1.ckpt", "x-1_2.ckpt"}
        assert infos["x-1_2.ckpt"].size == 5
        assert infos["x-1_1.ckpt"].mtime > 0
        store.remove(self.key(store, root, "x-1_1.ckpt"))
        assert self.names(store, root) == {"x-1_2.ckpt"}

    def test_list_missing_directory_is_empty(self, store, root):
        assert store.list(self.key(store, root, "no-such-dir")) == []
        assert store.list_dirs(self.key(store, root, "no-such-dir")) == []

    def test_list_dirs_and_remove_tree(self, store, root):
        d = self.key(store, root, "tree")
        for rel in ("a-1_1/rank_0/a-1_1.ckpt", "a-1_1/rank_1/a-1_1.ckpt", "a-1_1/.commit",
                    "b-1_2/rank_0/b-1_2.ckpt", "loose.ckpt"):
            parts = rel.split("/")
            store.makedirs(store.join(d, *parts[:-1]))
            store.write_bytes(store.join(d, *parts), b"x")
        dirs = store.list_dirs(d)
        assert [store.describe(k) for k in dirs] == [store.describe(store.join(d, n))
                                                     for n in ("a-1_1", "b-1_2")]
        assert {i.name for i in store.list(d)} == {"loose.ckpt"}  # files only
        store.remove_tree(dirs[0])
        assert not store.exists(store.join(d, "a-1_1", "rank_0", "a-1_1.ckpt"))
        assert not store.exists(store.join(d, "a-1_1", ".commit"))
        assert [store.describe(k) for k in store.list_dirs(d)] == \
            [store.describe(store.join(d, "b-1_2"))]
        assert store.exists(store.join(d, "b-1_2", "rank_0", "b-1_2.ckpt"))
        store.remove_tree(store.join(d, "no-such-dir"))  # nothing to do: no error

    def test_concurrent_reader_sees_old_or_new(self, store, root):
        k = self.key(store, root, "cc.ckpt")
        old, new = b"o" * 200_000, b"n" * 300_000
        store.write_bytes(k, old)
        seen: set[bytes] = set()
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                seen.add(store.read_bytes(k))

        t = threading.Thread(target=reader)
        t.start()
        try:
            for _ in range(5):
                store.write_bytes(k, new)
                store.write_bytes(k, old)
        finally:
            stop.set()
            t.join()
        assert seen <= {old, new}

    # -- transactions
    def test_transaction_commit_marker_last(self, store, root):
        d = self.key(store, root, "step_10")
        store.makedirs(d)
        txn = Transaction(store, d)
        with txn.part("rank_0.ckpt") as w:
            w.write(b"part0")
        assert not is_committed(store, d)
        txn.commit(index=b"{}")
        assert is_committed(store, d)
        assert COMMIT_MARKER in self.names(store, d)

    def test_transaction_marker_is_create_only(self, store, root):
        d = self.key(store, root, "step_11")
        store.makedirs(d)
        Transaction(store, d).commit()
        with pytest.raises(StorageError, match="exists"):
            Transaction(store, d).commit()

    def test_failed_transaction_not_committed(self, store, root):
        d = self.key(store, root, "step_12")
        store.makedirs(d)
        txn = Transaction(store, d)
        with pytest.raises(RuntimeError):
            with txn.part("rank_0.ckpt") as w:
                w.write(b"x")
                raise RuntimeError("rank failed")
        assert not is_committed(store, d)
