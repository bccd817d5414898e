"""Numba kernels of the neural rankers (DNN, Wide&Deep): embedding look-ups, dense layers,
the wide part on CSR, sparse gradients and the optimiser updates — one call trains many batches.

Pure functions on arrays; validation and layout live in :mod:`recforge.rank._nn`. The readable
NumPy specification is :mod:`recforge._reference.nn`.

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
coordinate has a zero gradient). Dense layers use BLAS (``np.dot``) and dense updates.
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
chunks' gradients are summed in chunk order and the updates are sequential, so results are
bit-identical for a seed whatever the number of threads (with BLAS on one thread per chunk).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .. import _core
from ._chunks import next_chunk
from ._jit import jit
from .linear import _log1pexp, _sigmoid

# optimiser codes, defined once in csrc/include/recforge/constants.hpp
SGD, ADAGRAD, ADAM, FTRL = (
    _core.constants.NN_OPTIMIZERS[k] for k in ("sgd", "adagrad", "adam", "ftrl")
)


@jit
def gather_inputs(codes, dense, rows, col_flat_off, col_dim, col_in_off, emb, x0):
    """x0[r] = [emb(c, codes[rows[r], c]) for every column c] + dense[rows[r]]; x0 (len(rows), d0)."""
    n_cat = codes.shape[1]
    n_num = dense.shape[1]
    num_off = x0.shape[1] - n_num
    for r in range(rows.shape[0]):
        i = rows[r]
        for c in range(n_cat):
            d = col_dim[c]
            base = col_flat_off[c] + codes[i, c] * d
            o = col_in_off[c]
            for j in range(d):
                x0[r, o + j] = emb[base + j]
        for j in range(n_num):
            x0[r, num_off + j] = dense[i, j]


@jit
def _layer_offsets(sizes):
    L = sizes.shape[0] - 1
    w_off = np.empty(L, np.int64)
    b_off = np.empty(L, np.int64)
    a_off = np.empty(L + 1, np.int64)
    o = 0
    a = 0
    for l in range(L):
        w_off[l] = o
        o += sizes[l] * sizes[l + 1]
        b_off[l] = o
        o += sizes[l + 1]
        a_off[l] = a
        a += sizes[l + 1]
    a_off[L] = a
    return w_off, b_off, a_off


@jit
def seed_rng(seed):
    """Seed the random generator of the calling thread's Numba code (dropout masks)."""
    np.random.seed(seed)


@jit
def mlp_forward(x0, params, sizes, acts, dropout=0.0):
    """Forward pass of the dense layers (ReLU hidden, linear output) on the rows of ``x0``.

    ``dropout`` > 0 (training only): each hidden unit is zeroed with that probability and the kept
    ones are scaled by ``1 / (1 - dropout)`` (inverted dropout; masks from Numba's generator, see
    :func:`seed_rng`).

    ``acts`` (flat, >= nb * sum(sizes[1:])) receives layer l's output at
    ``a_off[l] * nb`` as a (nb, sizes[l+1]) block; returns the (nb,) logits (a view of ``acts``).
    """
    nb = x0.shape[0]
    L = sizes.shape[0] - 1
    w_off, b_off, a_off = _layer_offsets(sizes)
    inp = x0
    out = x0
    for l in range(L):
        k, m = sizes[l], sizes[l + 1]
        W = params[w_off[l] : w_off[l] + k * m].reshape((k, m))
        b = params[b_off[l] : b_off[l] + m]
        out = acts[a_off[l] * nb : a_off[l] * nb + nb * m].reshape((nb, m))
        np.dot(inp, W, out)
        relu = l < L - 1
        drop = relu and dropout > 0.0
        keep_scale = np.float32(1.0 / (1.0 - dropout)) if drop else np.float32(1.0)
        for r in range(nb):
            for j in range(m):
                v = out[r, j] + b[j]
                if relu and v < 0.0:
                    v = 0.0
                if drop:
                    if np.random.random() < dropout:
                        v = 0.0
                    else:
                        v *= keep_scale
                out[r, j] = v
        inp = out
    return out.reshape(nb)


@jit
def mlp_backward(x0, params, sizes, acts, dz, l2, grads, dropout=0.0):
    """Backward pass: ``grads`` (flat like ``params``) = d loss / d params, returns d loss / d x0.

    ``dz`` (nb,) float32 is d loss / d logit; ``l2`` adds ``2 * l2 * W`` to each kernel's gradient;
    ``dropout`` as in the forward pass (dropped units are the zeros of the stored activations).
    """
    keep_scale = np.float32(1.0 / (1.0 - dropout))
    nb = x0.shape[0]
    L = sizes.shape[0] - 1
    w_off, b_off, a_off = _layer_offsets(sizes)
    G = dz.reshape((nb, 1)).copy()
    dx0 = G
    for l in range(L - 1, -1, -1):
        k, m = sizes[l], sizes[l + 1]
        W = params[w_off[l] : w_off[l] + k * m].reshape((k, m))
        if l == 0:
            inp = x0
        else:
            inp = acts[a_off[l - 1] * nb : a_off[l - 1] * nb + nb * k].reshape((nb, k))
        gW = np.dot(inp.T, G)
        o = w_off[l]
        for a in range(k):
            for j in range(m):
                grads[o + a * m + j] = gW[a, j] + 2.0 * l2 * W[a, j]
        o = b_off[l]
        for j in range(m):
            s = np.float32(0.0)
            for r in range(nb):
                s += G[r, j]
            grads[o + j] = s
        Gp = np.dot(G, W.T)
        if l > 0:
            for r in range(nb):
                for a in range(k):
                    if inp[r, a] <= 0.0:
                        Gp[r, a] = 0.0
                    elif dropout > 0.0:
                        Gp[r, a] *= keep_scale
        G = Gp
        dx0 = Gp
    return dx0


@jit
def wide_logits(indptr, indices, data, rows, wide_w, z):
    """z[r] += x_wide[rows[r]] . wide_w."""
    for r in range(rows.shape[0]):
        i = rows[r]
        s = np.float32(0.0)
        for p in range(indptr[i], indptr[i + 1]):
            s += data[p] * wide_w[indices[p]]
        z[r] += s


@jit
def _activations(n_rows, sizes):
    """Scratch for :func:`mlp_forward`'s layer outputs on ``n_rows`` rows: float32 (n_rows * sum(sizes[1:]),)."""
    return np.empty(n_rows * _layer_offsets(sizes)[2][-1], np.float32)


@jit
def _forward(inputs, wide, params, sizes, rows, x0, acts, dropout):
    """Logits of ``rows``: inputs gathered into ``x0``, the dense layers, plus the wide part if any.

    ``inputs`` = ``(codes, dense, col_flat_off, col_dim, col_in_off, emb)`` (see
    :func:`gather_inputs`), ``wide`` = ``(has_wide, w_indptr, w_indices, w_data, wide_w)`` (see
    :func:`wide_logits`). Returns float32 (len(rows),), a view of ``acts``.
    """
    codes, dense, col_flat_off, col_dim, col_in_off, emb = inputs
    gather_inputs(codes, dense, rows, col_flat_off, col_dim, col_in_off, emb, x0)
    z = mlp_forward(x0, params, sizes, acts, dropout)
    has_wide, w_indptr, w_indices, w_data, wide_w = wide
    if has_wide:
        wide_logits(w_indptr, w_indices, w_data, rows, wide_w, z)
    return z


@jit
def update(p, g, m, v, opt, lr, alpha, b1, b2, eps, l1, l2):
    """One optimiser step on the vectors ``p`` with gradient ``g`` and states ``m``, ``v`` (in place).

    ``alpha`` is Adam's bias-corrected rate ``lr * sqrt(1 - b2^t) / (1 - b1^t)``; ``l1``/``l2``
    are FTRL's penalties.
    """
    n = p.shape[0]
    if opt == SGD:
        for j in range(n):
            p[j] -= lr * g[j]
    elif opt == ADAGRAD:
        for j in range(n):
            gj = g[j]
            m[j] += gj * gj
            p[j] -= lr * gj / math.sqrt(m[j] + eps)
    elif opt == ADAM:
        for j in range(n):
            gj = g[j]
            m[j] += (gj - m[j]) * (1.0 - b1)
            v[j] += (gj * gj - v[j]) * (1.0 - b2)
            p[j] -= alpha * m[j] / (math.sqrt(v[j]) + eps)
    else:
        for j in range(n):
            gj = g[j]
            a_new = m[j] + gj * gj
            v[j] += gj - (math.sqrt(a_new) - math.sqrt(m[j])) / lr * p[j]
            m[j] = a_new
            lin = v[j]
            if lin > l1:
                p[j] = (l1 - lin) / (math.sqrt(a_new) / lr + 2.0 * l2)
            elif lin < -l1:
                p[j] = (-l1 - lin) / (math.sqrt(a_new) / lr + 2.0 * l2)
            else:
                p[j] = 0.0


@jit
def _emb_grads(
    codes, rows, col_row_off, col_dim, col_in_off, dx0, mark, touched, touched_col, goff, gbuf
):
    """Sum d loss / d x0 into the embedding rows the batch uses; returns the number of such rows.

    Row t of the compact list: global id ``touched[t]``, column ``touched_col[t]``, gradient at
    ``gbuf[goff[t]:goff[t] + col_dim[c]]``. ``mark`` (global id -> t, -1 = untouched) is reset by
    the caller.
    """
    nt = 0
    pos = 0
    n_cat = codes.shape[1]
    for r in range(rows.shape[0]):
        i = rows[r]
        for c in range(n_cat):
            g = col_row_off[c] + codes[i, c]
            d = col_dim[c]
            t = mark[g]
            if t < 0:
                t = nt
                mark[g] = t
                touched[t] = g
                touched_col[t] = c
                goff[t] = pos
                for j in range(d):
                    gbuf[pos + j] = 0.0
                pos += d
                nt += 1
            o = goff[t]
            io = col_in_off[c]
            for j in range(d):
                gbuf[o + j] += dx0[r, io + j]
    return nt


@jit
def _wide_grads(indptr, indices, data, rows, dz, mark, touched, gbuf):
    """Sum dz * x_wide into the wide coordinates the batch uses; returns how many."""
    nt = 0
    for r in range(rows.shape[0]):
        i = rows[r]
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            t = mark[j]
            if t < 0:
                t = nt
                mark[j] = t
                touched[t] = j
                gbuf[t] = 0.0
                nt += 1
            gbuf[t] += dz[r] * data[p]
    return nt


#: rows of a mini-batch per chunk of :func:`train_batches`: the chunks, not the threads, fix the
#: order in which gradients are summed, so results do not depend on the number of threads
TRAIN_CHUNK_ROWS = 64


@jit
def _dropout_seed(seed, step, chunk):
    """Seed of the dropout masks of chunk ``chunk`` at optimiser step ``step`` (a splitmix64 mix,
    31 bits): the masks depend on the chunk, never on the thread that takes it."""
    z = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
    z ^= np.uint64(step) * np.uint64(0xBF58476D1CE4E5B9)
    z ^= np.uint64(chunk) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return np.int64(z & np.uint64(0x7FFFFFFF))


@jit
def _row_losses(z, rows, y, sw, nb, row_loss, dz):
    """Per row of ``rows`` with logit ``z[r]``: ``row_loss[r]`` (float64) = weighted log-loss,
    ``dz[r]`` (float32) = its gradient by the logit divided by the batch size ``nb``."""
    for r in range(rows.shape[0]):
        i = rows[r]
        zr = np.float64(z[r])
        row_loss[r] = sw[i] * (_log1pexp(zr) - y[i] * zr)
        dz[r] = np.float32(sw[i] * (_sigmoid(zr) - y[i]) / nb)


@jit
def _chunk_pass(
    codes,
    dense,
    y,
    sw,
    rows,
    nb,
    col_flat_off,
    col_dim,
    col_in_off,
    emb,
    sizes,
    params,
    has_wide,
    w_indptr,
    w_indices,
    w_data,
    wide_w,
    dropout,
    x0,
    acts,
    dx0,
    dz,
    row_loss,
    grads,
):
    """Forward and backward pass of one chunk (``rows``) of a batch of ``nb`` rows.

    Fills ``x0`` and ``dx0`` (len(rows), d0) float32 (inputs and d loss / d x0), ``dz``
    (len(rows),) float32 (d loss / d logit), ``row_loss`` (len(rows),) float64 (weighted
    log-loss) and ``grads`` (like ``params``: d loss / d params of these rows, no l2 term).
    """
    inputs = (codes, dense, col_flat_off, col_dim, col_in_off, emb)
    wide = (has_wide, w_indptr, w_indices, w_data, wide_w)
    z = _forward(inputs, wide, params, sizes, rows, x0, acts, dropout)
    _row_losses(z, rows, y, sw, nb, row_loss, dz)
    dx0[:, :] = mlp_backward(x0, params, sizes, acts, dz, 0.0, grads, dropout)


@jit
def _sum_chunk_grads(chunk_grads, n_chunks, params, sizes, l2, grads):
    """grads = the chunks' gradients summed in chunk order, plus ``2 * l2 * W`` on the kernels."""
    n_params = params.shape[0]
    for q in range(n_params):
        grads[q] = chunk_grads[q]
    for c in range(1, n_chunks):
        o = c * n_params
        for q in range(n_params):
            grads[q] += chunk_grads[o + q]
    w_off, b_off, _ = _layer_offsets(sizes)
    for l in range(sizes.shape[0] - 1):
        for q in range(w_off[l], b_off[l]):
            grads[q] = grads[q] + 2.0 * l2 * params[q]


@jit(parallel=True)
def train_batches(
    codes,
    dense,
    y,
    sw,
    order,
    start,
    stop,
    batch_size,
    col_flat_off,
    col_row_off,
    col_dim,
    col_in_off,
    emb,
    emb_m,
    emb_v,
    sizes,
    params,
    p_m,
    p_v,
    has_wide,
    w_indptr,
    w_indices,
    w_data,
    wide_w,
    wide_m,
    wide_v,
    opt,
    lr,
    b1,
    b2,
    eps,
    l2,
    wide_opt,
    wide_lr,
    wide_l1,
    wide_l2,
    step,
    dropout=0.0,
    dropout_seed=0,
    n_workers=1,
):
    """Train on the rows ``order[start:stop]`` in mini-batches of ``batch_size``; returns the summed
    weighted log-loss (float64) of those rows before each batch's update.

    ``step`` (int64 array of 1) counts optimiser steps (Adam's ``t``), incremented per batch;
    ``dropout`` is the hidden units' dropout rate, its masks drawn from ``dropout_seed``, the step
    and the chunk. Each batch's forward and backward pass runs in chunks of
    :data:`TRAIN_CHUNK_ROWS` rows that ``n_workers`` threads pull dynamically (a thread the OS
    preempts delays only the chunk it holds); the chunks' gradients are summed in chunk order and
    the updates are serial, so results are the same for any ``n_workers``.
    """
    n_cat = codes.shape[1]
    d0 = sizes[0]
    n_params = params.shape[0]
    max_dim = 0
    for c in range(n_cat):
        max_dim = max(max_dim, col_dim[c])
    n_rows_total = col_row_off[n_cat] if n_cat > 0 else 0
    chunk = TRAIN_CHUNK_ROWS
    acts_per_chunk = chunk * _layer_offsets(sizes)[2][-1]
    max_chunks = (batch_size + chunk - 1) // chunk
    x0_buf = np.empty(batch_size * d0, np.float32)
    dx0_buf = np.empty(batch_size * d0, np.float32)
    acts = np.empty(max_chunks * acts_per_chunk, np.float32)
    chunk_grads = np.empty(max_chunks * n_params, np.float32)
    grads = np.empty(n_params, np.float32)
    dz = np.empty(batch_size, np.float32)
    row_loss = np.empty(batch_size, np.float64)
    counter = np.zeros(1, np.int64)
    mark = np.full(n_rows_total, -1, np.int64)
    cap = batch_size * n_cat
    touched = np.empty(cap, np.int64)
    touched_col = np.empty(cap, np.int64)
    goff = np.empty(cap, np.int64)
    gbuf = np.empty(cap * max_dim, np.float32)
    n_wide = wide_w.shape[0]
    wmark = np.full(n_wide, -1, np.int64)
    wtouched = np.empty(n_wide, np.int64)
    wg = np.empty(n_wide, np.float32)
    wp = np.empty(n_wide, np.float32)
    wm = np.empty(n_wide, np.float32)
    wv = np.empty(n_wide, np.float32)
    total = 0.0
    b1f = np.float32(b1)
    b2f = np.float32(b2)
    for s0 in range(start, stop, batch_size):
        s1 = min(s0 + batch_size, stop)
        nb = s1 - s0
        rows = order[s0:s1]
        n_chunks = (nb + chunk - 1) // chunk
        t = step[0] + 1
        counter[0] = 0
        for _ in prange(n_workers):
            c = next_chunk(counter)
            while c < n_chunks:
                r0 = c * chunk
                r1 = min(nb, r0 + chunk)
                if dropout > 0.0:
                    seed_rng(_dropout_seed(dropout_seed, t, c))
                _chunk_pass(
                    codes,
                    dense,
                    y,
                    sw,
                    rows[r0:r1],
                    nb,
                    col_flat_off,
                    col_dim,
                    col_in_off,
                    emb,
                    sizes,
                    params,
                    has_wide,
                    w_indptr,
                    w_indices,
                    w_data,
                    wide_w,
                    dropout,
                    x0_buf[r0 * d0 : r1 * d0].reshape((r1 - r0, d0)),
                    acts[c * acts_per_chunk : (c + 1) * acts_per_chunk],
                    dx0_buf[r0 * d0 : r1 * d0].reshape((r1 - r0, d0)),
                    dz[r0:r1],
                    row_loss[r0:r1],
                    chunk_grads[c * n_params : (c + 1) * n_params],
                )
                c = next_chunk(counter)
        for r in range(nb):
            total += row_loss[r]
        _sum_chunk_grads(chunk_grads, n_chunks, params, sizes, l2, grads)
        dzb = dz[:nb]
        dx0 = dx0_buf[: nb * d0].reshape((nb, d0))
        step[0] = t
        alpha = np.float32(lr * math.sqrt(1.0 - b2f**t) / (1.0 - b1f**t))
        update(params, grads, p_m, p_v, opt, lr, alpha, b1, b2, eps, 0.0, 0.0)
        if n_cat > 0:
            nt = _emb_grads(
                codes,
                rows,
                col_row_off,
                col_dim,
                col_in_off,
                dx0,
                mark,
                touched,
                touched_col,
                goff,
                gbuf,
            )
            for q in range(nt):
                c = touched_col[q]
                d = col_dim[c]
                o = col_flat_off[c] + (touched[q] - col_row_off[c]) * d
                update(
                    emb[o : o + d],
                    gbuf[goff[q] : goff[q] + d],
                    emb_m[o : o + d],
                    emb_v[o : o + d],
                    opt,
                    lr,
                    alpha,
                    b1,
                    b2,
                    eps,
                    0.0,
                    0.0,
                )
                mark[touched[q]] = -1
        if has_wide:
            nw = _wide_grads(w_indptr, w_indices, w_data, rows, dzb, wmark, wtouched, wg)
            for q in range(nw):
                j = wtouched[q]
                wp[q] = wide_w[j]
                wm[q] = wide_m[j]
                wv[q] = wide_v[j]
            update(
                wp[:nw],
                wg[:nw],
                wm[:nw],
                wv[:nw],
                wide_opt,
                wide_lr,
                alpha
                if wide_opt == ADAM and wide_lr == lr
                else np.float32(wide_lr * math.sqrt(1.0 - b2f**t) / (1.0 - b1f**t)),
                b1,
                b2,
                eps,
                wide_l1,
                wide_l2,
            )
            for q in range(nw):
                j = wtouched[q]
                wide_w[j] = wp[q]
                wide_m[j] = wm[q]
                wide_v[j] = wv[q]
                wmark[j] = -1
    return total


@jit
def predict_logits(
    codes,
    dense,
    lo,
    hi,
    col_flat_off,
    col_dim,
    col_in_off,
    emb,
    sizes,
    params,
    has_wide,
    w_indptr,
    w_indices,
    w_data,
    wide_w,
    chunk,
    out,
):
    """out[lo:hi] = logits (float64) of rows lo..hi-1, computed in blocks of ``chunk`` rows."""
    d0 = sizes[0]
    x0_buf = np.empty(chunk * d0, np.float32)
    acts = _activations(chunk, sizes)
    inputs = (codes, dense, col_flat_off, col_dim, col_in_off, emb)
    wide = (has_wide, w_indptr, w_indices, w_data, wide_w)
    for s0 in range(lo, hi, chunk):
        s1 = min(s0 + chunk, hi)
        nb = s1 - s0
        rows = np.arange(s0, s1)
        x0 = x0_buf[: nb * d0].reshape((nb, d0))
        z = _forward(inputs, wide, params, sizes, rows, x0, acts, 0.0)
        for r in range(nb):
            out[s0 + r] = z[r]


@jit
def loss_grad(
    codes,
    dense,
    y,
    sw,
    rows,
    col_flat_off,
    col_row_off,
    col_dim,
    col_in_off,
    emb,
    sizes,
    params,
    has_wide,
    w_indptr,
    w_indices,
    w_data,
    wide_w,
    l2,
    grads,
    emb_grad,
    wide_grad,
):
    """Loss and gradients of one batch (``rows``) without updating anything (for tests and tools).

    Returns the batch loss ``sum s_i logloss_i / B + l2 * sum ||W||^2`` (float64); fills ``grads``
    (like ``params``), ``emb_grad`` (like ``emb``, zero on untouched rows) and ``wide_grad`` (like
    ``wide_w``) in place.
    """
    nb = rows.shape[0]
    d0 = sizes[0]
    L = sizes.shape[0] - 1
    x0 = np.empty((nb, d0), np.float32)
    acts = _activations(nb, sizes)
    inputs = (codes, dense, col_flat_off, col_dim, col_in_off, emb)
    wide = (has_wide, w_indptr, w_indices, w_data, wide_w)
    z = _forward(inputs, wide, params, sizes, rows, x0, acts, 0.0)
    dz = np.empty(nb, np.float32)
    row_loss = np.empty(nb, np.float64)
    _row_losses(z, rows, y, sw, nb, row_loss, dz)
    total = 0.0
    for r in range(nb):
        total += row_loss[r]
    dx0 = mlp_backward(x0, params, sizes, acts, dz, l2, grads)
    reg = 0.0
    w_off, b_off, _ = _layer_offsets(sizes)
    for l in range(L):
        for q in range(w_off[l], b_off[l]):
            reg += np.float64(params[q]) ** 2
    emb_grad[:] = 0.0
    n_cat = codes.shape[1]
    for r in range(nb):
        i = rows[r]
        for c in range(n_cat):
            d = col_dim[c]
            o = col_flat_off[c] + codes[i, c] * d
            for j in range(d):
                emb_grad[o + j] += dx0[r, col_in_off[c] + j]
    wide_grad[:] = 0.0
    if has_wide:
        for r in range(nb):
            i = rows[r]
            for p in range(w_indptr[i], w_indptr[i + 1]):
                wide_grad[w_indices[p]] += dz[r] * w_data[p]
    return total / nb + l2 * reg


def _warmup():
    """Compile the kernels for the signatures DNN and Wide&Deep call (``rank/_nn.py``); the wide
    part's indptr is int64 (DNN's empty one, a large wide matrix) or int32 (scipy's own)."""
    from numba import types

    from ._jit import array_type, dispatcher_of

    i4, i8, f4, f8 = (array_type(d) for d in (np.int32, np.int64, np.float32, np.float64))
    codes, dense = array_type(np.int32, 2), array_type(np.float32, 2)
    int_, float_, bool_ = types.int64, types.float64, types.boolean
    layout = (i8, i8, i8, i8)  # col_flat_off, col_row_off, col_dim, col_in_off
    for w_indptr in (i8, i4):
        wide = (bool_, w_indptr, i4, f4, f4)  # has_wide, indptr, indices, data, wide_w
        dispatcher_of(train_batches).compile(
            (
                codes,
                dense,
                f8,
                f8,
                i8,
                int_,
                int_,
                int_,
                *layout,
                f4,
                f4,
                f4,
                i8,
                f4,
                f4,
                f4,
                *wide,
                f4,
                f4,
                int_,
                float_,
                float_,
                float_,
                float_,
                float_,
                int_,
                float_,
                float_,
                float_,
                i8,
                float_,
                int_,
                int_,
            )
        )
        predict_logits.compile((codes, dense, int_, int_, i8, i8, i8, f4, i8, f4, *wide, int_, f8))
    loss_grad.compile(
        (codes, dense, f8, f8, i8, *layout, f4, i8, f4, bool_, i8, i4, f4, f4, float_, f4, f4, f4)
    )
    seed_rng.compile((int_,))
