"""recforge.distributed._memory and the size of a worker's recommend calls."""

from __future__ import annotations

import threading

import pytest

from recforge.data import synthetic_interactions
from recforge.distributed import _memory
from recforge.distributed.recommend import MIN_USERS_PER_CALL, recommend_step, users_per_call
from recforge.recall import LFM, ItemCF


class FakeLibc:
    """Records the allocator calls instead of making them."""

    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.fixture
def fake_libc(monkeypatch):
    libc = FakeLibc()
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setattr(_memory, "_glibc", lambda: libc)
    return libc


def test_thresholds_raised_once_and_restored_when_the_last_user_leaves(fake_libc):
    raised = [
        ("mallopt", _memory._M_MMAP_THRESHOLD, _memory.MMAP_THRESHOLD_BYTES),
        ("mallopt", _memory._M_TRIM_THRESHOLD, _memory.TRIM_THRESHOLD_BYTES),
    ]
    restored = [
        ("mallopt", _memory._M_MMAP_THRESHOLD, 128 * 1024),
        ("mallopt", _memory._M_TRIM_THRESHOLD, 65536),
        ("malloc_trim", 0),
    ]
    with _memory.reuse_freed_memory():
        assert fake_libc.calls == raised
        with _memory.reuse_freed_memory():  # a second task of the same process
            assert fake_libc.calls == raised
        assert fake_libc.calls == raised
    assert fake_libc.calls == raised + restored
    assert _memory._active == 0


def test_restored_after_an_error_and_across_threads(fake_libc):
    inside, release = threading.Barrier(3), threading.Event()

    def task():
        with _memory.reuse_freed_memory():
            inside.wait()
            release.wait()

    threads = [threading.Thread(target=task) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()
    assert _memory._active == 2 and len(fake_libc.calls) == 2
    release.set()
    for t in threads:
        t.join()
    assert _memory._active == 0 and fake_libc.calls[-1] == ("malloc_trim", 0)
    with pytest.raises(RuntimeError, match="boom"), _memory.reuse_freed_memory():
        raise RuntimeError("boom")
    assert _memory._active == 0 and fake_libc.calls[-1] == ("malloc_trim", 0)


def test_environment_mmap_threshold_is_what_comes_back(fake_libc, monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    with _memory.reuse_freed_memory():
        pass
    assert ("mallopt", _memory._M_MMAP_THRESHOLD, 1048576) in fake_libc.calls[2:]


def test_left_alone_without_the_variable(monkeypatch):
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert _memory._glibc() is None
    with _memory.reuse_freed_memory():
        assert _memory._active == 0


def test_users_per_call_keeps_a_dense_block_below_the_mmap_threshold():
    for n_items in (1, 1000, 10_000, 100_000):
        step = users_per_call(n_items, 4096)
        assert 1 <= step <= 4096
        if MIN_USERS_PER_CALL < step < 4096:
            assert step * n_items * 4 < _memory.MMAP_THRESHOLD_BYTES
    assert users_per_call(10_000, 4096) == 837
    assert users_per_call(10, 100) == 100  # batch_size is the upper bound
    assert users_per_call(10_000_000, 4096) == MIN_USERS_PER_CALL
    assert users_per_call(10_000_000, 5) == 5


def test_small_calls_only_for_models_that_score_dense_blocks():
    x = synthetic_interactions(60, 5000, 900, seed=1)
    lfm = LFM(n_factors=4, epochs=1, n_threads=1).fit(x)
    itemcf = ItemCF(n_neighbors=5, n_threads=1).fit(x)
    assert recommend_step(lfm, 4096) == users_per_call(lfm.n_items_, 4096) < 4096
    assert recommend_step(itemcf, 4096) == 4096  # its fused kernel allocates no dense block
