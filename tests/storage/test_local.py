import os
import subprocess
import sys

import pytest

from mindckpt.storage.local import TEMP_PATTERN, LocalStore

from .conformance import StoreConformance


class TestLocalStore(StoreConformance):
    @pytest.fixture
    def store(self):
        return LocalStore()

    @pytest.fixture
    def root(self, tmp_path):
        return str(tmp_path)

    def test_published_file_is_read_only(self, store, root):
        k = os.path.join(root, "ro.ckpt")
        store.write_bytes(k, b"x")
        assert os.stat(k).st_mode & 0o777 == 0o400

    def test_missing_directory_names_target(self, store, root):
        k = os.path.join(root, "no", "dir", "x.ckpt")
        with pytest.raises(OSError, match="x.ckpt") as info:
            store.write_bytes(k, b"x")
        assert "does not exist" in str(info.value)
        assert ".tmp" not in str(info.value)

    def test_directory_open_failure_is_durability_error(self, store, root, monkeypatch):
        from mindckpt.errors import DurabilityError
        from mindckpt.storage import local

        real_open = os.open
        def fake_open(path, flags, *a, **k):
            if flags & getattr(os, "O_DIRECTORY", 0):
                raise OSError(5, "Input/output error")
            return real_open(path, flags, *a, **k)
        monkeypatch.setattr(local.os, "open", fake_open)
        k = os.path.join(root, "d.ckpt")
        with pytest.raises(DurabilityError, match="in place"):
            store.write_bytes(k, b"x", durable=True)
        monkeypatch.undo()
        assert open(k, "rb").read() == b"x"

    def test_close_failure_after_rename_tells_truth(self, store, root, monkeypatch):
        from mindckpt.errors import DurabilityError
        from mindckpt.storage import local

        real_close = os.close
        state = {"armed": False}
        real_replace = os.replace
        def replace(a, b):
            real_replace(a, b)
            state["armed"] = True
        def close(fd):
            real_close(fd)
            if state["armed"]:
                state["armed"] = False
                raise OSError(5, "Input/output error")
        monkeypatch.setattr(local.os, "replace", replace)
        monkeypatch.setattr(local.os, "close", close)
        k = os.path.join(root, "c.ckpt")
        with pytest.raises(DurabilityError) as info:
            store.write_bytes(k, b"x", durable=True)
        assert "not written" not in str(info.value) and "in place" in str(info.value)

    def test_stale_temp_of_dead_writer_removed(self, store, root):
        # a child starts a write and is killed; the next save to the directory cleans up
        code = (
            "import os,sys\n"
            "from mindckpt.storage.local import LocalStore\n"
            f"w = LocalStore().open_write({os.path.join(root, 'big.ckpt')!r})\n"
            "w.write(b'x' * 100000)\n"
            "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
            "import time; time.sleep(60)\n"
        )
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        assert child.stdout.readline() == b"ready\n"
        temps = [n for n in os.listdir(root) if TEMP_PATTERN.match(n)]
        assert len(temps) == 1
        # while the writer lives, its file is never touched
        assert LocalStore.clean_stale_temps(root) == []
        child.kill()
        child.wait()
        store.write_bytes(os.path.join(root, "other.ckpt"), b"y")
        assert [n for n in os.listdir(root) if TEMP_PATTERN.match(n)] == []
        assert sorted(os.listdir(root)) == ["other.ckpt"]
