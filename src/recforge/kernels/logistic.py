"""Logistic-regression kernels of the L-BFGS path and of every LR prediction: loss + gradient and
margins (C++, in ``recforge._core``, header ``csrc/include/recforge/linear.hpp``), and their row
chunking. No Numba: an L-BFGS fit or a prediction does not load it (FTRL-proximal, in Numba, is
:mod:`recforge.kernels.linear`).

Pure functions on arrays; validation lives in :mod:`recforge.rank.linear`. The readable NumPy
specification is :mod:`recforge._reference.linear`.

Threads: the loss/gradient and margin kernels work on a row range and release the GIL. An L-BFGS
pass runs all its row chunks in one call (``loss_grad_*_chunks``) on the caller and up to
``n_threads - 1`` helper threads that it never waits for (``takeover_chunks.hpp``): when the chunks
run out, the caller redoes a chunk that a helper has held for over twice the caller's own time
per chunk (a helper preempted by a foreign process on a busy core) instead of waiting for the
helper to be scheduled again, so a busy core costs a pass about two chunks, and a helper that
runs still does its share. A helper may thus still be inside a chunk after the call has returned;
the call keeps references to the arrays it reads until it leaves, and
:func:`release_pass_inputs` (called at the end of every L-BFGS fit) waits for that. The helpers
sleep between calls, and stay awake for the next one only while the machine has a core free for
them. The margins of a row range run their chunks (``n_threads``) on the C++ thread team of
``parallel.hpp`` (the team shrinks to the cores the machine's other runnable threads leave free).
Neither spins between calls like an OpenMP team (which starves the L-BFGS driver, and everyone
else, on a busy machine). The rows are split into ``n_chunks`` contiguous chunks of about
:data:`PASS_CHUNK_ROWS` rows chosen by :func:`n_chunks_for` from the data's shape only; each
chunk's partial gradient row and loss are written once, by whoever computed them, and the rows
are summed in chunk order, so results are bit-identical for any number of threads.

Layout of the partial-gradient buffer::

    partial[c, :n_features]  sum over rows of chunk c of  s_i (p_i - y_i) x_i
    partial[c, n_features]   sum over rows of chunk c of  s_i (p_i - y_i)        (intercept)
    losses[c]                sum over rows of chunk c of  s_i * logloss_i

Kernels (each on rows ``lo:hi``; X float32 or float64, CSR ``indptr`` int32/int64 and
``indices`` uint16/int32/int64, everything else float64, all C-contiguous; float64 accumulation):

* ``loss_grad_dense(X, y, sw, w, b, lo, hi, g) -> float`` — ``g`` (d + 1,) overwritten with the
  gradient sums above (intercept last); returns the weighted loss sum.
* ``loss_grad_csr(indptr, indices, data, y, sw, w, b, lo, hi, g) -> float`` — the same for CSR.
* ``loss_grad_pattern(indptr, indices, y, sw, w, b, lo, hi, g) -> float`` — CSR whose stored
  values are all 1 (one-hot): reads the sparsity pattern only.
* ``loss_grad_dense_chunks(X, y, sw, w, b, bounds, partial, losses, n_threads)``, and the same
  with ``(indptr, indices, data, ...)`` / ``(indptr, indices, ...)`` for CSR / pattern: every
  chunk ``c`` of rows ``bounds[c]:bounds[c + 1]`` (int64) into ``partial[c]`` (n_chunks, d + 1)
  and ``losses[c]`` (n_chunks,), on the caller and up to ``n_threads - 1`` helpers.
* ``release_pass_inputs()`` — waits until no helper of an earlier pass reads its arrays, and
  drops the pass's references to them.
* ``margins_dense(X, w, b, lo, hi, out, n_threads=1)``, ``margins_csr(indptr, indices, data, w, b,
  lo, hi, out, n_threads=1)`` — ``out[lo:hi] = X[lo:hi] @ w + b`` (each row's own sum: the same
  values on any number of threads).
"""

from __future__ import annotations

import numpy as np

from .. import _core

loss_grad_dense = _core.linear_loss_grad_dense
loss_grad_csr = _core.linear_loss_grad_csr
loss_grad_pattern = _core.linear_loss_grad_pattern
loss_grad_dense_chunks = _core.linear_loss_grad_dense_chunks
loss_grad_csr_chunks = _core.linear_loss_grad_csr_chunks
loss_grad_pattern_chunks = _core.linear_loss_grad_pattern_chunks
release_pass_inputs = _core.linear_release_pass_inputs
margins_dense = _core.linear_margins_dense
margins_csr = _core.linear_margins_csr

CHUNK_ROWS = _core.LINEAR_CHUNK_ROWS  # (16384: linear.hpp's kChunkRows, the margins' chunk)
#: Rows per chunk of an L-BFGS pass (at most MAX_CHUNKS chunks): small enough that a helper's
#: chunk which the caller redoes (a helper preempted on a busy core) is a few per cent of a pass.
PASS_CHUNK_ROWS = 2048
MAX_CHUNKS = 64
MAX_PARTIAL_FLOATS = 1 << 24  # 128 MB of float64 partial gradients at most


def n_chunks_for(n_rows: int, n_features: int) -> int:
    """Row chunks of the loss/gradient kernels: a function of the data's shape only (not of threads)."""
    by_rows = -(-n_rows // PASS_CHUNK_ROWS)
    by_memory = MAX_PARTIAL_FLOATS // (n_features + 1)
    return int(max(1, min(by_rows, MAX_CHUNKS, by_memory)))


def chunk_bounds(n_rows: int, n_chunks: int) -> np.ndarray:
    """``n_chunks + 1`` row boundaries of equal contiguous chunks (int64)."""
    step = -(-n_rows // n_chunks)
    return np.minimum(np.arange(n_chunks + 1, dtype=np.int64) * step, n_rows)


def narrow_indices(indices, n_features: int):
    """Column indices as uint16 when every column fits (a copy, half the bytes of int32 that the
    gather/scatter loops of the CSR and pattern kernels stream each pass), else ``indices``
    unchanged."""
    if n_features <= 1 << 16 and indices.dtype != np.uint16:
        return indices.astype(np.uint16)
    return indices


def all_ones(data) -> bool:
    """True when every stored value of a CSR matrix is 1 (the pattern kernels apply)."""
    return data.size > 0 and _core.linear_all_ones(data)
