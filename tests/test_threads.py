"""The one BLAS-limit mechanism (``recforge._threads.limit_blas_threads``): set, restored, cheap."""

import sys
import types

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from recforge import _threads
from recforge._threads import limit_blas_threads


def blas_threads() -> list:
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


@pytest.mark.parametrize("outer", [1, 2, 3])
@pytest.mark.parametrize("n", [1, 2])
def test_sets_every_blas_pool_and_restores_it(outer, n):
    with threadpool_limits(limits=outer, user_api="blas"):
        before = blas_threads()
        with limit_blas_threads(n) as limit:
            assert limit == n
            assert set(blas_threads()) == {n}
        assert blas_threads() == before


def test_restores_on_error_and_when_nested():
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        with pytest.raises(RuntimeError, match="boom"):
            with limit_blas_threads(1):
                with limit_blas_threads(3):
                    assert set(blas_threads()) == {3}
                assert set(blas_threads()) == {1}
                raise RuntimeError("boom")
        assert blas_threads() == before


def test_only_pools_whose_count_differs_are_set(monkeypatch):
    """A pool already at the limit is neither set nor restored (one ctypes read per pool)."""

    class FakeLibrary:
        def __init__(self, n):
            self.n, self.calls = n, []

        def get_num_threads(self):
            return self.n

        def set_num_threads(self, n):
            self.calls.append(n)
            self.n = n

    at_limit, above, unknown = FakeLibrary(1), FakeLibrary(4), FakeLibrary(None)
    monkeypatch.setattr(_threads, "_blas_libraries", lambda: [at_limit, above, unknown])
    with limit_blas_threads(1):
        assert (at_limit.n, above.n) == (1, 1)
    assert at_limit.calls == [] and unknown.calls == []
    assert above.calls == [1, 4]


def test_libraries_found_once_and_again_after_an_import(monkeypatch):
    found = []

    class FakeController:
        def select(self, user_api):
            assert user_api == "blas"
            found.append(len(sys.modules))
            return types.SimpleNamespace(lib_controllers=[])

    import threadpoolctl

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", FakeController)
    monkeypatch.setattr(_threads, "_BLAS_LIBRARIES", {})
    for _ in range(3):
        with limit_blas_threads(1):
            pass
    assert len(found) == 1
    monkeypatch.setitem(sys.modules, "recforge_test_new_module", types.ModuleType("x"))
    with limit_blas_threads(1):
        pass
    assert len(found) == 2


@pytest.mark.parametrize("n, error", [(0, ValueError), (1.5, TypeError), (None, TypeError)])
def test_bad_thread_count(n, error):
    with pytest.raises(error, match="n must be"):
        with limit_blas_threads(n):
            pass
