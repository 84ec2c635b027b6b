"""The public API on s3:// (moto on loopback, configured by the environment only)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import mindckpt
from mindckpt.errors import CheckpointNotFoundError, StorageError

MiB = 1 << 20


def params(step: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(step)
    return {
        "conv.weight": rng.standard_normal((16, 3, 3, 3)).astype(np.float32),
        "fc.weight": rng.standard_normal((64, 128)).astype(np.float32),
        "fc.bias": np.full(64, step, np.float16),
        "step": np.array(step, np.int64),
    }


def arrays(loaded) -> dict[str, np.ndarray]:
    return {k: np.asarray(v.asnumpy()) for k, v in loaded.items()}


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes()
        for k in a)


@pytest.mark.parametrize("options", [
    {},
    {"crc_check": True},
    {"enc_key": b"0123456789abcdef", "enc_mode": "AES-GCM"},
    {"enc_key": b"0123456789abcdef", "enc_mode": "AES-CBC"},
    {"format": "safetensors"},
], ids=["plain", "crc", "aes-gcm", "aes-cbc", "safetensors"])
@pytest.mark.filterwarnings("ignore:AES-CBC encrypts")
def test_save_load_roundtrip(bucket, boto, tmp_cwd, options):
    fmt = options.get("format", "ckpt")
    url = f"s3://{bucket}/run1/net.{fmt}"
    mindckpt.save_checkpoint(params(), url, **options)
    assert [o["Key"] for o in boto.list_objects_v2(Bucket=bucket)["Contents"]] == [f"run1/net.{fmt}"]
    assert os.listdir(tmp_cwd) == []  # nothing under ./s3:/
    load = {"format": fmt, "crc_check": options.get("crc_check", False)}
    if "enc_key" in options:
        load.update(dec_key=options["enc_key"], dec_mode=options["enc_mode"])
    assert same(arrays(mindckpt.load_checkpoint(url, **load)), params())


def test_suffix_added_as_locally(bucket, boto):
    mindckpt.save_checkpoint(params(), f"s3://{bucket}/a/net")
    assert boto.head_object(Bucket=bucket, Key="a/net.ckpt")["ContentLength"] > 0


def test_choice_func_and_open_checkpoint(bucket):
    url = f"s3://{bucket}/net.ckpt"
    mindckpt.save_checkpoint(params(), url)
    got = mindckpt.load_checkpoint(url, choice_func=lambda n: n.startswith("fc."))
    assert set(got) == {"fc.weight", "fc.bias"}
    with mindckpt.open_checkpoint(url) as h:
        assert np.array_equal(h.get_tensor("fc.weight"), params()["fc.weight"])


def test_storage_options_reach_the_filesystem(proxy, bucket):
    url = f"s3://{bucket}/via-proxy.ckpt"
    mindckpt.save_checkpoint(params(), url, storage_options={"endpoint_url": proxy.endpoint})
    assert proxy.received > 0
    proxy.reset_counts()
    got = mindckpt.load_checkpoint(url, storage_options={"endpoint_url": proxy.endpoint})
    assert proxy.served > 0 and same(arrays(got), params())


def test_missing_bucket_and_object(bucket):
    with pytest.raises(FileNotFoundError, match="s3://no-such-bucket-e2e/x.ckpt"):
        mindckpt.save_checkpoint(params(), "s3://no-such-bucket-e2e/x.ckpt")
    with pytest.raises(CheckpointNotFoundError, match=f"s3://{bucket}/none.ckpt"):
        mindckpt.load_checkpoint(f"s3://{bucket}/none.ckpt")
    with pytest.raises(ValueError):  # MindSpore's type for an unreadable checkpoint
        mindckpt.load_checkpoint(f"s3://{bucket}/none.ckpt")


def test_failed_save_keeps_previous(bucket):
    url = f"s3://{bucket}/net.ckpt"
    mindckpt.save_checkpoint(params(1), url)

    def boom(name):
        if name == "fc.bias":
            raise RuntimeError("choice_func failed mid-save")
        return True

    with pytest.raises(RuntimeError, match="mid-save"):
        mindckpt.save_checkpoint(params(2), url, choice_func=boom)
    assert same(arrays(mindckpt.load_checkpoint(url)), params(1))


def test_async_save_to_s3(bucket):
    url = f"s3://{bucket}/async.ckpt"
    from mindckpt import async_writer

    mindckpt.save_checkpoint(params(3), url, async_save=True)
    async_writer.wait()
    assert same(arrays(mindckpt.load_checkpoint(url)), params(3))


def test_async_save_error_surfaces_like_local(bucket):
    from mindckpt import async_writer

    mindckpt.save_checkpoint(params(3), "s3://no-such-bucket-async/x.ckpt", async_save=True)
    with pytest.raises(Exception, match="s3://no-such-bucket-async/x.ckpt"):
        async_writer.wait()


@pytest.mark.slow
def test_one_small_tensor_of_256_mib_reads_under_one_percent(proxy, bucket):
    """Bytes counted as the server sends them (a TCP relay in front of moto)."""
    big = {f"layer{i}.weight": np.full((4096, 4096), i, np.float32) for i in range(4)}
    big["small.bias"] = np.arange(16, dtype=np.float32)
    url = f"s3://{bucket}/big.ckpt"
    mindckpt.save_checkpoint(big, url)
    opts = {"endpoint_url": proxy.endpoint}
    size = 4 * 4096 * 4096 * 4
    proxy.reset_counts()
    got = mindckpt.load_checkpoint(url, choice_func=lambda n: n == "small.bias",
                                   storage_options=opts)
    assert np.array_equal(got["small.bias"].asnumpy(), big["small.bias"])
    assert proxy.served < size / 100, proxy.served
    print(f"choice_func: {proxy.served} bytes served of {size}")
    proxy.reset_counts()
    with mindckpt.open_checkpoint(url, storage_options=opts) as h:
        assert np.array_equal(h.get_tensor("small.bias"), big["small.bias"])
    assert proxy.served < size / 100, proxy.served
    print(f"open_checkpoint.get_tensor: {proxy.served} bytes served of {size}")
    proxy.reset_counts()
    full = mindckpt.load_checkpoint(url, storage_options=opts)  # each byte once
    assert np.array_equal(full["layer3.weight"].asnumpy(), big["layer3.weight"])
    assert size <= proxy.served < size * 1.01
    print(f"full load: {proxy.served} bytes served of {size}")


def test_checkpoint_manager_on_s3(bucket):
    from mindckpt import policies
    from mindckpt.manager import CheckpointManager

    boto_extra = f"s3://{bucket}/run1/not-mine.ckpt"
    mindckpt.save_checkpoint(params(0), boto_extra)
    with CheckpointManager(f"s3://{bucket}/run1", "net",
                           retention=policies.RetentionPolicy(keep_max=2,
                                                              per_n_minutes=None)) as m:
        keys = [m.save(params(s), epoch=1, step=s) for s in (1, 2, 3)]
        names = sorted(os.path.basename(k) for k in m.all())
        assert names == ["net-1_2.ckpt", "net-1_3.ckpt"]
        assert m.latest() == keys[-1]
    listed = {os.path.basename(k) for k in (i.key for i in m.store.list(f"{bucket}/run1"))}
    assert "not-mine.ckpt" in listed
    assert same(arrays(mindckpt.load_checkpoint(f"s3://{keys[-1]}")), params(3))


def test_checkpoint_manager_sliced_on_s3(bucket, boto):
    """Sliced checkpoints (one directory each: parts, strategy, index, commit marker) managed
    under an S3 prefix: listed by common prefix, retired whole (marker first)."""
    from mindckpt import policies
    from mindckpt.manager import CheckpointManager

    sliced = {"layouts": {"w": ([1], [0, -1])}, "integrated_save": False}
    with CheckpointManager(f"s3://{bucket}/sl", "m", **sliced,
                           retention=policies.RetentionPolicy(keep_max=2,
                                                              per_n_minutes=None)) as m:
        keys = [m.save({"w": np.full((4, 6), s, np.float32)}, epoch=1, step=s)
                for s in (1, 2, 3)]
        assert m.all() == keys[1:] and m.latest() == keys[-1]
    objects = sorted(o["Key"] for o in boto.list_objects_v2(Bucket=bucket, Prefix="sl/")
                     ["Contents"])
    assert not any(k.startswith("sl/m-1_1/") for k in objects)  # retired whole
    assert f"sl/m-1_3/{'mindckpt.commit'}" in objects and "sl/m-1_3/rank_0/m-1_3.ckpt" in objects
    got = mindckpt.load_checkpoint(f"s3://{keys[-1]}")
    assert float(got["w"].asnumpy()[0, 0]) == 3.0


def test_checkpoint_manager_latest_within_one_second(bucket):
    from mindckpt.manager import CheckpointManager

    with CheckpointManager(f"s3://{bucket}/run2", "net") as m:
        for _ in range(5):  # until both saves land in the same second (S3's resolution)
            keys = [m.save(params(s), epoch=1, step=s) for s in (9, 10)]
            if len({i.mtime for i in m.listing()}) == 1:
                break
        assert m.latest() == keys[-1]


@pytest.mark.parametrize("async_save", [False, True])
def test_model_checkpoint_directory_url(bucket, tmp_cwd, async_save):
    """Training to a bucket: saves, retention through the store's listing (only after the new
    checkpoint is complete, never another prefix's files), async saves, latest()."""
    from mindckpt.train import CheckpointConfig, ModelCheckpoint, latest_checkpoint
    from mindckpt.train.callback import InternalCallbackParam, RunContext

    base = f"s3://{bucket}/train{int(async_save)}"
    mindckpt.save_checkpoint(params(9), f"{base}/other-1_1.ckpt")  # not ours: never deleted
    cfg = CheckpointConfig(save_checkpoint_steps=1, keep_checkpoint_max=2, async_save=async_save)
    cb = ModelCheckpoint(prefix="lenet", directory=base, config=cfg)
    assert os.listdir(tmp_cwd) == []  # a URL makes nothing local
    cbp = InternalCallbackParam(train_network=params(0), cur_epoch_num=1, batch_num=4,
                                epoch_num=1, cur_step_num=0)
    ctx = RunContext(cbp)
    cb.on_train_begin(ctx)
    for step in range(1, 5):
        cbp.cur_step_num = step
        cbp.train_network = params(step)
        cb.on_train_step_end(ctx)
    cb.on_train_end(ctx)
    cb.close()
    assert os.listdir(tmp_cwd) == []
    assert cb.latest_ckpt_file_name == f"{base}/lenet-1_4.ckpt"
    from mindckpt.storage.urls import resolve

    store, key = resolve(base)
    names = sorted(f.name for f in store.list(key))
    assert names == ["lenet-1_3.ckpt", "lenet-1_4.ckpt", "other-1_1.ckpt"]
    assert same(arrays(mindckpt.load_checkpoint(f"{base}/lenet-1_4.ckpt")), params(4))
    assert str(latest_checkpoint(base, "lenet")).endswith("lenet-1_4.ckpt")


def test_save_error_names_url_when_server_is_gone(bucket):
    import s3server

    opts = {"endpoint_url": f"http://127.0.0.1:{s3server.free_port()}",
            "config_kwargs": {"retries": {"total_max_attempts": 1}, "connect_timeout": 1}}
    with pytest.raises(StorageError, match=rf"s3://{bucket}/x.ckpt.*connection failed"):
        mindckpt.save_checkpoint(params(), f"s3://{bucket}/x.ckpt", storage_options=opts)


def test_process_mode_async_save_to_s3(bucket):
    """A forked writer gets its own filesystem (fsspec's are not fork-safe)."""
    from mindckpt import async_writer

    url = f"s3://{bucket}/proc.ckpt"
    mindckpt.save_checkpoint(params(1), url)  # the parent's filesystem exists before the fork
    mindckpt.save_checkpoint(params(4), url, async_save="process")
    async_writer.wait()
    assert same(arrays(mindckpt.load_checkpoint(url)), params(4))
