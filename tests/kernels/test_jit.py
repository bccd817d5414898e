"""``kernels._jit``: parallel kernels run parallel (from the disk cache) in their own process, and
serially only in a child forked after Numba's GNU OpenMP layer started."""

import os

import numpy as np
import pytest

from recforge._threads import numba_threads
from recforge.kernels import _jit
from recforge.kernels.ranking import _hit_matrix, hit_matrix


def _hits():
    rec = np.array([[0, 2, -1], [1, 0, 3]], np.int64)
    return hit_matrix(rec, np.array([0, 1, 3], np.int64), np.array([2, 0, 3], np.int64))


def test_parallel_kernel_stays_parallel_after_the_layer_started():
    # numba_threads starts Numba's threading layer before any parallel kernel ran: that alone
    # once sent every kernel to an uncached serial compilation (7 s first fits, one thread)
    with numba_threads(2):
        hits = _hits()
    assert hits.tolist() == [[False, True, False], [False, True, True]]
    assert not _jit._forked_from_gnu_openmp()
    assert _hit_matrix._serial is None
    assert _hit_matrix.kernel.signatures


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_runs_the_serial_variant():
    with numba_threads(2):
        expected = _hits()
    layer_is_gnu_omp = _jit._gnu_openmp_started()
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code, never return into pytest
        code = 1
        try:
            same = np.array_equal(_hits(), expected)
            serial = _jit._forked_from_gnu_openmp() == layer_is_gnu_omp
            code = 0 if same and serial else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
