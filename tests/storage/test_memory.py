import pytest

from mindckpt.storage.memory import MemoryStore

from .conformance import StoreConformance


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self):
        return MemoryStore()

    @pytest.fixture
    def root(self):
        return "/run1"
