"""Kernels of the neural rankers (DNN, Wide&Deep): embedding look-ups, dense layers, the wide
part on CSR, sparse gradients and the optimiser updates — one call trains many batches. C++ (in
``recforge._core``, headers ``csrc/include/recforge/nn_forward.hpp`` and ``nn_train.hpp``), the
dense layers through scipy's BLAS (``sgemm``/``sgemv``/``sdot`` from ``scipy.linalg.cython_blas``,
the calls Numba's ``np.dot`` made when these kernels were Numba's, so results are the same bits).
No Numba: a fit or a prediction does not start it. BLAS must run one thread per call while
they run (:func:`recforge._threads.load_scipy_blas`, then
:func:`recforge._threads.limit_blas_threads`).

Pure functions on arrays; validation of the model's settings and the layout live in
:mod:`recforge.rank._nn` (the bindings check every array against the others before they run).
The readable NumPy specification is :mod:`recforge._reference.nn`.

Layout (all float32 unless said otherwise)::

    codes   (n, n_cat) int32          row i's code in each categorical column
    dense   (n, n_num) float32        standardised numeric inputs
    emb     flat                      column c's table: emb[col_flat_off[c] + code * col_dim[c] + j]
    col_row_off (n_cat,) int64        global row id of (c, code) = col_row_off[c] + code
    col_in_off  (n_cat,) int64        where column c's vector sits in the input vector x0
    sizes   (L + 1,) int64            [d0, h1, ..., h_{L-1}, 1]; d0 = sum(col_dim) + n_num
    params  flat                      layer l: W_l (sizes[l], sizes[l+1]) row-major, then b_l (sizes[l+1],)
    wide    CSR (indptr int64, indices int32, data float32) and weights wide_w (n_wide,)

The logit of a row is ``mlp(x0) + x_wide . wide_w`` (the output bias is the last layer's ``b``).
Loss of a batch of ``B`` rows: ``sum_i s_i * logloss_i / B`` (Keras' ``SUM_OVER_BATCH_SIZE``) plus
``l2 * sum ||W_l||^2`` over the dense kernels.

Sparse updates: only the embedding rows and wide coordinates a batch touches get a gradient and an
optimiser update ("lazy" Adam for those; Adagrad, SGD and FTRL are exact since an untouched
coordinate has a zero gradient). Dense layers use BLAS and dense updates.
Optimiser codes :data:`SGD`, :data:`ADAGRAD`, :data:`ADAM`, :data:`FTRL` (wide part only). State arrays ``m``/``v``:
Adam moments; Adagrad accumulator in ``m``; FTRL accumulator in ``m`` and linear term in ``v``.
Formulas follow Keras 3 (the oracle tests compare one step with Keras):

* Adam: ``m += (g - m)(1 - b1)``; ``v += (g^2 - v)(1 - b2)``;
  ``p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``
* Adagrad: ``m += g^2``; ``p -= lr * g / sqrt(m + eps)`` (``m`` starts at 0.1)
* FTRL (McMahan et al. 2013, Keras' parametrisation, learning-rate power -1/2, ``m`` starts at 0.1):
  ``a' = m + g^2``; ``v += g - (sqrt(a') - sqrt(m)) / lr * p``; ``m = a'``;
  ``p = (clip(v, -l1, l1) - v) / (sqrt(a') / lr + 2 l2)``

Training splits each mini-batch into fixed chunks of rows that the threads pull dynamically; the
chunks' gradients are summed in chunk order and each parameter's update depends only on its own
gradient, so results are bit-identical for a seed whatever the number of threads (with BLAS on one
thread per chunk: :func:`recforge._threads.limit_blas_threads`). The threads stay in one parallel
call: a thread with nothing left to claim re-computes a late chunk (one a preempted thread holds),
then shares the batch's dense update in blocks (see :func:`train_batches`). Dropout masks come from
a Mersenne Twister seeded per chunk and step (Numba's ``np.random`` stream, which the Numba kernels
used), never from the thread.
"""

from __future__ import annotations

from .. import _core

# optimiser codes, defined once in csrc/include/recforge/constants.hpp
SGD, ADAGRAD, ADAM, FTRL = (
    _core.constants.NN_OPTIMIZERS[k] for k in ("sgd", "adagrad", "adam", "ftrl")
)

#: rows of a mini-batch per chunk of :func:`train_batches`: the chunks, not the threads, fix the
#: order in which gradients are summed, so results do not depend on the number of threads
TRAIN_CHUNK_ROWS = _core.NN_TRAIN_CHUNK_ROWS
#: parameters per block of a batch's dense-layer update: the workers pull the blocks as they pull
#: the chunks (each parameter's update depends only on its own gradient and state)
UPDATE_BLOCK = _core.NN_UPDATE_BLOCK
#: a chunk another worker holds is "late" once its computation has run this many times the fastest
#: full chunk pass seen in the call: then the holder was most likely preempted
LATE_CHUNK_FACTOR = _core.NN_LATE_CHUNK_FACTOR
#: how long a chunk may run before it counts as late while no full chunk pass has been timed (ns)
FIRST_LATE_NS = _core.NN_FIRST_LATE_NS


#: ``train_batches(codes, dense, y, sw, order, start, stop, batch_size, col_flat_off, col_row_off,
#: col_dim, col_in_off, emb, emb_m, emb_v, sizes, params, p_m, p_v, has_wide, w_indptr, w_indices,
#: w_data, wide_w, wide_m, wide_v, opt, lr, b1, b2, eps, l2, wide_opt, wide_lr, wide_l1, wide_l2,
#: step, dropout=0.0, dropout_seed=0, n_workers=1) -> float``: train on the rows
#: ``order[start:stop]`` in mini-batches of ``batch_size`` (in place); returns the summed weighted
#: log-loss (float64) of those rows before each batch's update. ``y``, ``sw`` float64, ``order``
#: int64, the optimiser states like their parameters; ``step`` (int64 array of 1) counts optimiser
#: steps (Adam's ``t``), incremented per batch; ``dropout`` is the hidden units' dropout rate, its
#: masks drawn from ``dropout_seed``, the step and the chunk.
#:
#: Each batch's forward and backward pass runs in chunks of :data:`TRAIN_CHUNK_ROWS` rows; the
#: chunks' gradients are summed in chunk order and the updates are serial, so results are the same
#: for any ``n_workers``. The ``n_workers`` threads stay in one parallel call (the GIL released).
#: They pull a batch's chunks from a shared counter; the worker that publishes the last one runs
#: the batch's update and opens the next batch. A worker with nothing left to claim computes a
#: chunk another worker holds but has not published once that chunk is late (it has run
#: :data:`LATE_CHUNK_FACTOR` times as long as the fastest chunk pass: the OS has most likely
#: preempted its worker for a scheduler slice, longer than a whole batch): whoever finishes first
#: publishes it, the other's copy is dropped (each worker writes only its own spare slot), so a
#: preempted thread delays a batch by at most that wait. Once a batch's chunks are all published,
#: the workers pull blocks of :data:`UPDATE_BLOCK` dense parameters to update while that worker
#: updates the embedding rows and wide coordinates; the last part done opens the next batch. A
#: worker waiting (for a chunk it cannot take over yet or for the update) spins briefly, then
#: sleeps — at once when the machine has no core free for its spinning (``/proc/loadavg``: a
#: foreign process on the core it shares, whose time there it would otherwise take from the
#: worker it waits for).
train_batches = _core.nn_train_batches

#: ``loss_grad(codes, dense, y, sw, rows, col_flat_off, col_row_off, col_dim, col_in_off, emb,
#: sizes, params, has_wide, w_indptr, w_indices, w_data, wide_w, l2, grads, emb_grad, wide_grad)
#: -> float``: loss and gradients of one batch (``rows``) without updating anything (for tests
#: and tools). Returns ``sum s_i logloss_i / B + l2 * sum ||W||^2`` (float64); fills ``grads``
#: (like ``params``), ``emb_grad`` (like ``emb``, zero on untouched rows) and ``wide_grad`` (like
#: ``wide_w``) in place.
loss_grad = _core.nn_loss_grad

#: ``predict_logits(codes, dense, lo, hi, col_flat_off, col_row_off, col_dim, col_in_off, emb,
#: sizes, params, has_wide, w_indptr, w_indices, w_data, wide_w, chunk, out, n_threads=1)``:
#: ``out[lo:hi]`` = the logits (float64) of rows ``lo..hi-1``, in blocks of ``chunk`` rows on up
#: to ``n_threads`` threads (the same values on any).
predict_logits = _core.nn_predict_logits
