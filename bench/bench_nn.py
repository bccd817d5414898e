"""DNN and Wide&Deep: recforge's Numba kernels vs the same Keras (TensorFlow) model, on UCI Adult.

Same architecture (embeddings 8 of the 8 categorical columns and the 6 numeric buckets, the 6
standardised numerics, 128-64-32 ReLU, one logit; W&D adds a linear part on the encoder's sparse
one-hot + cross features), same optimiser (Adam 1e-3), same batch size, same encoded inputs, same
threads (``RECFORGE_BENCH_THREADS``, default: all cores; TensorFlow intra- and inter-op pools).

Groups (``python bench/compare.py`` prints peer/ours ratios):

* ``nn-epoch-{dnn,wd}-b{256,1024}`` — one training epoch on the 32,561 rows (shuffled), after a
  warm-up epoch (Keras' tracing and our Numba compilation excluded). Keras: ``model.fit(epochs=1)``
  on the encoded arrays; recforge: one epoch of the training kernel on the same arrays.
* ``nn-threads-{dnn,wd}`` — one epoch (batch 256) at 1 thread ("peer") and 2 threads: the
  ratio is the second thread's speed-up (each batch's chunks of rows shared by the threads).
* ``nn-fit5-{dnn,wd}`` — 5 epochs through the public API; recforge's time includes encoding the
  DataFrame (Keras gets the encoded arrays for free).
* ``nn-predict-{dnn,wd}`` — probabilities of the 16,281 test rows. Keras: ``model.predict``
  (batch 4096); recforge ``predict_proba`` on the encoded inputs, and on the raw DataFrame
  (encoding included).

Run::

    pytest bench/bench_nn.py --benchmark-only --benchmark-json=/tmp/nn.json
    python bench/compare.py /tmp/nn.json
    python bench/bench_nn.py first-epoch      # first-epoch overhead: warm vs cold Numba cache, Keras tracing
    python bench/bench_nn.py quality          # Adult test AUC over seeds 0, 1, 2 (defaults)
"""

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

try:
    from .conftest import pick
except ImportError:  # run as a script

    def pick(full, smoke):
        return full


from recforge._threads import resolve_n_threads

THREADS = resolve_n_threads(int(os.environ.get("RECFORGE_BENCH_THREADS", "0")))
CROSSES = [("education", "occupation"), ("native_country", "occupation")]
N_TRAIN = pick(None, 2000)  # None = all rows
HIDDEN = (128, 64, 32)
PRED_BATCH = 4096
ROUNDS = pick(5, 1)


# ----------------------------------------------------------------------------------------------
# data and models
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def adult_data():
    from recforge.datasets import adult

    d = adult()
    X, y = d.X_train, d.y_train
    if N_TRAIN is not None:
        X, y = X.iloc[:N_TRAIN], y[:N_TRAIN]
    Xt = d.X_test if N_TRAIN is None else d.X_test.iloc[:N_TRAIN]
    return X, y.astype(np.float32), Xt


def _ours(kind, X, y, batch_size, n_threads, epochs=1):
    from recforge.features import FeatureEncoder
    from recforge.rank import DNN, WideDeep

    cls = DNN if kind == "dnn" else WideDeep
    model = cls(
        encoder=FeatureEncoder(crosses=CROSSES),
        hidden_units=HIDDEN,
        batch_size=batch_size,
        epochs=epochs,
        random_state=0,
        n_threads=n_threads,
    )
    return model.fit(X, y)


def _encoded(model, X):
    return model._as_inputs(model._prepare_X(X, reset=False), fit=False)


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = pytest.importorskip("tensorflow")
    if not getattr(_keras, "configured", False):
        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(THREADS)
        _keras.configured = True
    return tf


def _keras_model(kind, model, inp):
    """The Keras twin of a fitted recforge model (same layout; weights initialised by Keras)."""
    tf = _keras()
    keras = tf.keras
    cols = model.embedding_columns_
    cat_in = [keras.Input(shape=(), dtype="int32", name=f"c{c}") for c in range(len(cols))]
    num_in = keras.Input(shape=(inp.dense.shape[1],), name="num")
    embs = [keras.layers.Embedding(model.encoder_.n_codes(c), 8)(x) for c, x in zip(cols, cat_in)]
    h = keras.layers.Concatenate()([*embs, num_in])
    for m in HIDDEN:
        h = keras.layers.Dense(m, activation="relu")(h)
    h = keras.layers.Dense(1)(h)
    inputs = [*cat_in, num_in]
    feed = [inp.codes[:, c] for c in range(len(cols))] + [inp.dense]
    if kind == "wd":
        wide_in = keras.Input(shape=(inp.wide.shape[1],), sparse=True, name="wide")
        h = keras.layers.Add()([h, keras.layers.Dense(1, use_bias=False)(wide_in)])
        inputs.append(wide_in)
        feed.append(inp.wide)
    km = keras.Model(inputs, h)
    km.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return km, feed


def _epoch_runner(model, inp, y, n_threads, seed=0):
    """One training epoch of a fitted recforge model on encoded inputs (what ``fit`` runs per epoch)
    on ``n_threads`` threads."""
    from recforge._threads import limit_blas_threads, load_scipy_blas

    load_scipy_blas()
    rng = np.random.default_rng(seed)
    yy = y.astype(np.float64)
    sw = np.ones_like(yy)
    n = yy.shape[0]

    def run():
        order = rng.permutation(n).astype(np.int64)
        with limit_blas_threads(1):  # as in fit
            return model._train_call(inp, yy, sw, order, 0, n, model.batch_size, 0, n_threads)

    return run


# ----------------------------------------------------------------------------------------------
# epoch time
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["dnn", "wd"])
@pytest.mark.parametrize("batch_size", [256, 1024])
def test_keras_epoch(benchmark, adult_data, kind, batch_size):
    X, y, _ = adult_data
    benchmark.group = f"nn-epoch-{kind}-b{batch_size}"
    model = _ours(kind, X.iloc[:500], y[:500], batch_size, 1)  # only for the encoder and layout
    inp = _encoded(model, X)
    km, feed = _keras_model(kind, model, inp)
    benchmark.extra_info["threads"] = THREADS
    benchmark.pedantic(
        lambda: km.fit(feed, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=True),
        rounds=ROUNDS,
        warmup_rounds=1,
    )


@pytest.mark.parametrize("kind", ["dnn", "wd"])
@pytest.mark.parametrize("batch_size", [256, 1024])
def test_recforge_epoch(benchmark, adult_data, kind, batch_size, n_threads=THREADS):
    X, y, _ = adult_data
    benchmark.group = f"nn-epoch-{kind}-b{batch_size}"
    model = _ours(kind, X, y, batch_size, n_threads)  # one epoch: compiles / loads the kernels
    run = _epoch_runner(model, _encoded(model, X), y, n_threads)
    benchmark.extra_info["threads"] = n_threads
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1)


# ----------------------------------------------------------------------------------------------
# the second thread: one epoch at 1 thread (the "peer") and at 2 threads (issue 13)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("threads", ["one_thread", "recforge_two_threads"])
@pytest.mark.parametrize("kind", ["dnn", "wd"])
def test_epoch_threads(benchmark, adult_data, kind, threads):
    X, y, _ = adult_data
    benchmark.group = f"nn-threads-{kind}"
    n_threads = 1 if threads == "one_thread" else 2
    model = _ours(kind, X, y, 256, n_threads)
    benchmark.extra_info["threads"] = n_threads
    benchmark.pedantic(
        _epoch_runner(model, _encoded(model, X), y, n_threads), rounds=ROUNDS, warmup_rounds=1
    )


# ----------------------------------------------------------------------------------------------
# 5 epochs through the public API
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["dnn", "wd"])
def test_keras_fit5(benchmark, adult_data, kind):
    X, y, _ = adult_data
    benchmark.group = f"nn-fit5-{kind}"
    model = _ours(kind, X.iloc[:500], y[:500], 256, 1)
    inp = _encoded(model, X)
    km, feed = _keras_model(kind, model, inp)
    km.fit(feed, y, batch_size=256, epochs=1, verbose=0)  # tracing
    benchmark.pedantic(
        lambda: km.fit(feed, y, batch_size=256, epochs=5, verbose=0, shuffle=True),
        rounds=pick(3, 1),
    )


@pytest.mark.parametrize("kind", ["dnn", "wd"])
def test_recforge_fit5(benchmark, adult_data, kind):
    X, y, _ = adult_data
    benchmark.group = f"nn-fit5-{kind}"
    _ours(kind, X.iloc[:500], y[:500], 256, THREADS)  # kernels compiled / loaded
    benchmark.pedantic(lambda: _ours(kind, X, y, 256, THREADS, epochs=5), rounds=pick(3, 1))


# ----------------------------------------------------------------------------------------------
# prediction of the test set
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["dnn", "wd"])
def test_keras_predict(benchmark, adult_data, kind):
    X, y, Xt = adult_data
    benchmark.group = f"nn-predict-{kind}"
    model = _ours(kind, X.iloc[:500], y[:500], 256, 1)
    inp = _encoded(model, Xt)
    km, feed = _keras_model(kind, model, inp)
    km.predict(feed, batch_size=PRED_BATCH, verbose=0)
    out = benchmark.pedantic(
        lambda: km.predict(feed, batch_size=PRED_BATCH, verbose=0),
        rounds=pick(10, 1),
        warmup_rounds=1,
    )
    assert out.shape[0] == len(Xt)


@pytest.mark.parametrize("kind", ["dnn", "wd"])
@pytest.mark.parametrize("raw", [False, True], ids=["encoded", "dataframe"])
def test_recforge_predict(benchmark, adult_data, kind, raw):
    X, y, Xt = adult_data
    benchmark.group = f"nn-predict-{kind}"
    model = _ours(kind, X, y, 256, THREADS)
    if raw:

        def fn():
            return model.predict_proba(Xt)
    else:
        inp = _encoded(model, Xt)

        def fn():
            return model._decision(inp)

    out = benchmark.pedantic(fn, rounds=pick(10, 1), warmup_rounds=1)
    assert out.shape[0] == len(Xt)


# ----------------------------------------------------------------------------------------------
# script mode: first-epoch overhead and 3-seed quality
# ----------------------------------------------------------------------------------------------
_FIRST_EPOCH = r"""
import json, time, sys
t0 = time.perf_counter()
from recforge.datasets import adult
from recforge.features import FeatureEncoder
from recforge.rank import DNN, WideDeep
d = adult()
cls = DNN if sys.argv[1] == "dnn" else WideDeep
m = cls(encoder=FeatureEncoder(crosses=[("education", "occupation"), ("native_country", "occupation")]),
        epochs=3, random_state=0, n_threads=int(sys.argv[2])).fit(d.X_train, d.y_train)
print(json.dumps(m.timings_["epochs"]))
"""

_KERAS_FIRST_EPOCH = r"""
import json, os, sys, time
sys.path.insert(0, os.path.dirname(sys.argv[3]))
import bench_nn as B
from recforge.datasets import adult
d = adult()
model = B._ours(sys.argv[1], d.X_train.iloc[:500], d.y_train[:500], 256, 1)
inp = B._encoded(model, d.X_train)
km, feed = B._keras_model(sys.argv[1], model, inp)
y = d.y_train.astype("float32")
times = []
for _ in range(3):
    t = time.perf_counter()
    km.fit(feed, y, batch_size=256, epochs=1, verbose=0)
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def first_epoch_overhead():
    """First-epoch time minus the median of later epochs: recforge with a cold Numba cache (fresh
    ``NUMBA_CACHE_DIR``) and a warm one, Keras (graph tracing). Separate processes."""
    import json

    env = dict(os.environ)
    here = os.path.abspath(__file__)
    for kind in ("dnn", "wd"):
        with tempfile.TemporaryDirectory() as cache:
            cold_env = {**env, "NUMBA_CACHE_DIR": cache}
            cold = json.loads(
                subprocess.run(
                    [sys.executable, "-c", _FIRST_EPOCH, kind, str(THREADS)],
                    env=cold_env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            warm = json.loads(
                subprocess.run(
                    [sys.executable, "-c", _FIRST_EPOCH, kind, str(THREADS)],
                    env=cold_env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
        keras = json.loads(
            subprocess.run(
                [sys.executable, "-c", _KERAS_FIRST_EPOCH, kind, str(THREADS), here],
                env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        for name, t in (
            ("recforge cold cache", cold),
            ("recforge warm cache", warm),
            ("keras", keras),
        ):
            later = float(np.median(t[1:]))
            print(
                f"{kind:>3} {name:<20} first epoch {t[0]:7.3f} s, later {later:6.3f} s, "
                f"overhead {t[0] - later:7.3f} s"
            )


def quality(seeds=(0, 1, 2)):
    """Adult test AUC of the documented defaults, per seed and averaged."""
    from recforge.datasets import adult
    from recforge.features import FeatureEncoder
    from recforge.metrics import roc_auc_score
    from recforge.rank import DNN, WideDeep

    d = adult()
    for name, make in (
        ("DNN", lambda s: DNN(encoder=FeatureEncoder(), random_state=s)),
        ("Wide&Deep", lambda s: WideDeep(encoder=FeatureEncoder(crosses=CROSSES), random_state=s)),
    ):
        aucs = []
        for s in seeds:
            t = time.perf_counter()
            model = make(s).fit(d.X_train, d.y_train)
            aucs.append(roc_auc_score(d.y_test, model.predict_proba(d.X_test)[:, 1]))
            print(
                f"{name:<10} seed {s}: AUC {aucs[-1]:.4f} (fit + predict {time.perf_counter() - t:.1f} s)"
            )
        print(f"{name:<10} mean AUC over seeds {list(seeds)}: {np.mean(aucs):.4f}")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "quality"
    {"first-epoch": first_epoch_overhead, "quality": quality}[what]()
