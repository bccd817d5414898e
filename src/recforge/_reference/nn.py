"""Readable NumPy specification of the neural-ranker kernels (tests only, never a fast path).

Per-layer arrays instead of the kernels' flat layout, float64 arithmetic, one formula per line:

* :func:`loss_and_grads` — forward pass (embedding look-ups, ReLU layers, linear output, optional
  wide part), the batch loss ``sum_i s_i logloss_i / B + l2 * sum ||W||^2`` and every gradient;
* :func:`sgd_step`, :func:`adagrad_step`, :func:`adam_step`, :func:`ftrl_step` — one optimiser step
  in Keras' formulas.
"""

from __future__ import annotations

import numpy as np


def forward(x0, kernels, biases, masks=None):
    """Activations of every layer (ReLU hidden, linear output); returns ``(logits (n,), [x0, h1, ...])``.

    ``masks`` (dropout): one (n, width) array per hidden layer, 0 for a dropped unit and
    ``1 / (1 - rate)`` for a kept one, multiplied into the ReLU output.
    """
    acts = [np.asarray(x0, np.float64)]
    h = acts[0]
    for layer, (W, b) in enumerate(zip(kernels, biases)):
        a = h @ np.asarray(W, np.float64) + np.asarray(b, np.float64)
        h = a if layer == len(kernels) - 1 else np.maximum(a, 0.0)
        if masks is not None and layer < len(kernels) - 1:
            h = h * masks[layer]
        acts.append(h)
    return h[:, 0], acts


def inputs(codes, dense, tables):
    """x0 = concatenation of ``tables[c][codes[:, c]]`` over the columns, then ``dense``."""
    parts = [np.asarray(t, np.float64)[codes[:, c]] for c, t in enumerate(tables)]
    return np.hstack([*parts, np.asarray(dense, np.float64)])


def loss_and_grads(
    codes, dense, y, sw, tables, kernels, biases, wide_X=None, wide_w=None, l2=0.0, masks=None
):
    """Loss and gradients of one batch (all rows given); ``masks`` as in :func:`forward`.

    Returns ``(loss, g_tables, g_kernels, g_biases, g_wide)``; ``g_wide`` is None without a wide part.
    """
    y = np.asarray(y, np.float64)
    sw = np.asarray(sw, np.float64)
    B = y.shape[0]
    x0 = inputs(codes, dense, tables)
    z, acts = forward(x0, kernels, biases, masks)
    if wide_X is not None:
        z = z + np.asarray(wide_X, np.float64) @ np.asarray(wide_w, np.float64)
    loss_i = np.logaddexp(0.0, z) - y * z
    loss = (sw * loss_i).sum() / B + l2 * sum(
        (np.asarray(W, np.float64) ** 2).sum() for W in kernels
    )
    p = 1.0 / (1.0 + np.exp(-z))
    G = (sw * (p - y) / B)[:, None]
    g_kernels, g_biases = [None] * len(kernels), [None] * len(kernels)
    for layer in range(len(kernels) - 1, -1, -1):
        W = np.asarray(kernels[layer], np.float64)
        g_kernels[layer] = acts[layer].T @ G + 2.0 * l2 * W
        g_biases[layer] = G.sum(axis=0)
        G = G @ W.T
        if layer > 0:
            G = G * (acts[layer] > 0)
            if masks is not None:
                G = G * masks[layer - 1]
    g_tables, col = [], 0
    for c, t in enumerate(tables):
        d = t.shape[1]
        g = np.zeros(t.shape, np.float64)
        np.add.at(g, codes[:, c], G[:, col : col + d])
        g_tables.append(g)
        col += d
    g_wide = None
    if wide_X is not None:
        g_wide = np.asarray(wide_X, np.float64).T @ (sw * (p - y) / B)
    return loss, g_tables, g_kernels, g_biases, g_wide


def sgd_step(p, g, lr):
    return p - lr * g


def adagrad_step(p, g, accum, lr, eps=1e-7):
    """Returns ``(p, accum)``; ``accum`` starts at 0.1 in Keras."""
    accum = accum + g * g
    return p - lr * g / np.sqrt(accum + eps), accum


def adam_step(p, g, m, v, t, lr, b1=0.9, b2=0.999, eps=1e-7):
    """Step ``t`` (1-based); returns ``(p, m, v)``."""
    m = m + (g - m) * (1 - b1)
    v = v + (g * g - v) * (1 - b2)
    alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
    return p - alpha * m / (np.sqrt(v) + eps), m, v


def ftrl_step(p, g, accum, linear, lr, l1=0.0, l2=0.0):
    """FTRL-proximal with learning-rate power -1/2 (Keras' ``Ftrl``); returns ``(p, accum, linear)``."""
    new_accum = accum + g * g
    linear = linear + g - (np.sqrt(new_accum) - np.sqrt(accum)) / lr * p
    quadratic = np.sqrt(new_accum) / lr + 2 * l2
    p = np.where(np.abs(linear) > l1, (np.clip(linear, -l1, l1) - linear) / quadratic, 0.0)
    return p, new_accum, linear
