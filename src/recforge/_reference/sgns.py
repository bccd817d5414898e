"""Readable NumPy version of one word2vec negative-sampling update (the specification of the C++ step).

Loss of one example with input vector ``h`` (skip-gram: the context's input vector; CBOW: the mean
of the contexts' input vectors), positive output vector ``o_c`` and negatives ``o_n``::

    L = -log σ(h·o_c) - Σ_n log σ(-h·o_n)

Every output row moves by ``-lr ∂L/∂o`` in order (positive first, then each negative, each using
the current output row), and the input gradient ``-lr ∂L/∂h`` is accumulated and added at the end:
to the context's vector (skip-gram) or to every context's vector in full (CBOW).
"""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _ns(h, center, negatives, out_vecs, lr):
    neu1e = np.zeros_like(h)
    for target, label in [(center, 1.0)] + [(n, 0.0) for n in negatives if n != center]:
        g = (label - sigmoid(h @ out_vecs[target])) * lr
        neu1e += g * out_vecs[target]
        out_vecs[target] += g * h
    return neu1e


def sgns_step(in_vecs, out_vecs, center, contexts, negatives, lr, cbow=False):
    """Update ``in_vecs``/``out_vecs`` (float64 copies are fine) in place like ``kernels.sgns.sgns_step``."""
    if cbow:
        h = in_vecs[list(contexts)].mean(axis=0)
        neu1e = _ns(h, center, negatives, out_vecs, lr)
        for c in contexts:
            in_vecs[c] += neu1e
    else:
        for c in contexts:
            h = in_vecs[c].copy()
            in_vecs[c] += _ns(h, center, negatives, out_vecs, lr)


def sgns_loss(h, o_center, o_negatives):
    """The loss above for one example (used by the TensorFlow oracle test)."""
    return -np.log(sigmoid(h @ o_center)) - np.sum(np.log(sigmoid(-(o_negatives @ h))))
