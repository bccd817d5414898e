"""What DNN and Wide&Deep share: their inputs, the parameter layout and initialisation, the training
loop (epochs, shuffling, early stopping on AUC, progress bar, callback), prediction and save/load.

The kernels are in :mod:`recforge.kernels.nn` (C++; see its docstring for the array layout).
"""

from __future__ import annotations

import inspect
import itertools
import time

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._progress import progress_bar
from .._threads import available_cores, limit_blas_threads, load_scipy_blas, resolve_n_threads
from .._validation import FLOAT32_MAX, check_choice, check_float, check_int, check_random_state
from ..io import ModelArrays
from ..kernels import nn as nn_kernels
from ..kernels._csr import csr_kernel_arrays
from ._base import Ranker, check_training_controls, check_X

#: optimiser codes by name, defined once in csrc/include/recforge/constants.hpp
_OPTIMIZERS = dict(_core.constants.NN_OPTIMIZERS)
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7  # Keras' defaults
ADAGRAD_INITIAL_ACCUMULATOR = 0.1  # Keras' default (also FTRL's)
PREDICT_CHUNK = 2048


class NNInputs:
    """Encoded inputs of a neural ranker.

    Attributes
    ----------
    codes : ndarray of shape (n, n_cat), int32
        Embedding-table rows (one column per embedded feature).
    dense : ndarray of shape (n, n_num), float32
        Standardised numeric inputs.
    wide : csr_matrix of shape (n, n_wide), float32, or None
        The wide part's features (Wide&Deep).
    """

    def __init__(self, codes, dense, wide=None):
        self.codes = np.ascontiguousarray(codes, dtype=np.int32)
        self.dense = np.ascontiguousarray(dense, dtype=np.float32)
        self.wide = wide
        if wide is not None:
            self.wide = _csr32(wide)

    def wide_arrays(self):
        """The wide part as the kernels take it: CSR ``(indptr int64, indices int32, data
        float32)``; without a wide part, no entries (``indptr`` all zeros, (n + 1,))."""
        if self.wide is None:
            n = self.codes.shape[0]
            return np.zeros(n + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
        return self.wide.indptr, self.wide.indices, self.wide.data

    @property
    def shape(self):
        n_wide = 0 if self.wide is None else self.wide.shape[1]
        return (self.codes.shape[0], self.codes.shape[1] + self.dense.shape[1] + n_wide)


def _csr32(X):
    X = sp.csr_matrix(X)
    X.sort_indices()
    indptr, indices, data = csr_kernel_arrays(X)
    return sp.csr_matrix((data, indices, indptr), shape=X.shape)


class NeuralRanker(Ranker):
    """Base of :class:`~recforge.rank.DNN` and :class:`~recforge.rank.WideDeep` (not public)."""

    _accept_sparse = False
    _has_wide = False
    _auto_encoder = True

    # -- parameters -----------------------------------------------------------------------------
    def __init__(
        self,
        *,
        hidden_units=(128, 64, 32),
        embedding_dim=8,
        embed_numeric=True,
        optimizer="adam",
        learning_rate=1e-3,
        l2=0.0,
        dropout=0.0,
        batch_size=256,
        epochs=5,
        early_stopping_rounds=None,
        callback=None,
        encoder=None,
        class_weight=None,
        random_state=None,
        n_threads=None,
        verbose=False,
    ):
        """The deep part's hyper-parameters, documented on :class:`~recforge.rank.DNN`."""
        self.hidden_units = hidden_units
        self.embedding_dim = embedding_dim
        self.embed_numeric = embed_numeric
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.l2 = l2
        self.dropout = dropout
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping_rounds = early_stopping_rounds
        self.callback = callback
        self.encoder = encoder
        self.class_weight = class_weight
        self.random_state = random_state
        self.n_threads = n_threads
        self.verbose = verbose

    def _validate_params(self):
        hidden = self.hidden_units
        if isinstance(hidden, (int, np.integer)) or not all(
            isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1 for h in hidden
        ):
            raise ValueError(f"hidden_units must be a sequence of positive ints, got {hidden!r}")
        dim = self.embedding_dim
        if isinstance(dim, dict):
            for k, v in dim.items():
                check_int(v, f"embedding_dim[{k!r}]", min_value=1)
        else:
            check_int(dim, "embedding_dim", min_value=1)
        check_choice(self.optimizer, "optimizer", {"sgd", "adagrad", "adam"})
        check_float(self.learning_rate, "learning_rate", min_value=0.0, min_inclusive=False)
        check_float(self.l2, "l2", min_value=0.0)
        check_float(self.dropout, "dropout", min_value=0.0, max_value=1.0, max_inclusive=False)
        check_int(self.batch_size, "batch_size", min_value=1)
        check_int(self.epochs, "epochs", min_value=1)
        check_training_controls(self, "embed_numeric")

    def _wide_settings(self):
        """(optimizer code, learning rate, l1, l2) of the wide part."""
        return _OPTIMIZERS[self.optimizer], float(self.learning_rate), 0.0, 0.0

    # -- inputs -----------------------------------------------------------------------------------
    def _embedded_columns(self, enc) -> list:
        cols = list(enc.categorical_columns_)
        if self.embed_numeric and enc.n_bins > 0:
            cols += list(enc.numeric_columns_)
        return [c for c in enc.columns_ if c in set(cols)]

    def _encode(self, X, name):
        enc = self.encoder_
        columns = self._embedded_columns(enc)
        if self._has_wide:  # the wide part's matrix from the same read of each column
            return NNInputs(*enc.transform_codes_numeric(X, columns=columns, sparse=True))
        return NNInputs(*enc.transform_codes_numeric(X, columns=columns))

    def _check_encoded(self, Xm, name):
        return Xm

    def _as_inputs(self, X, *, fit: bool) -> NNInputs:
        """The kernels' inputs from what :meth:`_prepare_X` returned (encoder output or a dense array)."""
        if isinstance(X, NNInputs):
            return X
        X = check_X(X, accept_sparse=False)
        if fit:
            self._x_mean = X.mean(axis=0)
            scale = X.std(axis=0)
            self._x_scale = np.where(scale > 0, scale, 1.0)
        dense = ((X - self._x_mean) / self._x_scale).astype(np.float32)
        return NNInputs(np.zeros((X.shape[0], 0), np.int32), dense, X if self._has_wide else None)

    # -- layout -----------------------------------------------------------------------------------
    def _layout(self, n_num: int) -> dict:
        """The embedding and layer layout (the ``_LAYOUT`` arrays, int64) for the fitted encoder and
        ``n_num`` numeric inputs, with the embedded ``columns`` and the table size ``n_emb``: a pure
        function of the parameters and the encoder, so that a model file's copy can be checked."""
        enc = getattr(self, "encoder_", None)
        cols = self._embedded_columns(enc) if enc is not None else []
        cards = [enc.n_codes(c) for c in cols]
        dims = [
            int(self.embedding_dim.get(c, 8))
            if isinstance(self.embedding_dim, dict)
            else int(self.embedding_dim)
            for c in cols
        ]
        n_cat = len(cols)
        col_flat_off = np.zeros(n_cat, np.int64)
        col_row_off = np.zeros(n_cat + 1, np.int64)
        col_in_off = np.zeros(n_cat, np.int64)
        flat = row = inp = 0
        for c in range(n_cat):
            col_flat_off[c], col_row_off[c], col_in_off[c] = flat, row, inp
            flat += cards[c] * dims[c]
            row += cards[c]
            inp += dims[c]
        col_row_off[n_cat] = row
        sizes = [inp + n_num, *[int(h) for h in self.hidden_units], 1]
        return {
            "_col_dim": np.asarray(dims, dtype=np.int64).reshape(n_cat),
            "_col_flat_off": col_flat_off,
            "_col_row_off": col_row_off,
            "_col_in_off": col_in_off,
            "_sizes": np.asarray(sizes, dtype=np.int64),
            "columns": cols,
            "n_emb": flat,
        }

    def _build(self, inputs: NNInputs, rng):
        layout = self._layout(inputs.dense.shape[1])
        for name in self._LAYOUT:
            setattr(self, name, layout[name])
        self.embedding_columns_ = layout["columns"]
        # Keras' initialisers: embeddings U(-0.05, 0.05), kernels Glorot uniform, biases 0
        self._emb = rng.uniform(-0.05, 0.05, size=layout["n_emb"]).astype(np.float32)
        parts = []
        for k, m in zip(self._sizes[:-1], self._sizes[1:]):
            limit = np.sqrt(6.0 / (k + m))
            parts.append(rng.uniform(-limit, limit, size=k * m).astype(np.float32))
            parts.append(np.zeros(m, np.float32))
        self._params = np.concatenate(parts)
        n_wide = inputs.wide.shape[1] if inputs.wide is not None else 0
        self._wide_w = np.zeros(n_wide, np.float32)
        self._init_optimizer_state()

    def _init_optimizer_state(self):
        opt = _OPTIMIZERS[self.optimizer]
        init = ADAGRAD_INITIAL_ACCUMULATOR if opt == _OPTIMIZERS["adagrad"] else 0.0
        self._emb_m = np.full_like(self._emb, init)
        self._emb_v = np.zeros_like(self._emb)
        self._p_m = np.full_like(self._params, init)
        self._p_v = np.zeros_like(self._params)
        wopt = self._wide_settings()[0]
        winit = (
            ADAGRAD_INITIAL_ACCUMULATOR
            if wopt in (_OPTIMIZERS["adagrad"], _OPTIMIZERS["ftrl"])
            else 0.0
        )
        self._wide_m = np.full_like(self._wide_w, winit)
        self._wide_v = np.zeros_like(self._wide_w)
        self._step = np.zeros(1, np.int64)

    def get_weights(self) -> dict:
        """Copies of the learned arrays: ``"embeddings"`` {column: (n_codes, dim)}, ``"kernels"`` and
        ``"biases"`` (lists per dense layer, kernels (in, out)), ``"wide"`` (n_wide,) when present."""
        self._check_fitted()
        emb = {}
        for c, name in enumerate(self.embedding_columns_):
            d = int(self._col_dim[c])
            rows = int(self._col_row_off[c + 1] - self._col_row_off[c])
            o = int(self._col_flat_off[c])
            emb[name] = self._emb[o : o + rows * d].reshape(rows, d).copy()
        kernels, biases = _unflatten(self._params, self._sizes)
        out = {
            "embeddings": emb,
            "kernels": [k.copy() for k in kernels],
            "biases": [b.copy() for b in biases],
        }
        if self._has_wide:
            out["wide"] = self._wide_w.copy()
        return out

    # -- training -----------------------------------------------------------------------------------
    def _train_call(self, inp, y, sw, order, start, stop, batch_size, dropout_seed, n_threads):
        wopt, wlr, wl1, wl2 = self._wide_settings()
        indptr, indices, data = inp.wide_arrays()
        return nn_kernels.train_batches(
            inp.codes,
            inp.dense,
            y,
            sw,
            order,
            start,
            stop,
            batch_size,
            self._col_flat_off,
            self._col_row_off,
            self._col_dim,
            self._col_in_off,
            self._emb,
            self._emb_m,
            self._emb_v,
            self._sizes,
            self._params,
            self._p_m,
            self._p_v,
            inp.wide is not None,
            indptr,
            indices,
            data,
            self._wide_w,
            self._wide_m,
            self._wide_v,
            _OPTIMIZERS[self.optimizer],
            float(self.learning_rate),
            BETA_1,
            BETA_2,
            EPSILON,
            float(self.l2),
            wopt,
            wlr,
            wl1,
            wl2,
            self._step,
            float(self.dropout),
            dropout_seed,
            n_threads,
        )

    def _fit(self, X, y, sw, evals):
        # the training workers wait for each other at every batch (spinning, then 50 us sleeps):
        # more of them than cores would only take turns (as Numba's threads, capped at the cores,
        # did when these kernels were Numba's); the results are the same for any count
        n_threads = min(resolve_n_threads(self.n_threads), available_cores())
        inp = self._as_inputs(X, fit=True)
        ev = [(self._as_inputs(Xe, fit=False), ye, swe) for Xe, ye, swe in evals]
        rng = check_random_state(self.random_state)
        self._build(inp, rng)
        dropout_seed = int(rng.integers(2**31))
        n = inp.codes.shape[0]
        yy = np.ascontiguousarray(y, dtype=np.float64)
        ss = np.ascontiguousarray(sw, dtype=np.float64)
        self.evals_result_, self.loss_curve_, self.best_iteration_ = [], [], None
        self.timings_ = {"epochs": []}
        best, best_state, since = -np.inf, None, 0
        epochs = int(self.epochs)
        # a larger batch is the same single batch, and the kernel sizes its buffers by it
        bs = min(int(self.batch_size), n)
        bar = progress_bar(
            self.verbose,
            total=epochs * n,
            desc=type(self).__name__,
            unit="row",
            unit_scale=True,
            leave=False,
        )
        # the progress bar refreshes ~20 times per epoch; without it one kernel call runs the epoch
        seg = n if bar is None else max(bs, -(-n // 20) // bs * bs)
        try:
            # one BLAS thread: a batch's products (<= 1024 x 128 x 128) are too small for threaded BLAS to
            # pay — two OpenBLAS threads made an Adult epoch 6-17x slower on a busy 2-core machine
            # (bench/bench_nn.py); ``n_threads`` workers share each batch's chunks of rows
            load_scipy_blas()
            with limit_blas_threads(1):
                for epoch in range(1, epochs + 1):
                    t0 = time.perf_counter()
                    order = rng.permutation(n).astype(np.int64)
                    total = 0.0
                    for s0 in range(0, n, seg):
                        s1 = min(n, s0 + seg)
                        total += self._train_call(
                            inp, yy, ss, order, s0, s1, bs, dropout_seed, n_threads
                        )
                        if bar is not None:
                            bar.update(s1 - s0)
                            bar.set_postfix(epoch=epoch, loss=f"{total / s1:.5f}")
                    train_loss = total / n
                    self.loss_curve_.append(train_loss)
                    self.timings_["epochs"].append(time.perf_counter() - t0)
                    info = {"epoch": epoch, "train_loss": train_loss, "eval_auc": None}
                    if ev:
                        from ..metrics import roc_auc_score

                        Xe, ye, swe = ev[0]
                        auc = float(
                            roc_auc_score(ye, self._logits(Xe, n_threads), sample_weight=swe)
                        )
                        info["eval_auc"] = auc
                        self.evals_result_.append(auc)
                        if auc > best:
                            best, since, self.best_iteration_ = auc, 0, epoch
                            if self.early_stopping_rounds is not None:
                                best_state = self._snapshot()
                        else:
                            since += 1
                        if bar is not None:
                            bar.set_postfix(epoch=epoch, loss=f"{train_loss:.5f}", auc=f"{auc:.4f}")
                    self.n_iter_ = epoch
                    if self.callback is not None and bool(self.callback(info)):
                        break
                    if (
                        self.early_stopping_rounds is not None
                        and ev
                        and since >= self.early_stopping_rounds
                    ):
                        break
        finally:
            if bar is not None:
                bar.close()
        if best_state is not None:
            self._restore(best_state)
        if not all(np.all(np.isfinite(getattr(self, k))) for k in ("_emb", "_params", "_wide_w")):
            raise FloatingPointError(
                f"{type(self).__name__} diverged (non-finite weights); lower "
                "learning_rate or rescale the features or sample_weight"
            )

    def _snapshot(self):
        return {k: getattr(self, k).copy() for k in self._STATE}

    def _restore(self, state):
        for k, v in state.items():
            setattr(self, k, v)

    _STATE = (
        "_emb",
        "_params",
        "_wide_w",
        "_emb_m",
        "_emb_v",
        "_p_m",
        "_p_v",
        "_wide_m",
        "_wide_v",
        "_step",
    )
    _LAYOUT = ("_col_dim", "_col_flat_off", "_col_row_off", "_col_in_off", "_sizes")

    # -- prediction ---------------------------------------------------------------------------------
    def _logits(self, inp: NNInputs, n_threads: int = 1) -> np.ndarray:
        """Logits (float64) of every row: the compiled forward pass (``kernels.nn.predict_logits``)
        in blocks of ``PREDICT_CHUNK`` rows on up to ``n_threads`` threads, one BLAS thread each.
        The blocks do not depend on ``n_threads``, so neither do the results."""
        n = inp.codes.shape[0]
        out = np.empty(n, np.float64)
        indptr, indices, data = inp.wide_arrays()
        load_scipy_blas()
        with limit_blas_threads(1):
            nn_kernels.predict_logits(
                inp.codes,
                inp.dense,
                0,
                n,
                self._col_flat_off,
                self._col_row_off,
                self._col_dim,
                self._col_in_off,
                self._emb,
                self._sizes,
                self._params,
                inp.wide is not None,
                indptr,
                indices,
                data,
                self._wide_w,
                PREDICT_CHUNK,
                out,
                n_threads,
            )
        return out

    def _decision(self, X) -> np.ndarray:
        inp = self._as_inputs(X, fit=False)
        self._check_inputs(inp)
        return self._logits(inp, resolve_n_threads(self.n_threads))

    def _check_inputs(self, inp):
        if inp.codes.shape[1] != self._col_dim.shape[0] or (
            inp.dense.shape[1] != self._sizes[0] - int(self._col_dim.sum())
        ):
            raise ValueError("X does not match the features the model was trained on")
        if inp.codes.size and (
            inp.codes.min() < 0 or np.any(inp.codes.max(axis=0) >= np.diff(self._col_row_off))
        ):
            raise ValueError("embedding codes outside the tables: X was encoded by another encoder")
        if self._has_wide and inp.wide.shape[1] != self._wide_w.shape[0]:
            raise ValueError(
                f"X has {inp.wide.shape[1]} wide features, the model {self._wide_w.shape[0]}"
            )

    # -- persistence --------------------------------------------------------------------------------
    def _get_state(self):
        arrays = {k.lstrip("_"): getattr(self, k) for k in self._STATE + self._LAYOUT}
        if hasattr(self, "_x_mean"):
            arrays["x_mean"], arrays["x_scale"] = self._x_mean, self._x_scale
        meta = {
            "embedding_columns": list(self.embedding_columns_),
            "n_iter": int(self.n_iter_),
            "best_iteration": self.best_iteration_,
        }
        return arrays, meta

    def _set_state(self, arrays, meta):
        """Restore the fitted state. Every array is checked (dtype, shape, finite) and the layout
        arrays must equal the layout recomputed from the parameters and the encoder: nothing a
        kernel indexes with comes from the file unchecked."""
        arrays = ModelArrays.of(arrays)
        enc = getattr(self, "encoder_", None)
        n_in = int(self.n_features_in_)
        if enc is None:
            self._x_mean = arrays.take("x_mean", shape=(n_in,), dtype=np.float64)
            self._x_scale = arrays.take("x_scale", shape=(n_in,), dtype=np.float64)
            if (
                np.any(self._x_scale <= 0)
                or max(np.abs(self._x_mean).max(initial=0), self._x_scale.max(initial=0))
                > FLOAT32_MAX
            ):
                raise arrays.error("'x_scale' must be > 0, 'x_mean' and 'x_scale' within float32")
        layout = self._layout(len(enc.numeric_columns_) if enc is not None else n_in)
        if meta.get("embedding_columns", []) != layout["columns"]:
            raise arrays.error(
                f"the record's embedding_columns {meta.get('embedding_columns')!r} "
                f"are not the encoder's {layout['columns']!r}"
            )
        for name in self._LAYOUT:
            expected = layout[name]
            saved = arrays.take(name.lstrip("_"), kinds="iu", shape=expected.shape, dtype=np.int64)
            if not np.array_equal(saved, expected):
                raise arrays.error(
                    f"the layout array {name.lstrip('_')!r} is {saved.tolist()}; "
                    f"the parameters and the encoder give {expected.tolist()}"
                )
            setattr(self, name, expected)
        sizes = layout["_sizes"].tolist()
        n_params = sum(k * m + m for k, m in itertools.pairwise(sizes))
        n_wide = (enc.n_features_out_ if enc is not None else n_in) if self._has_wide else 0
        for names, n in (
            (("_emb", "_emb_m", "_emb_v"), layout["n_emb"]),
            (("_params", "_p_m", "_p_v"), n_params),
            (("_wide_w", "_wide_m", "_wide_v"), n_wide),
        ):
            for name in names:
                setattr(self, name, arrays.take(name.lstrip("_"), shape=(n,), dtype=np.float32))
        self._step = arrays.take("step", kinds="iu", shape=(1,), dtype=np.int64, min_value=0)
        self.embedding_columns_ = layout["columns"]
        self.n_iter_ = check_int(meta.get("n_iter", 0), "the record's n_iter", min_value=0)
        best = meta.get("best_iteration")
        self.best_iteration_ = (
            None if best is None else check_int(best, "the record's best_iteration", min_value=0)
        )
        self.evals_result_, self.loss_curve_ = [], []


def with_deep_parameters(init):
    """``init``, an ``__init__`` taking its own keyword parameters and ``**deep_params`` for
    :class:`NeuralRanker`'s, with the signature of both (what ``get_params``, ``repr`` and
    scikit-learn's checks read), so that a subclass does not list the deep parameters again."""
    own = [
        p
        for p in inspect.signature(init).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    base = list(inspect.signature(NeuralRanker.__init__).parameters.values())
    init.__signature__ = inspect.Signature(base + own)
    return init


def _unflatten(params, sizes):
    kernels, biases, o = [], [], 0
    for k, m in zip(sizes[:-1].tolist(), sizes[1:].tolist()):
        kernels.append(params[o : o + k * m].reshape(k, m))
        o += k * m
        biases.append(params[o : o + m])
        o += m
    if o != params.shape[0]:
        raise ValueError(
            f"params has {params.shape[0]} values, the layer sizes {sizes.tolist()} need {o}"
        )
    return kernels, biases


def flatten_params(kernels, biases) -> np.ndarray:
    """The flat float32 parameter vector of the kernels' layout from per-layer kernels and biases."""
    parts = []
    for k, b in zip(kernels, biases):
        parts += [np.asarray(k, np.float32).ravel(), np.asarray(b, np.float32).ravel()]
    return np.concatenate(parts)
