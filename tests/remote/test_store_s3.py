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
