"""FsspecStore on a real S3 server (moto on loopback): the conformance kit, and S3 specifics."""

from __future__ import annotations

import pytest

from mindckpt.storage.fsspec import FsspecStore

from ..storage.conformance import StoreConformance


class TestS3Store(StoreConformance):
    @pytest.fixture
    def store(self, s3fs_fs):
        return FsspecStore(s3fs_fs)

    @pytest.fixture
    def root(self, bucket):
        return f"{bucket}/run1"


MiB = 1 << 20


def pattern(n: int, seed: int = 0) -> bytes:
    block = bytes((i * 7 + seed) & 0xFF for i in range(4096))
    return (block * (n // 4096 + 1))[:n]


@pytest.fixture
def store5(s3fs_fs):
    """Small parts (S3's minimum) so that a few MiB make a multipart upload."""
    return FsspecStore(s3fs_fs, part_size=5 * MiB, max_concurrency=2, read_chunk=3 * MiB,
                       head_bytes=64 << 10)


def test_multipart_streams_parts_and_publishes_at_complete(store5, bucket, boto):
    key = f"{bucket}/run/big.ckpt"
    data = pattern(17 * MiB + 123)
    with store5.open_write(key) as w:
        for i in range(0, len(data), 3 * MiB):
            w.write(data[i:i + 3 * MiB])
        # parts are out while the file is produced; nothing is visible yet
        ups = store5.incomplete_uploads(f"{bucket}/run")
        assert [u.key for u in ups] == [key]
        assert not store5.exists(key)
    assert store5.incomplete_uploads(f"{bucket}/run") == []
    head = boto.head_object(Bucket=bucket, Key="run/big.ckpt", PartNumber=1)
    assert head["PartsCount"] == 4
    assert store5.read_bytes(key) == data


def test_small_object_is_one_put(store5, bucket, boto):
    key = f"{bucket}/run/small.ckpt"
    store5.write_bytes(key, b"abc")
    assert "PartsCount" not in boto.head_object(Bucket=bucket, Key="run/small.ckpt",
                                                PartNumber=1)
    store5.write_bytes(key, b"")
    assert store5.read_bytes(key) == b""


@pytest.mark.parametrize("exc", [RuntimeError("caller failed"), KeyboardInterrupt()])
def test_failure_mid_upload_aborts_and_keeps_old(store5, bucket, exc):
    key = f"{bucket}/run/x.ckpt"
    store5.write_bytes(key, b"old")
    with pytest.raises(type(exc)):
        with store5.open_write(key) as w:
            w.write(pattern(11 * MiB))
            assert store5.incomplete_uploads(f"{bucket}/run")
            raise exc
    assert store5.read_bytes(key) == b"old"
    assert store5.incomplete_uploads(f"{bucket}/run") == []
    assert {i.name for i in store5.list(f"{bucket}/run")} == {"x.ckpt"}


def test_create_only_uses_if_none_match(store5, bucket):
    from mindckpt.errors import StorageError

    key = f"{bucket}/run/mindckpt.commit"
    store5.create_only(key, b"1")
    with pytest.raises(StorageError, match="already exists"):
        store5.create_only(key, b"2")
    assert store5.read_bytes(key) == b"1"


def test_refused_multipart_complete_is_aborted(store5, bucket):
    from mindckpt.errors import StorageError
    from mindckpt.storage.base import AtomicWrite

    key = f"{bucket}/run/big.ckpt"
    store5.write_bytes(key, b"first")
    w = AtomicWrite(store5._pending(key, create_only=True), store5.describe(key))
    with pytest.raises(StorageError, match="already exists"):
        with w:
            w.write(pattern(12 * MiB))
    assert store5.read_bytes(key) == b"first"
    assert store5.incomplete_uploads(f"{bucket}/run") == []


def test_list_is_never_stale(store5, s3fs_fs, bucket, boto):
    d = f"{bucket}/run"
    store5.write_bytes(f"{d}/a.ckpt", b"a")
    s3fs_fs.ls(d)  # s3fs now caches the listing
    boto.put_object(Bucket=bucket, Key="run/b.ckpt", Body=b"bb")
    assert {i.name for i in store5.list(d)} == {"a.ckpt", "b.ckpt"}
    assert store5.exists(f"{d}/b.ckpt")
    boto.delete_object(Bucket=bucket, Key="run/a.ckpt")
    assert {i.name for i in store5.list(d)} == {"b.ckpt"}
    assert not store5.exists(f"{d}/a.ckpt")
    # a "subdirectory" is not an object of the listing
    store5.write_bytes(f"{d}/sub/c.ckpt", b"c")
    assert {i.name for i in store5.list(d)} == {"b.ckpt"}
    assert store5.isdir(f"{d}/sub") and not store5.isdir(f"{d}/b.ckpt")


def test_ranged_reads_fetch_only_what_is_asked(store5, bucket):
    key = f"{bucket}/run/r.ckpt"
    data = pattern(20 * MiB, seed=3)
    store5.write_bytes(key, data)
    with store5.open_read(key) as src:
        assert src.bytes_fetched == 64 << 10  # the head, with size and ETag
        assert src.pread(100, 10 * MiB) == data[10 * MiB:10 * MiB + 100]
        assert src.bytes_fetched == (64 << 10) + 100
        buf = bytearray(len(data))
        assert src.readinto(buf, 0) == len(data)  # parallel ranges, each byte once
        assert bytes(buf) == data
        assert src.bytes_fetched == len(data) + 100
        assert src.requests == 1 + 1 + 7  # head, one span, ceil((20 MiB - 64 KiB) / 3 MiB)


def test_replaced_object_is_detected_not_mixed(store5, bucket):
    from mindckpt.errors import StorageError

    key = f"{bucket}/run/v.ckpt"
    store5.write_bytes(key, pattern(MiB, seed=1))
    with store5.open_read(key) as src:
        store5.write_bytes(key, pattern(MiB, seed=2))
        assert src.pread(10, 0) == pattern(10, seed=1)  # from the head fetched at open
        with pytest.raises(StorageError, match="replaced while it was being read"):
            src.pread(10, MiB - 10)


def test_missing_bucket_and_object_errors(store5, bucket):
    from mindckpt.errors import CheckpointNotFoundError, MissingDirectoryError

    with pytest.raises(MissingDirectoryError, match=r"s3://no-such-bucket-x/run/a.ckpt.*bucket "
                       "does not exist.*unchanged"):
        store5.write_bytes("no-such-bucket-x/run/a.ckpt", b"x")
    with pytest.raises(MissingDirectoryError, match="bucket no-such-bucket-x does not exist"):
        store5.makedirs("no-such-bucket-x/run")
    with pytest.raises(CheckpointNotFoundError, match=r"s3://no-such-bucket-x/a.ckpt"):
        store5.open_read("no-such-bucket-x/a.ckpt")
    with pytest.raises(CheckpointNotFoundError, match=rf"s3://{bucket}/nope.ckpt does not exist"):
        store5.open_read(f"{bucket}/nope.ckpt")
    assert store5.list("no-such-bucket-x/run") == []
    assert not store5.exists("no-such-bucket-x/a.ckpt")


def test_missing_credentials_named(moto_server, bucket, monkeypatch, tmp_path):
    import s3fs

    from mindckpt.errors import StorageError

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = FsspecStore(s3fs.S3FileSystem(skip_instance_cache=True))
    with pytest.raises(StorageError, match=rf"s3://{bucket}/a.ckpt: no usable credentials"):
        store.write_bytes(f"{bucket}/a.ckpt", b"x")


def test_unreachable_endpoint_named(bucket):
    import s3fs

    from s3server import free_port

    from mindckpt.errors import StorageError

    fs = s3fs.S3FileSystem(skip_instance_cache=True,
                           endpoint_url=f"http://127.0.0.1:{free_port()}",
                           config_kwargs={"retries": {"total_max_attempts": 2, "mode": "standard"},
                                          "connect_timeout": 1})
    store = FsspecStore(fs)
    with pytest.raises(StorageError, match=rf"s3://{bucket}/a.ckpt: the connection failed"):
        store.write_bytes(f"{bucket}/a.ckpt", b"x")
    with pytest.raises(StorageError, match="connection failed"):
        store.open_read(f"{bucket}/a.ckpt")


def test_bounded_memory_while_streaming(s3fs_fs, bucket):
    import tracemalloc

    store = FsspecStore(s3fs_fs, part_size=5 * MiB, max_concurrency=2)
    chunk = pattern(MiB)
    key = f"{bucket}/run/mem.ckpt"
    store.write_bytes(key, b"warm")  # the client's session and models load outside the window
    tracemalloc.start()
    try:
        with store.open_write(key) as w:
            for _ in range(48):
                w.write(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the documented bound (max_concurrency + 2) * part_size (+ the client's small buffers),
    # never the 48 MiB written
    assert peak < (2 + 2) * 5 * MiB + 2 * MiB, peak
    assert store.exists(key)


def test_abort_incomplete_uploads_by_age(store5, bucket, boto):
    d = f"{bucket}/run"
    up = boto.create_multipart_upload(Bucket=bucket, Key="run/dead.ckpt")["UploadId"]
    boto.create_multipart_upload(Bucket=bucket, Key="other/dead.ckpt")
    [info] = store5.incomplete_uploads(d)
    assert (info.key, info.upload_id) == (f"{d}/dead.ckpt", up)
    # younger than a day: maybe a live writer (moto dates every upload 2010-11-10: the clock is
    # taken relative to that)
    assert store5.abort_incomplete_uploads(d, now=lambda: info.initiated + 3600) == []
    aborted = store5.abort_incomplete_uploads(d, now=lambda: info.initiated + 25 * 3600)
    assert [u.upload_id for u in aborted] == [up]
    assert store5.incomplete_uploads(d) == []
    assert len(store5.incomplete_uploads(f"{bucket}/other")) == 1


def test_refused_credentials_named(moto_server):
    """A server that checks credentials (moto with IAM auth on) refuses the dummy key."""
    import s3fs
    from s3server import MotoServer

    from mindckpt.errors import StorageError

    server = MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}).start()
    try:
        fs = s3fs.S3FileSystem(skip_instance_cache=True, endpoint_url=server.endpoint,
                               config_kwargs={"retries": {"total_max_attempts": 1}})
        store = FsspecStore(fs)
        with pytest.raises(StorageError, match=r"s3://bkt-x/a.ckpt: access was refused "
                           r"\(InvalidAccessKeyId.*check the credentials"):
            store.write_bytes("bkt-x/a.ckpt", b"x")
        with pytest.raises(StorageError, match="access was refused"):
            store.open_read("bkt-x/a.ckpt")
    finally:
        server.stop()


def test_stalled_endpoint_times_out_named(bucket):
    """A server that takes the connection and never answers: the read timeout fires."""
    import socket

    import s3fs

    from mindckpt.errors import StorageError

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog; nothing is ever read or sent
        fs = s3fs.S3FileSystem(
            skip_instance_cache=True, endpoint_url=f"http://127.0.0.1:{silent.getsockname()[1]}",
            config_kwargs={"retries": {"total_max_attempts": 1}, "read_timeout": 1,
                           "connect_timeout": 1})
        with pytest.raises(StorageError, match=rf"s3://{bucket}/a.ckpt: the connection failed "
                           "or timed out.*Timeout"):
            FsspecStore(fs).write_bytes(f"{bucket}/a.ckpt", b"x")
