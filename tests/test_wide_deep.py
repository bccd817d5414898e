"""Wide&Deep through the public API: quality on Adult, joint training, FTRL wide part, determinism,
save/load, early stopping."""

import numpy as np
import pytest

from recforge.exceptions import ModelFileError
from recforge.features import FeatureEncoder
from recforge.metrics import roc_auc_score
from recforge.rank import DNN, WideDeep

CROSSES = [("education", "occupation"), ("native_country", "occupation")]


def _fit(adult_small, **kw):
    X, y, _, _ = adult_small
    params = {
        "encoder": FeatureEncoder(crosses=CROSSES),
        "epochs": 2,
        "random_state": 0,
        "n_threads": 1,
        "batch_size": 128,
    }
    params.update(kw)
    return WideDeep(**params).fit(X, y)


@pytest.mark.data
def test_quality_on_adult(adult_data):
    """Defaults (5 epochs of Adam 1e-3 on both parts, batch 256, 128-64-32, embeddings 8) with the
    crosses education x occupation and native_country x occupation, seeds 0-2: measured test AUC
    0.9114 / 0.9114 / 0.9119, mean 0.9116 (issue: >= 0.911); thresholds: mean > 0.9106, each
    seed > 0.910 (measured minus 0.001 / 0.0014)."""
    aucs = []
    for seed in (0, 1, 2):
        model = WideDeep(encoder=FeatureEncoder(crosses=CROSSES), random_state=seed, n_threads=1)
        model.fit(adult_data.X_train, adult_data.y_train)
        aucs.append(roc_auc_score(adult_data.y_test, model.predict_proba(adult_data.X_test)[:, 1]))
    assert min(aucs) > 0.910
    assert np.mean(aucs) > 0.9106


def test_wide_part_is_trained_jointly(adult_small):
    """The wide weights move, only on features that occur, and the logit is wide + deep."""
    X, _, Xt, _ = adult_small
    model = _fit(adult_small)
    w = model.get_weights()["wide"]
    assert w.shape == (model.encoder_.n_features_out_,)
    used = np.unique(model.encoder_.transform(X).indices)
    assert np.all(w[np.setdiff1d(np.arange(w.size), used)] == 0)
    assert np.count_nonzero(w[used]) > 0.9 * used.size
    deep_only = model._logits(model._as_inputs(model._prepare_X(Xt, reset=False), fit=False))
    wide_part = model.encoder_.transform(Xt) @ w.astype(np.float64)
    saved = model._wide_w.copy()
    model._wide_w[:] = 0
    deep = model.decision_function(Xt)
    model._wide_w[:] = saved
    np.testing.assert_allclose(deep_only, deep + wide_part, rtol=1e-4, atol=1e-4)


def test_ftrl_l1_wide_part_is_sparse(adult_small):
    _, _, Xt, yt = adult_small
    model = _fit(adult_small, wide_optimizer="ftrl", wide_learning_rate=0.1, wide_l1=0.5, epochs=3)
    w = model.get_weights()["wide"]
    assert np.mean(w == 0) > 0.5
    assert roc_auc_score(yt, model.predict_proba(Xt)[:, 1]) > 0.85
    dense = _fit(adult_small, wide_optimizer="ftrl", wide_learning_rate=0.1, wide_l1=0.0, epochs=3)
    assert np.mean(dense.get_weights()["wide"] == 0) < np.mean(w == 0)


def test_bit_identical_for_a_seed_at_one_thread(adult_small):
    _, _, Xt, _ = adult_small
    np.testing.assert_array_equal(
        _fit(adult_small).predict_proba(Xt), _fit(adult_small).predict_proba(Xt)
    )


@pytest.mark.parametrize("wide_optimizer", [None, "ftrl"])
def test_two_threads_train_the_same_model(adult_small, wide_optimizer):
    one = _fit(adult_small, wide_optimizer=wide_optimizer, wide_learning_rate=0.05, n_threads=1)
    two = _fit(adult_small, wide_optimizer=wide_optimizer, wide_learning_rate=0.05, n_threads=2)
    assert one.loss_curve_ == two.loss_curve_
    np.testing.assert_array_equal(one.get_weights()["wide"], two.get_weights()["wide"])
    np.testing.assert_array_equal(one.get_weights()["kernels"][0], two.get_weights()["kernels"][0])


def test_parameters_are_the_deep_ones_and_the_wide_ones():
    """WideDeep takes DNN's parameters (one definition, in the shared base) and its own four."""
    deep = set(DNN().get_params())
    wide = {"wide_optimizer", "wide_learning_rate", "wide_l1", "wide_l2"}
    assert set(WideDeep().get_params()) == deep | wide
    model = WideDeep(hidden_units=(4,), wide_l1=0.5)
    assert model.hidden_units == (4,) and model.wide_l1 == 0.5 and model.epochs == DNN().epochs
    assert repr(model) == "WideDeep(hidden_units=(4,), wide_l1=0.5)"
    assert WideDeep(**model.get_params()).get_params() == model.get_params()
    with pytest.raises(TypeError, match="not_a_parameter"):
        WideDeep(not_a_parameter=1)


def test_save_load_roundtrip(adult_small, tmp_path):
    _, _, Xt, _ = adult_small
    model = _fit(adult_small, wide_optimizer="ftrl", wide_learning_rate=0.1)
    model.save(tmp_path / "wd.npz")
    loaded = WideDeep.load(tmp_path / "wd.npz")
    np.testing.assert_array_equal(loaded.predict_proba(Xt), model.predict_proba(Xt))
    assert loaded.encoder_.crosses_ == model.encoder_.crosses_
    with pytest.raises(ModelFileError):
        DNN.load(tmp_path / "wd.npz")


def test_early_stopping(adult_small):
    X, y, Xt, yt = adult_small
    model = WideDeep(
        encoder=FeatureEncoder(crosses=CROSSES),
        epochs=30,
        learning_rate=0.01,
        early_stopping_rounds=2,
        random_state=0,
        n_threads=1,
    ).fit(X, y, eval_set=(Xt, yt))
    assert model.n_iter_ == model.best_iteration_ + 2 < 30
    assert roc_auc_score(yt, model.predict_proba(Xt)[:, 1]) == pytest.approx(
        max(model.evals_result_)
    )


def test_numeric_array_without_encoder():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 4))
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    model = WideDeep(
        epochs=10, learning_rate=0.01, random_state=0, n_threads=1, hidden_units=(8,)
    ).fit(X, y)
    assert model.get_weights()["wide"].shape == (4,)
    assert (model.predict(X) == y).mean() > 0.95


@pytest.mark.parametrize(
    "param,value,err",
    [
        ("wide_optimizer", "lbfgs", ValueError),
        ("wide_learning_rate", -1.0, ValueError),
        ("wide_l1", -0.1, ValueError),
        ("wide_l2", np.nan, ValueError),
    ],
)
def test_bad_parameters(adult_small, param, value, err):
    X, y, _, _ = adult_small
    with pytest.raises(err, match=param):
        WideDeep(**{"encoder": FeatureEncoder(), "epochs": 1, param: value}).fit(
            X.iloc[:100], y[:100]
        )
