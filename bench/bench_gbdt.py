"""GBDT: recforge's GBDTClassifier vs xgboost ``tree_method="hist"`` and LightGBM, same
trees/depth/bins/threads.

Groups (1 and 2 threads each; the peer's name has no "recforge"):

* ``gbdt-fit-adult-{n}thr`` — UCI Adult, 300 trees, depth 6, eta 0.1, 256 bins. recforge fits the
  raw DataFrame (categorical columns as categories); xgboost fits the one-hot float32 matrix
  (xgboost's best Adult recipe, AUC 0.9285); ``test_recforge_fit_adult[*-onehot]`` fits ours on the same
  one-hot matrix (105 columns: what a user who one-hot encodes gets). Whole fit: binning included.
* ``gbdt-fit-synthetic-{n}thr`` — ``synthetic_ctr`` 1M rows x 50 float32 features, 100 trees,
  depth 6, 256 bins (plus 200k held-out rows of the same draw for the AUC). Whole fit.
* ``gbdt-fit-adult-busy`` — the Adult fit while a separate process keeps one core busy: recforge
  with 1 and 2 threads (DESIGN.md: the 2-thread run must not be slower than the 1-thread run; our
  pool's threads block, they never spin) and xgboost with 1 thread as the reference.
* ``gbdt-binning-synthetic`` — the binning step alone: recforge's BinMapper fit + transform vs
  xgboost's ``QuantileDMatrix`` construction (2 threads).
* ``gbdt-predict-synthetic-{n}thr`` — raw margins of 200k rows from the 100-tree models:
  ``decision_function`` vs ``Booster.inplace_predict`` (rows/s in ``extra_info``).
* ``gbdt-lgbm-predict-synthetic-{n}thr`` — raw margins of the same 200k rows from 100-tree depth-6
  models: ``decision_function`` vs LightGBM ``Booster.predict(raw_score=True)`` (issue 17).
* ``gbdt-lgbm-{data}-{growth}-{n}thr`` — the same fits (Adult and the 1M x 50 set) against
  LightGBM (issue 17): ``depthwise`` is recforge's depth-6 trees vs LightGBM ``max_depth=6,
  num_leaves=63``; ``bestfirst`` is recforge ``max_leaves=31`` (best-first, no depth limit) vs
  LightGBM's default leaf-wise growth (``num_leaves=31``). Both with ``min_child_samples=1,
  min_child_weight=1, reg_lambda=1, max_bin=255`` (xgboost's / recforge's defaults); on Adult
  LightGBM gets the string columns as pandas categories (its own categorical splits).
* ``gbdt-fit-mixed-{n}thr`` / ``gbdt-lgbm-mixed-{growth}-{n}thr`` — the 225k x 18 mixed set with 2 %
  NaN of issues 13/17 (``mixed_frame``: 12 numeric and 6 categorical columns, generated from seed
  0; 45k held-out rows of the same draw), 100 trees: recforge vs xgboost ``hist`` (categories
  through ``enable_categorical``, depth 6) and vs LightGBM (both growths, as below). Its 40- to
  200-value categorical columns need the peers' split of a categorical feature by a sorted
  partition of its values, which recforge runs here (``categorical_split="partition"``) with
  LightGBM's ``min_data_per_group=100`` and rare-category filter (10 rows) in hessian units at
  this set's mean hessian per row (~0.19): ``min_group_weight=20, min_category_weight=2``. Test
  AUC at 1 thread (2026-12-06, loaded machine), depth-wise: one value vs the rest 0.7636,
  partition without limits 0.7692, with them 0.7697 (xgboost 0.7679, LightGBM 0.7703);
  best-first: 0.7719 / 0.7733 / 0.7724 (LightGBM 0.7728). At smoke size (20k rows, 30 trees) the
  limits matter most: 0.7286 / 0.7118 / 0.7418 depth-wise (LightGBM 0.735).
* ``gbdt-fit-onehot-{n}thr`` — a one-hot-heavy matrix: ``FeatureEncoder`` one-hot output of the
  click log of ``bench_lr`` (100k rows, 475 0/1 columns, 30 non-zero per row, dense float32), 100
  trees depth 6, recforge vs LightGBM (``max_depth=6, num_leaves=63``) and xgboost; LightGBM
  bundles exclusive columns (EFB), and so does recforge by default (``feature_bundling=True``:
  427 columns -> 30 bundles, the 48 constant ones left out).
  ``test_recforge_fit_onehot_unbundled`` is recforge with ``feature_bundling=False`` (the same
  trees): at full size on 2026-12-07, 1 thread, recforge 1.52 s, unbundled 9.95 s, LightGBM
  1.55 s, xgboost 7.63 s; 2 threads 0.97 / 5.66 / 1.10 / 4.40 s; AUC 0.8205 / 0.8205 / 0.8206 /
  0.8205.

Every fit records its test AUC and the binning / training split (``binning_s`` / ``training_s``)
in ``extra_info``; in each group recforge's AUC must be at least every peer's minus 0.002 (equal
quality: one-sided, a higher AUC than the peer's is no failure; see ``_record``). Full size: 3 rounds
for Adult and for the 1M-row fits (each takes 8-30 s: a single round moved ours by ~8 % between two
groups of the same fit), 5 for predict.

Run:  pytest bench/bench_gbdt.py --benchmark-only --benchmark-json=/tmp/gbdt.json
      python bench/compare.py /tmp/gbdt.json
"""

import contextlib

import numpy as np
import pandas as pd
import pytest

# LightGBM loads the system's GNU OpenMP, which recforge's Numba kernels load with
# OMP_WAIT_POLICY=PASSIVE (recforge.kernels._jit.load_openmp_passive): loaded here first, the peer
# keeps its default policy (the trees of recforge run on their own C++ thread pool either way).
with contextlib.suppress(ImportError):
    import lightgbm  # noqa: F401

from recforge.metrics import roc_auc_score
from recforge.rank import GBDTClassifier

from .conftest import pick, synthetic_ctr_split

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

N_SYNTH = pick(1_000_000, 20_000)
N_SYNTH_TEST = pick(200_000, 5_000)
ADULT_TREES = pick(300, 20)
SYNTH_TREES = pick(100, 10)
# (Adult fits take 0.3-2 s: 7 rounds, so that a median is not one slow phase of a shared host)
ROUNDS_ADULT = pick(7, 1)
ROUNDS_SYNTH = pick(3, 1)


@pytest.fixture(scope="module")
def adult_data():
    from recforge.datasets import adult

    data = adult()
    both = pd.get_dummies(pd.concat([data.X_train, data.X_test]), dtype=np.float32).astype(
        np.float32
    )
    n = len(data.X_train)
    onehot_train, onehot_test = both.iloc[:n].to_numpy(), both.iloc[n:].to_numpy()
    return data, onehot_train, onehot_test


@pytest.fixture(scope="module")
def synthetic_data():
    return synthetic_ctr_split(N_SYNTH, N_SYNTH_TEST)


_AUC = {}  # group key -> {"ours": [AUC, ...], "peers": [AUC, ...]}
#: our test AUC may fall at most this far below any peer's in the same group
AUC_TOLERANCE = 0.002


def _record(benchmark, key, model, auc):
    """Record a fit's test AUC and check the group's quality: every recforge AUC at least every
    peer's minus AUC_TOLERANCE. One-sided on purpose: "equal quality" protects the user from a
    faster but worse model; ours being better than a peer (0.0026 above xgboost on the mixed set)
    is no failure. The check runs once both sides of a group are in, whichever ran first."""
    benchmark.extra_info["auc"] = auc
    ours = isinstance(model, GBDTClassifier)
    if ours:
        benchmark.extra_info["binning_s"] = model.binning_seconds_
        benchmark.extra_info["training_s"] = model.training_seconds_
    side = _AUC.setdefault(key, {"ours": [], "peers": []})
    side["ours" if ours else "peers"].append(auc)
    if side["ours"] and side["peers"]:
        assert min(side["ours"]) >= max(side["peers"]) - AUC_TOLERANCE, side


def _xgb(n_trees, n_threads):
    return xgb.XGBClassifier(
        n_estimators=n_trees,
        max_depth=6,
        learning_rate=0.1,
        tree_method="hist",
        max_bin=256,
        n_jobs=n_threads,
    )


def _ours(n_trees, n_threads, **params):
    return GBDTClassifier(
        n_estimators=n_trees,
        max_depth=6,
        learning_rate=0.1,
        max_bin=256,
        n_threads=n_threads,
        **params,
    )


@pytest.mark.parametrize("n_threads", [1, 2])
def test_xgboost_fit_adult(benchmark, adult_data, n_threads):
    data, Xtr, Xte = adult_data
    benchmark.group = f"gbdt-fit-adult-{n_threads}thr"
    model = benchmark.pedantic(
        lambda: _xgb(ADULT_TREES, n_threads).fit(Xtr, data.y_train),
        rounds=ROUNDS_ADULT,
        warmup_rounds=0,
    )
    _record(
        benchmark,
        f"adult-{n_threads}",
        model,
        roc_auc_score(data.y_test, model.predict_proba(Xte)[:, 1]),
    )


@pytest.mark.parametrize("inputs", ["categories", "onehot"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_fit_adult(benchmark, adult_data, n_threads, inputs):
    """``categories``: the raw DataFrame; ``onehot``: xgboost's one-hot matrix (what a user who
    one-hot encodes gets)."""
    data, onehot_train, onehot_test = adult_data
    X, X_test = (
        (data.X_train, data.X_test) if inputs == "categories" else (onehot_train, onehot_test)
    )
    benchmark.group = f"gbdt-fit-adult-{n_threads}thr"
    model = benchmark.pedantic(
        lambda: _ours(ADULT_TREES, n_threads).fit(X, data.y_train),
        rounds=ROUNDS_ADULT,
        warmup_rounds=0,
    )
    _record(
        benchmark,
        f"adult-{n_threads}",
        model,
        roc_auc_score(data.y_test, model.predict_proba(X_test)[:, 1]),
    )


def test_xgboost_fit_adult_busy(benchmark, adult_data, busy_core):
    data, Xtr, Xte = adult_data
    benchmark.group = "gbdt-fit-adult-busy"
    model = benchmark.pedantic(
        lambda: _xgb(ADULT_TREES, 1).fit(Xtr, data.y_train), rounds=ROUNDS_ADULT, warmup_rounds=0
    )
    _record(
        benchmark, "adult-busy", model, roc_auc_score(data.y_test, model.predict_proba(Xte)[:, 1])
    )


@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_fit_adult_busy(benchmark, adult_data, busy_core, n_threads):
    data, _, _ = adult_data
    benchmark.group = "gbdt-fit-adult-busy"
    model = benchmark.pedantic(
        lambda: _ours(ADULT_TREES, n_threads).fit(data.X_train, data.y_train),
        rounds=ROUNDS_ADULT,
        warmup_rounds=0,
    )
    _record(
        benchmark,
        "adult-busy",
        model,
        roc_auc_score(data.y_test, model.predict_proba(data.X_test)[:, 1]),
    )


_MODELS = {}


@pytest.mark.parametrize("n_threads", [1, 2])
def test_xgboost_fit_synthetic(benchmark, synthetic_data, n_threads):
    Xtr, ytr, Xte, yte = synthetic_data
    benchmark.group = f"gbdt-fit-synthetic-{n_threads}thr"
    model = benchmark.pedantic(
        lambda: _xgb(SYNTH_TREES, n_threads).fit(Xtr, ytr), rounds=ROUNDS_SYNTH, warmup_rounds=0
    )
    _MODELS["xgboost"] = model
    _record(
        benchmark, f"synth-{n_threads}", model, roc_auc_score(yte, model.predict_proba(Xte)[:, 1])
    )


@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_fit_synthetic(benchmark, synthetic_data, n_threads):
    Xtr, ytr, Xte, yte = synthetic_data
    benchmark.group = f"gbdt-fit-synthetic-{n_threads}thr"
    model = benchmark.pedantic(
        lambda: _ours(SYNTH_TREES, n_threads).fit(Xtr, ytr), rounds=ROUNDS_SYNTH, warmup_rounds=0
    )
    _MODELS["recforge"] = model
    _record(
        benchmark, f"synth-{n_threads}", model, roc_auc_score(yte, model.predict_proba(Xte)[:, 1])
    )


def test_xgboost_binning_synthetic(benchmark, synthetic_data):
    Xtr, ytr, _, _ = synthetic_data
    benchmark.group = "gbdt-binning-synthetic"
    benchmark.pedantic(
        lambda: xgb.QuantileDMatrix(Xtr, ytr, max_bin=256, nthread=2),
        rounds=ROUNDS_SYNTH + 1,
        warmup_rounds=0,
    )


def test_recforge_binning_synthetic(benchmark, synthetic_data):
    from recforge.rank.gbdt._binning import BinMapper

    Xtr, _, _, _ = synthetic_data

    def run():
        mapper = BinMapper(max_bin=255, random_state=np.random.default_rng(0)).fit(
            Xtr, np.zeros(Xtr.shape[1], bool), n_threads=2
        )
        return mapper.transform(Xtr, n_threads=2)

    benchmark.group = "gbdt-binning-synthetic"
    benchmark.pedantic(run, rounds=ROUNDS_SYNTH + 1, warmup_rounds=0)


def _fitted(name, synthetic_data):
    if name not in _MODELS:  # when run on its own
        Xtr, ytr, _, _ = synthetic_data
        _MODELS[name] = (_ours if name == "recforge" else _xgb)(SYNTH_TREES, 2).fit(Xtr, ytr)
    return _MODELS[name]


@pytest.mark.parametrize("n_threads", [1, 2])
def test_xgboost_predict_synthetic(benchmark, synthetic_data, n_threads):
    _, _, Xte, _ = synthetic_data
    booster = _fitted("xgboost", synthetic_data).get_booster()
    booster.set_param({"nthread": n_threads})
    benchmark.group = f"gbdt-predict-synthetic-{n_threads}thr"
    benchmark.pedantic(
        lambda: booster.inplace_predict(Xte, predict_type="margin"), rounds=5, warmup_rounds=1
    )
    benchmark.extra_info["rows_per_s"] = len(Xte) / benchmark.stats.stats.median


@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_predict_synthetic(benchmark, synthetic_data, n_threads):
    _, _, Xte, _ = synthetic_data
    model = _fitted("recforge", synthetic_data)
    model.n_threads = n_threads
    benchmark.group = f"gbdt-predict-synthetic-{n_threads}thr"
    benchmark.pedantic(lambda: model.decision_function(Xte), rounds=5, warmup_rounds=1)
    benchmark.extra_info["rows_per_s"] = len(Xte) / benchmark.stats.stats.median


# ---- LightGBM (issue 17) ------------------------------------------------------------------------------
# Smoke size: 30 trees, not 10: on 20k rows the first 10 trees of the two libraries differ by 0.0022 AUC
# (different bin edges), 30 agree within 0.001 (measured); the full size is the 100 trees of the issue.
LGBM_SYNTH_TREES = pick(100, 30)
GROWTH = {  # recforge parameters, LightGBM parameters
    "depthwise": ({"max_depth": 6}, {"max_depth": 6, "num_leaves": 63}),
    "bestfirst": ({"max_depth": None, "max_leaves": 31}, {"max_depth": -1, "num_leaves": 31}),
}


@pytest.fixture(scope="module")
def adult_categories():
    """Adult train/test with the string columns as pandas categories (the same categories in both)."""
    from recforge.datasets import adult

    data = adult()
    both = pd.concat([data.X_train, data.X_test])
    for c in both.columns:
        if not pd.api.types.is_numeric_dtype(both[c]):
            both[c] = both[c].astype("category")
    n = len(data.X_train)
    return data, both.iloc[:n], both.iloc[n:]


def _lgbm(n_trees, n_threads, growth):
    return lgb.LGBMClassifier(
        n_estimators=n_trees,
        learning_rate=0.1,
        min_child_samples=1,
        min_child_weight=1.0,
        reg_lambda=1.0,
        max_bin=255,
        n_jobs=n_threads,
        verbose=-1,
        **GROWTH[growth][1],
    )


def _ours_grown(n_trees, n_threads, growth, **params):
    return GBDTClassifier(
        n_estimators=n_trees,
        learning_rate=0.1,
        max_bin=256,
        n_threads=n_threads,
        **GROWTH[growth][0],
        **params,
    )


@pytest.mark.parametrize("growth", sorted(GROWTH))
@pytest.mark.parametrize("n_threads", [1, 2])
def test_lightgbm_fit_adult(benchmark, adult_categories, n_threads, growth):
    data, Xtr, Xte = adult_categories
    benchmark.group = f"gbdt-lgbm-adult-{growth}-{n_threads}thr"
    model = benchmark.pedantic(
        lambda: _lgbm(ADULT_TREES, n_threads, growth).fit(Xtr, data.y_train),
        rounds=ROUNDS_ADULT,
        warmup_rounds=0,
    )
    _record(
        benchmark,
        f"lgbm-adult-{growth}-{n_threads}",
        model,
        roc_auc_score(data.y_test, model.predict_proba(Xte)[:, 1]),
    )


@pytest.mark.parametrize("growth", sorted(GROWTH))
@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_fit_adult_vs_lightgbm(benchmark, adult_categories, n_threads, growth):
    data, Xtr, Xte = adult_categories
    benchmark.group = f"gbdt-lgbm-adult-{growth}-{n_threads}thr"
    model = benchmark.pedantic(
        lambda: _ours_grown(ADULT_TREES, n_threads, growth).fit(Xtr, data.y_train),
        rounds=ROUNDS_ADULT,
        warmup_rounds=0,
    )
    _record(
        benchmark,
        f"lgbm-adult-{growth}-{n_threads}",
        model,
        roc_auc_score(data.y_test, model.predict_proba(Xte)[:, 1]),
    )


@pytest.mark.parametrize("growth", sorted(GROWTH))
@pytest.mark.parametrize("n_threads", [1, 2])
def test_lightgbm_fit_synthetic(benchmark, synthetic_data, n_threads, growth):
    Xtr, ytr, Xte, yte = synthetic_data
    benchmark.group = f"gbdt-lgbm-synthetic-{growth}-{n_threads}thr"
    model = benchmark.pedantic(
        lambda: _lgbm(LGBM_SYNTH_TREES, n_threads, growth).fit(Xtr, ytr),
        rounds=ROUNDS_SYNTH,
        warmup_rounds=0,
    )
    _record(
        benchmark,
        f"lgbm-synth-{growth}-{n_threads}",
        model,
        roc_auc_score(yte, model.predict_proba(Xte)[:, 1]),
    )


@pytest.mark.parametrize("growth", sorted(GROWTH))
@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_fit_synthetic_vs_lightgbm(benchmark, synthetic_data, n_threads, growth):
    Xtr, ytr, Xte, yte = synthetic_data
    benchmark.group = f"gbdt-lgbm-synthetic-{growth}-{n_threads}thr"
    model = benchmark.pedantic(
        lambda: _ours_grown(LGBM_SYNTH_TREES, n_threads, growth).fit(Xtr, ytr),
        rounds=ROUNDS_SYNTH,
        warmup_rounds=0,
    )
    _record(
        benchmark,
        f"lgbm-synth-{growth}-{n_threads}",
        model,
        roc_auc_score(yte, model.predict_proba(Xte)[:, 1]),
    )


_LGBM_MODELS = {}


def _fitted_for_lightgbm(name, synthetic_data):
    """The depth-6, 100-tree models of the LightGBM predict group (fitted once, 2 threads)."""
    if name not in _LGBM_MODELS:
        Xtr, ytr, _, _ = synthetic_data
        make = _ours_grown if name == "recforge" else _lgbm
        _LGBM_MODELS[name] = make(LGBM_SYNTH_TREES, 2, "depthwise").fit(Xtr, ytr)
    return _LGBM_MODELS[name]


@pytest.mark.parametrize("n_threads", [1, 2])
def test_lightgbm_predict_synthetic(benchmark, synthetic_data, n_threads):
    _, _, Xte, _ = synthetic_data
    booster = _fitted_for_lightgbm("lightgbm", synthetic_data).booster_
    benchmark.group = f"gbdt-lgbm-predict-synthetic-{n_threads}thr"
    benchmark.pedantic(
        lambda: booster.predict(Xte, raw_score=True, num_threads=n_threads),
        rounds=5,
        warmup_rounds=1,
    )
    benchmark.extra_info["rows_per_s"] = len(Xte) / benchmark.stats.stats.median


@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_predict_synthetic_vs_lightgbm(benchmark, synthetic_data, n_threads):
    _, _, Xte, _ = synthetic_data
    model = _fitted_for_lightgbm("recforge", synthetic_data)
    model.n_threads = n_threads
    benchmark.group = f"gbdt-lgbm-predict-synthetic-{n_threads}thr"
    benchmark.pedantic(lambda: model.decision_function(Xte), rounds=5, warmup_rounds=1)
    benchmark.extra_info["rows_per_s"] = len(Xte) / benchmark.stats.stats.median


# ---- the 225k x 18 mixed set with 2 % NaN (issues 13 and 17) ------------------------------------------
N_MIXED = pick(225_000, 20_000)
N_MIXED_TEST = pick(45_000, 5_000)
MIXED_TREES = pick(100, 30)  # (smoke: 30, as LGBM_SYNTH_TREES)
ROUNDS_MIXED = pick(3, 1)


def mixed_frame(n_rows, seed=0):
    """``(DataFrame, y)``: 12 numeric and 6 categorical columns, 2 % NaN in each, int8 labels.

    Numeric: normal, log-normal, uniform and Poisson counts with non-monotone effects; categorical:
    4 to 200 values with Zipf-like frequencies, each value its own effect (pandas categories, NaN =
    missing). Labels from a logistic model with one interaction (about 25 % positives).
    """
    rng = np.random.default_rng(seed)
    columns, logit = {}, np.zeros(n_rows)
    for c in range(12):
        kind = c % 4
        if kind == 0:
            x = rng.normal(0.0, 1.0, n_rows)
            logit += 0.4 * np.tanh(2.0 * x) * (1 + c / 12)
        elif kind == 1:
            x = rng.lognormal(0.0, 1.0, n_rows)
            logit += 0.3 * np.sin(np.log(x) * (c + 1) / 3)
        elif kind == 2:
            x = rng.uniform(0.0, 10.0, n_rows)
            logit += 0.25 * ((x > 3) & (x < 6))
        else:
            x = rng.poisson(2.0 + c / 4, n_rows).astype(np.float64)
            logit += 0.1 * np.minimum(x, 6.0)
        x[rng.random(n_rows) < 0.02] = np.nan
        columns[f"num{c}"] = x.astype(np.float32)
    for c, card in enumerate([4, 9, 16, 40, 90, 200]):
        freq = 1.0 / np.arange(1, card + 1) ** 0.9
        codes = rng.choice(card, size=n_rows, p=freq / freq.sum())
        logit += rng.normal(0.0, 0.35, card)[codes]
        codes[rng.random(n_rows) < 0.02] = -1  # missing
        columns[f"cat{c}"] = pd.Categorical.from_codes(codes, [f"v{v}" for v in range(card)])
    logit += 0.3 * np.nan_to_num(columns["num0"]) * (columns["cat0"].codes == 1)
    logit += -1.5 - logit.mean()
    y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    return pd.DataFrame(columns), y


#: xgboost (``enable_categorical``) and LightGBM split a feature of more than 4 categories by a sorted
#: partition; so does ours here (its default, one category vs the rest, is better on Adult), with
#: LightGBM's group limits in hessian units (see the module docstring)
MIXED_PARAMS = {
    "categorical_split": "partition",
    "min_group_weight": 20.0,
    "min_category_weight": 2.0,
}


@pytest.fixture(scope="module")
def mixed_data():
    frame, y = mixed_frame(N_MIXED + N_MIXED_TEST)
    return frame.iloc[:N_MIXED], y[:N_MIXED], frame.iloc[N_MIXED:], y[N_MIXED:]


def _fit_and_record(benchmark, group, key, make, data, rounds):
    Xtr, ytr, Xte, yte = data
    benchmark.group = group
    model = benchmark.pedantic(lambda: make().fit(Xtr, ytr), rounds=rounds, warmup_rounds=0)
    _record(benchmark, key, model, roc_auc_score(yte, model.predict_proba(Xte)[:, 1]))


@pytest.mark.parametrize("n_threads", [1, 2])
def test_xgboost_fit_mixed(benchmark, mixed_data, n_threads):
    def make():
        model = _xgb(MIXED_TREES, n_threads)
        model.set_params(enable_categorical=True)
        return model

    _fit_and_record(
        benchmark,
        f"gbdt-fit-mixed-{n_threads}thr",
        f"mixed-{n_threads}",
        make,
        mixed_data,
        ROUNDS_MIXED,
    )


@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_fit_mixed(benchmark, mixed_data, n_threads):
    _fit_and_record(
        benchmark,
        f"gbdt-fit-mixed-{n_threads}thr",
        f"mixed-{n_threads}",
        lambda: _ours(MIXED_TREES, n_threads, **MIXED_PARAMS),
        mixed_data,
        ROUNDS_MIXED,
    )


@pytest.mark.parametrize("growth", sorted(GROWTH))
@pytest.mark.parametrize("n_threads", [1, 2])
def test_lightgbm_fit_mixed(benchmark, mixed_data, n_threads, growth):
    _fit_and_record(
        benchmark,
        f"gbdt-lgbm-mixed-{growth}-{n_threads}thr",
        f"lgbm-mixed-{growth}-{n_threads}",
        lambda: _lgbm(MIXED_TREES, n_threads, growth),
        mixed_data,
        ROUNDS_MIXED,
    )


@pytest.mark.parametrize("growth", sorted(GROWTH))
@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_fit_mixed_vs_lightgbm(benchmark, mixed_data, n_threads, growth):
    _fit_and_record(
        benchmark,
        f"gbdt-lgbm-mixed-{growth}-{n_threads}thr",
        f"lgbm-mixed-{growth}-{n_threads}",
        lambda: _ours_grown(MIXED_TREES, n_threads, growth, **MIXED_PARAMS),
        mixed_data,
        ROUNDS_MIXED,
    )


# ---- one-hot-heavy columns (issue 17: LightGBM's histograms skip each feature's most frequent bin) ---
N_ONEHOT = pick(100_000, 20_000)
N_ONEHOT_TEST = pick(25_000, 5_000)
ONEHOT_TREES = pick(100, 30)


@pytest.fixture(scope="module")
def onehot_data():
    from recforge.features import FeatureEncoder

    from .bench_lr import onehot_ctr_frame

    frame, y = onehot_ctr_frame(N_ONEHOT + N_ONEHOT_TEST)
    train, test = frame.iloc[:N_ONEHOT], frame.iloc[N_ONEHOT:]
    enc = FeatureEncoder(n_bins=20, scale_numeric=False).fit(train)

    def dense(m):
        return np.asarray(m.todense() if hasattr(m, "todense") else m, dtype=np.float32)

    return dense(enc.transform(train)), y[:N_ONEHOT], dense(enc.transform(test)), y[N_ONEHOT:]


_ONEHOT_MAKERS = {
    "recforge": lambda n_threads: _ours(ONEHOT_TREES, n_threads),
    "xgboost": lambda n_threads: _xgb(ONEHOT_TREES, n_threads),
    "lightgbm": lambda n_threads: _lgbm(ONEHOT_TREES, n_threads, "depthwise"),
}


@pytest.mark.parametrize("library", sorted(_ONEHOT_MAKERS))
@pytest.mark.parametrize("n_threads", [1, 2])
def test_fit_onehot(benchmark, onehot_data, n_threads, library):
    _fit_and_record(
        benchmark,
        f"gbdt-fit-onehot-{n_threads}thr",
        f"onehot-{n_threads}",
        lambda: _ONEHOT_MAKERS[library](n_threads),
        onehot_data,
        ROUNDS_ADULT,
    )


@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_fit_onehot_unbundled(benchmark, onehot_data, n_threads):
    """recforge with ``feature_bundling=False``: the 475 one-hot columns grown as columns (the
    same trees as the bundled default, for the record of what bundling gains)."""
    _fit_and_record(
        benchmark,
        f"gbdt-fit-onehot-{n_threads}thr",
        f"onehot-{n_threads}",
        lambda: _ours(ONEHOT_TREES, n_threads, feature_bundling=False),
        onehot_data,
        ROUNDS_ADULT,
    )
