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
chunks' gradients are summed in chunk order and each parameter's update depends only on its own
gradient, so results are bit-identical for a seed whatever the number of threads (with BLAS on one
thread per chunk). The threads stay in one parallel region per call: a thread with nothing left
to claim re-computes a late chunk (one a preempted thread holds), then shares the batch's dense
update in blocks (see :func:`train_batches`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .. import _core
from ._chunks import (
    atomic_load,
    atomic_store,
    compare_exchange,
    fetch_add,
    monotonic_ns,
    wait_a_little,
)
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
def _emb_grads(codes, rows, col_row_off, col_dim, col_in_off, dx0, listing, nt, pos):
    """Add d loss / d x0 of ``rows`` (``dx0`` (len(rows), d0)) into the embedding rows they use.

    ``listing`` = ``(mark, touched, touched_col, goff, gbuf)``. Row t of the compact list: global
    id ``touched[t]``, column ``touched_col[t]``, gradient at ``gbuf[goff[t]:goff[t] +
    col_dim[c]]``; ``nt`` rows are listed, using ``gbuf[:pos]`` (0, 0 for a new batch; a batch's
    chunks are added in turn). Returns the new ``(nt, pos)``. ``mark`` (global id -> t, -1 =
    untouched) is reset by the caller.
    """
    mark, touched, touched_col, goff, gbuf = listing
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
    return nt, pos


@jit
def _wide_grads(indptr, indices, data, rows, dz, mark, touched, gbuf, nt):
    """Add dz * x_wide of ``rows`` into the wide coordinates they use (``nt`` listed so far, 0 for
    a new batch); returns how many are listed."""
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
def _chunk_pass(inputs, wide, y, sw, rows, nb, sizes, params, dropout, buffers, done, done_at):
    """Forward and backward pass of one chunk (``rows``) of a batch of ``nb`` rows.

    ``inputs`` and ``wide`` as :func:`_forward` takes them. ``buffers`` = ``(x0, acts, dx0, dz,
    row_loss, grads)``: fills ``x0`` and ``dx0`` (len(rows), d0) float32 (inputs and d loss /
    d x0), ``acts`` (the layers' outputs, see :func:`mlp_forward`), ``dz`` (len(rows),) float32
    (d loss / d logit), ``row_loss`` (len(rows),) float64 (weighted log-loss) and ``grads`` (like
    ``params``: d loss / d params of these rows, no l2 term). Gives up after the forward pass when
    ``done[done_at]`` (int64) is no longer -1 (another thread published this chunk); returns
    whether the pass ran to the end.
    """
    x0, acts, dx0, dz, row_loss, grads = buffers
    z = _forward(inputs, wide, params, sizes, rows, x0, acts, dropout)
    if atomic_load(done, done_at) != -1:
        return False
    _row_losses(z, rows, y, sw, nb, row_loss, dz)
    dx0[:, :] = mlp_backward(x0, params, sizes, acts, dz, 0.0, grads, dropout)
    return True


@jit
def _add_l2_grad(params, sizes, l2, grads, q0, q1):
    """grads[q] += 2 * l2 * params[q] for the parameters ``q0 <= q < q1`` of the dense kernels (not
    the biases)."""
    w_off, b_off, _ = _layer_offsets(sizes)
    for l in range(sizes.shape[0] - 1):
        for q in range(max(q0, w_off[l]), min(q1, b_off[l])):
            grads[q] = grads[q] + 2.0 * l2 * params[q]


@jit
def _chunk_buffers(scratch, slots, w, slot, n):
    """The ``buffers`` of :func:`_chunk_pass` for ``n`` rows: worker ``w``'s ``x0`` and ``acts``
    from ``scratch`` = ``(x0 (n_workers, chunk * d0), acts (n_workers, acts per chunk))`` and
    slot ``slot``'s results from ``slots`` = ``(dx0 (n_slots, chunk * d0), dz (n_slots, chunk),
    row_loss (n_slots, chunk), grads (n_slots, n_params))``, ``n_slots = max_chunks + n_workers``
    (see :func:`_train_worker`)."""
    x0_all, acts_all = scratch
    dx0_all, dz_all, loss_all, grads_all = slots
    d0 = x0_all.shape[1] // TRAIN_CHUNK_ROWS
    x0 = x0_all[w, : n * d0].reshape((n, d0))
    dx0 = dx0_all[slot, : n * d0].reshape((n, d0))
    return x0, acts_all[w], dx0, dz_all[slot, :n], loss_all[slot, :n], grads_all[slot]


@jit
def _train_chunk(model, data, batch, c, w, slot, scratch, slots, owner, oi):
    """Worker ``w`` computes chunk ``c`` of ``batch`` = ``(rows, t)`` (its rows, its optimiser step)
    into its spare slot ``slot`` and publishes the slot in ``owner[oi]`` unless another worker did
    first; returns whether it published. ``model`` = ``(inputs, wide, sizes, params)``, ``data`` = ``(y, sw,
    dropout, dropout_seed)``."""
    inputs, wide, sizes, params = model
    y, sw, dropout, dropout_seed = data
    rows, t = batch
    nb = rows.shape[0]
    r0 = c * TRAIN_CHUNK_ROWS
    r1 = min(nb, r0 + TRAIN_CHUNK_ROWS)
    buffers = _chunk_buffers(scratch, slots, w, slot, r1 - r0)
    if dropout > 0.0:
        seed_rng(_dropout_seed(dropout_seed, t, c))
    done = _chunk_pass(
        inputs, wide, y, sw, rows[r0:r1], nb, sizes, params, dropout, buffers, owner, oi
    )
    return done and compare_exchange(owner, oi, -1, slot)


#: parameters per block of a batch's dense-layer update: the workers pull the blocks as they pull
#: the chunks (each parameter's update depends only on its own gradient and state)
UPDATE_BLOCK = 2048


@jit
def _adam_rate(lr, b1, b2, t):
    """Adam's bias-corrected rate at step ``t``: float32 ``lr * sqrt(1 - b2^t) / (1 - b1^t)``."""
    return np.float32(lr * math.sqrt(1.0 - np.float32(b2) ** t) / (1.0 - np.float32(b1) ** t))


@jit
def _dense_update(model, hyper, t, q0, q1, grads_all, owner, o0, n_chunks, state):
    """The dense parameters ``[q0, q1)`` of a batch whose chunks are all published: gradient = the
    chunks' (slot ``owner[o0 + c]`` of ``grads_all`` holds chunk ``c``) summed in chunk order,
    plus ``2 * l2 * W`` on the kernels, then the optimiser step. ``state`` = ``(grads, p_m, p_v)``."""
    _, _, sizes, params = model
    opt, lr, b1, b2, eps, l2, _, _, _, _ = hyper
    grads, p_m, p_v = state
    for c in range(n_chunks):
        g = grads_all[owner[o0 + c]]
        if c == 0:
            for q in range(q0, q1):
                grads[q] = g[q]
        else:
            for q in range(q0, q1):
                grads[q] += g[q]
    _add_l2_grad(params, sizes, l2, grads, q0, q1)
    alpha = _adam_rate(lr, b1, b2, t)
    update(
        params[q0:q1], grads[q0:q1], p_m[q0:q1], p_v[q0:q1], opt, lr, alpha, b1, b2, eps, 0.0, 0.0
    )


@jit
def _sparse_updates(model, tables, hyper, batch, slots, owner, o0, work, total):
    """What of a batch's update the worker that published its last chunk runs alone: the loss
    (added to ``total[0]`` in row order), the step count, the optimiser steps of the embedding rows
    and wide coordinates the batch touched (slot ``owner[o0 + c]`` holds chunk ``c``)."""
    inputs, wide, sizes, _ = model
    codes, _, col_flat_off, col_dim, col_in_off, emb = inputs
    has_wide, w_indptr, w_indices, w_data, wide_w = wide
    col_row_off, emb_m, emb_v, _, _, wide_m, wide_v, step = tables
    opt, lr, b1, b2, eps, _, wide_opt, wide_lr, wide_l1, wide_l2 = hyper
    _, mark, touched, touched_col, goff, gbuf, wmark, wtouched, wg, wp, wm, wv = work
    listing = (mark, touched, touched_col, goff, gbuf)
    dx0_all, dz_all, loss_all, _ = slots
    rows, t = batch
    nb = rows.shape[0]
    d0 = sizes[0]
    n_chunks = (nb + TRAIN_CHUNK_ROWS - 1) // TRAIN_CHUNK_ROWS
    for c in range(n_chunks):
        slot = owner[o0 + c]
        for r in range(min(nb - c * TRAIN_CHUNK_ROWS, TRAIN_CHUNK_ROWS)):
            total[0] += loss_all[slot, r]
    step[0] = t
    alpha = _adam_rate(lr, b1, b2, t)
    if codes.shape[1] > 0:
        nt = 0
        pos = 0
        for c in range(n_chunks):
            slot = owner[o0 + c]
            r0 = c * TRAIN_CHUNK_ROWS
            n = min(nb - r0, TRAIN_CHUNK_ROWS)
            dx0 = dx0_all[slot, : n * d0].reshape((n, d0))
            nt, pos = _emb_grads(
                codes, rows[r0 : r0 + n], col_row_off, col_dim, col_in_off, dx0, listing, nt, pos
            )
        for q in range(nt):
            c = touched_col[q]
            d = col_dim[c]
            o = col_flat_off[c] + (touched[q] - col_row_off[c]) * d
            g = gbuf[goff[q] : goff[q] + d]
            update(
                emb[o : o + d],
                g,
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
        nw = 0
        for c in range(n_chunks):
            slot = owner[o0 + c]
            r0 = c * TRAIN_CHUNK_ROWS
            n = min(nb - r0, TRAIN_CHUNK_ROWS)
            nw = _wide_grads(
                w_indptr,
                w_indices,
                w_data,
                rows[r0 : r0 + n],
                dz_all[slot, :n],
                wmark,
                wtouched,
                wg,
                nw,
            )
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
            alpha if wide_opt == ADAM and wide_lr == lr else _adam_rate(wide_lr, b1, b2, t),
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


#: a chunk another worker holds is "late" (:func:`_late_chunk`) once its computation has run this
#: many times the fastest full chunk pass seen in the call: then the holder was most likely preempted
LATE_CHUNK_FACTOR = 2
#: how long a chunk may run before it counts as late while no full chunk pass has been timed yet (ns)
FIRST_LATE_NS = 1_000_000
_NEVER = np.iinfo(np.int64).max


@jit
def _record_fastest(fastest, elapsed):
    """fastest[0] = min(fastest[0], elapsed), atomically (int64 (1,), nanoseconds)."""
    seen = atomic_load(fastest, 0)
    while elapsed < seen and not compare_exchange(fastest, 0, seen, elapsed):
        seen = atomic_load(fastest, 0)


@jit
def _late_chunk(owner, started, o0, n_chunks, fastest):
    """The first chunk of a batch (slots ``o0 ..``) that is unpublished and late: its computation
    began (``started``, monotonic ns) more than :data:`LATE_CHUNK_FACTOR` times the fastest full
    chunk pass ago (``fastest[0]``, :data:`FIRST_LATE_NS` before one was timed). Returns the chunk,
    ``n_chunks`` when every chunk is published, ``-1`` when the unpublished ones are all on time."""
    quickest = atomic_load(fastest, 0)
    limit = FIRST_LATE_NS if quickest == _NEVER else LATE_CHUNK_FACTOR * quickest
    now = monotonic_ns()
    pending = False
    for c in range(n_chunks):
        if atomic_load(owner, o0 + c) == -1:
            if now - atomic_load(started, o0 + c) > limit:
                return c
            pending = True
    return -1 if pending else n_chunks


@jit
def _train_worker(w, model, data, tables, hyper, schedule, scratch, slots, sync, work, total):
    """Worker ``w``'s part of :func:`train_batches`: ``schedule`` = ``(order, start, stop,
    batch_size, n_batches, step0)``; ``sync`` = ``(claimed, published, blocks, parts, owner,
    opened, home, started, fastest)`` (int64: per batch the chunks handed out and published, the
    update blocks handed out and the update's parts done; per chunk of each batch the slot that
    holds it and when its latest computation began (monotonic ns); the batches done; per chunk
    index the slot it was last published in; the fastest full chunk pass of the call).

    Slots: ``max_chunks + n_workers`` of them, so their memory does not grow by a batch's worth
    per thread. A worker computes every chunk into its spare slot (initially ``max_chunks + w``),
    which no other worker writes; when it publishes chunk ``c``, the slot goes to the batch and the
    worker takes ``home[c]`` as its new spare: the slot chunk ``c`` was published in by an earlier
    batch, whose update is over (the current batch opened after it), and that no one holds since.
    A worker that loses a chunk to another keeps its spare.

    A worker with nothing left to claim re-computes only a late chunk (:func:`_late_chunk`): one
    whose holder still runs on time finishes it sooner than a second copy would, and the copy's
    CPU would come out of the holder's share when the threads outnumber the free cores."""
    order, start, stop, batch_size, n_batches, step0 = schedule
    claimed, published, blocks, parts, owner, opened, home, started, fastest = sync
    max_chunks = home.shape[0]
    spare = max_chunks + w
    n_params = model[3].shape[0]
    n_blocks = (n_params + UPDATE_BLOCK - 1) // UPDATE_BLOCK
    update_state = (work[0], tables[3], tables[4])
    b = 0
    while b < n_batches:
        s0 = start + b * batch_size
        rows = order[s0 : min(stop, s0 + batch_size)]
        n_chunks = (rows.shape[0] + TRAIN_CHUNK_ROWS - 1) // TRAIN_CHUNK_ROWS
        batch = (rows, step0 + b + 1)
        o0 = b * max_chunks
        n_waits = 0
        c = fetch_add(claimed, b, 1)
        while atomic_load(opened, 0) <= b:
            if c >= n_chunks:
                # nothing left to claim: compute a late chunk another worker holds (the OS may
                # have preempted it), else a block of the update, else wait
                c = _late_chunk(owner, started, o0, n_chunks, fastest)
                if c < 0:
                    n_waits = wait_a_little(n_waits)
                    c = n_chunks
                    continue
                if c == n_chunks:
                    if atomic_load(published, b) == n_chunks:
                        q = fetch_add(blocks, b, 1)
                        if q < n_blocks:
                            q0 = q * UPDATE_BLOCK
                            q1 = min(n_params, q0 + UPDATE_BLOCK)
                            _dense_update(
                                model,
                                hyper,
                                batch[1],
                                q0,
                                q1,
                                slots[3],
                                owner,
                                o0,
                                n_chunks,
                                update_state,
                            )
                            if fetch_add(parts, b, 1) == n_blocks:
                                atomic_store(opened, 0, b + 1)
                            continue
                    n_waits = wait_a_little(n_waits)
                    continue
            began = monotonic_ns()
            atomic_store(started, o0 + c, began)
            if _train_chunk(model, data, batch, c, w, spare, scratch, slots, owner, o0 + c):
                if (c + 1) * TRAIN_CHUNK_ROWS <= rows.shape[0]:
                    _record_fastest(fastest, monotonic_ns() - began)
                published_slot = spare
                spare = home[c]
                home[c] = published_slot
                if fetch_add(published, b, 1) == n_chunks - 1:
                    _sparse_updates(model, tables, hyper, batch, slots, owner, o0, work, total)
                    if fetch_add(parts, b, 1) == n_blocks:
                        atomic_store(opened, 0, b + 1)
            c = fetch_add(claimed, b, 1)
        b = max(b + 1, atomic_load(opened, 0))


@jit
def _filled(n, value):
    """int64 (n,) all ``value``, allocated where a parallel region's array analysis does not see
    it (it took a ``np.zeros`` array that the region changes only through calls for all zeros)."""
    return np.full(n, value, np.int64)


@jit
def _slot_ids(n):
    """int64 (n,) = 0, 1, ..., n - 1, allocated outside the parallel region (see :func:`_filled`)."""
    return np.arange(n).astype(np.int64)


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
    :data:`TRAIN_CHUNK_ROWS` rows; the chunks' gradients are summed in chunk order and the updates
    are serial, so results are the same for any ``n_workers``.

    The ``n_workers`` threads stay in one parallel region for the whole call. They pull a batch's
    chunks from a shared counter; the worker that publishes the last one runs the batch's update
    and opens the next batch. A worker with nothing left to claim computes a chunk another worker
    holds but has not published once that chunk is late (it has run twice as long as the fastest
    chunk pass: the OS has most likely preempted its worker for a scheduler slice, longer than a
    whole batch): whoever finishes first publishes it, the other's copy is dropped (each worker
    writes only its own spare slot, see :func:`_train_worker`), so a preempted thread delays a
    batch by at most that wait. Once a batch's chunks are all published, the workers pull blocks of
    :data:`UPDATE_BLOCK` dense parameters to update while that worker updates the embedding rows
    and wide coordinates; the last part done opens the next batch. A worker waiting (for a chunk
    it cannot take over yet or for the update) spins briefly, then sleeps.
    """
    n_cat = codes.shape[1]
    d0 = sizes[0]
    n_params = params.shape[0]
    max_dim = 0
    for c in range(n_cat):
        max_dim = max(max_dim, col_dim[c])
    n_rows_total = col_row_off[n_cat] if n_cat > 0 else 0
    chunk = TRAIN_CHUNK_ROWS
    n_workers = max(1, n_workers)
    max_chunks = (batch_size + chunk - 1) // chunk
    n_batches = max(0, (stop - start + batch_size - 1) // batch_size)
    n_slots = max_chunks + n_workers  # see _train_worker
    x0_scratch = np.empty((n_workers, chunk * d0), np.float32)
    acts_scratch = np.empty((n_workers, chunk * _layer_offsets(sizes)[2][-1]), np.float32)
    dx0_slots = np.empty((n_slots, chunk * d0), np.float32)
    dz_slots = np.empty((n_slots, chunk), np.float32)
    loss_slots = np.empty((n_slots, chunk), np.float64)
    grad_slots = np.empty((n_slots, n_params), np.float32)
    cap = batch_size * n_cat
    n_wide = wide_w.shape[0]
    grads = np.empty(n_params, np.float32)
    mark = np.full(n_rows_total, -1, np.int64)
    touched = np.empty(cap, np.int64)
    touched_col = np.empty(cap, np.int64)
    goff = np.empty(cap, np.int64)
    gbuf = np.empty(cap * max_dim, np.float32)
    wmark = np.full(n_wide, -1, np.int64)
    wtouched = np.empty(n_wide, np.int64)
    wg = np.empty(n_wide, np.float32)
    wp = np.empty(n_wide, np.float32)
    wm = np.empty(n_wide, np.float32)
    wv = np.empty(n_wide, np.float32)
    claimed = _filled(max(1, n_batches), 0)
    published = _filled(max(1, n_batches), 0)
    blocks = _filled(max(1, n_batches), 0)
    parts = _filled(max(1, n_batches), 0)
    owner = _filled(max(1, n_batches * max_chunks), -1)
    opened = _filled(1, 0)
    home = _slot_ids(max_chunks)
    started = _filled(max(1, n_batches * max_chunks), _NEVER)
    fastest = _filled(1, _NEVER)
    total = np.empty(1, np.float64)
    total[0] = 0.0
    step0 = step[0]
    # the tuples are built inside the loop: a parallel region takes arrays and scalars only
    for w in prange(n_workers):
        _train_worker(
            w,
            (
                (codes, dense, col_flat_off, col_dim, col_in_off, emb),
                (has_wide, w_indptr, w_indices, w_data, wide_w),
                sizes,
                params,
            ),
            (y, sw, dropout, dropout_seed),
            (col_row_off, emb_m, emb_v, p_m, p_v, wide_m, wide_v, step),
            (opt, lr, b1, b2, eps, l2, wide_opt, wide_lr, wide_l1, wide_l2),
            (order, start, stop, batch_size, n_batches, step0),
            (x0_scratch, acts_scratch),
            (dx0_slots, dz_slots, loss_slots, grad_slots),
            (claimed, published, blocks, parts, owner, opened, home, started, fastest),
            (grads, mark, touched, touched_col, goff, gbuf, wmark, wtouched, wg, wp, wm, wv),
            total,
        )
    return total[0]


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
    inputs = (codes, dense, col_flat_off, col_dim, col_in_off, emb)
    wide = (has_wide, w_indptr, w_indices, w_data, wide_w)
    dx0 = np.empty((nb, d0), np.float32)
    dz = np.empty(nb, np.float32)
    row_loss = np.empty(nb, np.float64)
    buffers = (np.empty((nb, d0), np.float32), _activations(nb, sizes), dx0, dz, row_loss, grads)
    never_published = np.full(1, -1, np.int64)
    _chunk_pass(inputs, wide, y, sw, rows, nb, sizes, params, 0.0, buffers, never_published, 0)
    _add_l2_grad(params, sizes, l2, grads, 0, params.shape[0])
    total = 0.0
    for r in range(nb):
        total += row_loss[r]
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
    loss_grad.compile(
        (codes, dense, f8, f8, i8, *layout, f4, i8, f4, bool_, i8, i4, f4, f4, float_, f4, f4, f4)
    )
    seed_rng.compile((int_,))
