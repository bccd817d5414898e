"""recforge::parallel_for: results, exceptions, concurrent callers and fork (via a private self-check)."""

import os
import sys
import threading

import pytest

from recforge import _core


def _expected(n):
    return n * (n - 1)  # sum of 2*t for t < n


@pytest.mark.parametrize(
    "n_tasks, n_threads", [(0, 2), (1, 4), (10, 1), (1000, 2), (1000, 7), (5, 16)]
)
def test_every_task_runs_once(n_tasks, n_threads):
    total, max_tid = _core._parallel_for_check(n_tasks, n_threads)
    assert total == _expected(n_tasks)
    assert max_tid < max(1, min(n_threads, n_tasks))


def test_many_calls_reuse_the_pool():
    for _ in range(2000):
        assert _core._parallel_for_check(64, 2)[0] == _expected(64)


@pytest.mark.parametrize("n_threads", [1, 2, 4])
def test_worker_exception_reaches_python(n_threads):
    with pytest.raises(ValueError, match="task 77 failed"):
        _core._parallel_for_check(1000, n_threads, fail_at=77)
    assert _core._parallel_for_check(1000, n_threads)[0] == _expected(1000)  # the pool still works


def test_concurrent_callers_from_python_threads():
    results, errors = [], []

    def run():
        try:
            for _ in range(200):
                results.append(_core._parallel_for_check(500, 2)[0])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [_expected(500)] * 800


@pytest.mark.filterwarnings(
    "ignore:.*fork.*:DeprecationWarning"
)  # Python >= 3.12 warns about threads + fork
@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="fork() semantics")
def test_after_fork():
    _core._parallel_for_check(100, 2)  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # child: a fresh pool must serve it
        ok = _core._parallel_for_check(1000, 2)[0] == _expected(1000)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
