"""DNN through the public API: quality on Adult, determinism, eval_set + early stopping, callback,
progress bar, save/load, encoder-less input and bad parameters."""

import numpy as np
import pandas as pd
import pytest

from recforge.exceptions import NotFittedError
from recforge.features import FeatureEncoder
from recforge.metrics import roc_auc_score
from recforge.rank import DNN


def _fit(adult_small, **kw):
    X, y, _, _ = adult_small
    params = {
        "encoder": FeatureEncoder(),
        "epochs": 2,
        "random_state": 0,
        "n_threads": 1,
        "batch_size": 128,
    }
    params.update(kw)
    return DNN(**params).fit(X, y)


@pytest.mark.data
def test_quality_on_adult(adult_data):
    """Default DNN (5 epochs of Adam 1e-3, batch 256, 128-64-32, embeddings 8) on the full Adult
    data, seeds 0-2: measured test AUC 0.9112 / 0.9114 / 0.9118, mean 0.9114 (issue: >= 0.910);
    thresholds: mean > 0.9104, each seed > 0.910 (measured minus 0.001 / 0.0012)."""
    aucs = []
    for seed in (0, 1, 2):
        model = DNN(encoder=FeatureEncoder(), random_state=seed, n_threads=1).fit(
            adult_data.X_train, adult_data.y_train
        )
        proba = model.predict_proba(adult_data.X_test)
        assert proba.shape == (len(adult_data.X_test), 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        aucs.append(roc_auc_score(adult_data.y_test, proba[:, 1]))
    assert min(aucs) > 0.910
    assert np.mean(aucs) > 0.9104


def test_bit_identical_for_a_seed_at_one_thread(adult_small):
    _, _, Xt, _ = adult_small
    a = _fit(adult_small).predict_proba(Xt)
    b = _fit(adult_small).predict_proba(Xt)
    np.testing.assert_array_equal(a, b)
    c = _fit(adult_small, random_state=1).predict_proba(Xt)
    assert not np.array_equal(a, c)
    # the chunks of each batch, their gradients' sum order and the prediction blocks do not depend
    # on the threads
    two = _fit(adult_small, n_threads=2)
    np.testing.assert_array_equal(two.predict_proba(Xt), a)


@pytest.mark.parametrize("batch_size", [100, 300])
def test_two_threads_train_the_same_network_with_dropout(adult_small, batch_size):
    """Batches that are not a multiple of the chunk size (and a last, short batch), dropout masks
    drawn per chunk: 1 and 2 threads give the same weights and losses, bit for bit."""
    one = _fit(adult_small, dropout=0.2, batch_size=batch_size, n_threads=1)
    two = _fit(adult_small, dropout=0.2, batch_size=batch_size, n_threads=2)
    assert one.loss_curve_ == two.loss_curve_
    w1, w2 = one.get_weights(), two.get_weights()
    for a, b in zip(w1["kernels"] + w1["biases"], w2["kernels"] + w2["biases"]):
        np.testing.assert_array_equal(a, b)
    for name, table in w1["embeddings"].items():
        np.testing.assert_array_equal(table, w2["embeddings"][name])


@pytest.mark.parametrize("optimizer", ["adam", "adagrad", "sgd"])
def test_optimizers_learn(adult_small, optimizer):
    _, _, Xt, yt = adult_small
    lr = {"adam": 1e-3, "adagrad": 0.05, "sgd": 0.3}[optimizer]
    model = _fit(adult_small, optimizer=optimizer, learning_rate=lr, epochs=4)
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    assert roc_auc_score(yt, model.predict_proba(Xt)[:, 1]) > 0.84


def test_dropout_is_seeded_and_changes_training(adult_small):
    _, _, Xt, yt = adult_small
    a = _fit(adult_small, dropout=0.3)
    np.testing.assert_array_equal(
        a.predict_proba(Xt), _fit(adult_small, dropout=0.3).predict_proba(Xt)
    )
    assert not np.array_equal(a.predict_proba(Xt), _fit(adult_small).predict_proba(Xt))
    assert roc_auc_score(yt, a.predict_proba(Xt)[:, 1]) > 0.85


def test_eval_set_early_stopping_keeps_best(adult_small):
    X, y, Xt, yt = adult_small
    model = DNN(
        encoder=FeatureEncoder(),
        epochs=30,
        learning_rate=0.01,
        early_stopping_rounds=2,
        random_state=0,
        n_threads=1,
    ).fit(X, y, eval_set=[(Xt, yt)])
    assert model.n_iter_ < 30
    assert len(model.evals_result_) == model.n_iter_
    assert model.best_iteration_ == int(np.argmax(model.evals_result_)) + 1
    assert model.n_iter_ == model.best_iteration_ + 2
    auc = roc_auc_score(yt, model.predict_proba(Xt)[:, 1])
    assert auc == pytest.approx(max(model.evals_result_), abs=1e-12)


def test_callback_sees_every_epoch_and_can_stop(adult_small):
    seen = []

    def cb(info):
        seen.append(info)
        return info["epoch"] == 2

    model = _fit(adult_small, epochs=5, callback=cb)
    assert [i["epoch"] for i in seen] == [1, 2]
    assert model.n_iter_ == 2
    assert seen[0]["train_loss"] == model.loss_curve_[0] and seen[0]["eval_auc"] is None


def test_verbose_progress_bar(adult_small, capsys):
    _fit(adult_small, verbose=True, epochs=1)
    err = capsys.readouterr().err
    assert "DNN" in err and "loss=" in err


def test_save_load_roundtrip(adult_small, tmp_path):
    _, _, Xt, _ = adult_small
    model = _fit(adult_small, embedding_dim={"education": 3}, hidden_units=(16, 8))
    path = tmp_path / "dnn.npz"
    model.save(path)
    loaded = DNN.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(Xt), model.predict_proba(Xt))
    assert loaded.get_params()["hidden_units"] == [16, 8] or loaded.get_params()[
        "hidden_units"
    ] == (16, 8)
    w = loaded.get_weights()
    assert w["embeddings"]["education"].shape[1] == 3
    assert [k.shape[1] for k in w["kernels"]] == [16, 8, 1]


def test_numeric_array_without_encoder():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 5)) * [1, 10, 100, 1, 1]
    y = (X[:, 0] + X[:, 1] / 10 - X[:, 2] / 100 > 0).astype(int)
    model = DNN(epochs=20, learning_rate=0.01, random_state=0, n_threads=1, hidden_units=(16,)).fit(
        X, y
    )
    assert model.embedding_columns_ == []
    assert (model.predict(X) == y).mean() > 0.95


def test_string_labels_and_unseen_categories(adult_small):
    X, y, Xt, _ = adult_small
    labels = np.where(y == 1, ">50K", "<=50K")
    model = DNN(encoder=FeatureEncoder(), epochs=1, random_state=0, n_threads=1).fit(X, labels)
    assert model.classes_.tolist() == ["<=50K", ">50K"]
    odd = Xt.iloc[:3].copy()
    odd["occupation"] = "astronaut"
    assert np.isfinite(model.predict_proba(odd)).all()
    assert set(model.predict(Xt)) <= {"<=50K", ">50K"}


@pytest.mark.parametrize(
    "param,value,err",
    [
        ("hidden_units", (), None),
        ("hidden_units", (4, 0), ValueError),
        ("optimizer", "rmsprop", ValueError),
        ("learning_rate", 0.0, ValueError),
        ("batch_size", 0, ValueError),
        ("epochs", 0, ValueError),
        ("embedding_dim", 0, ValueError),
        ("l2", -1.0, ValueError),
        ("callback", 3, TypeError),
        ("early_stopping_rounds", 0, ValueError),
        ("dropout", 1.0, ValueError),
    ],
)
def test_bad_parameters(adult_small, param, value, err):
    X, y, _, _ = adult_small
    model = DNN(**{"encoder": FeatureEncoder(), "epochs": 1, "n_threads": 1, param: value})
    if err is None:  # no hidden layer: a logistic regression on the embeddings — allowed
        model.fit(X.iloc[:200], y[:200])
        return
    with pytest.raises(err, match=param):
        model.fit(X.iloc[:200], y[:200])


def test_not_fitted_and_bad_input(adult_small):
    X, y, _, _ = adult_small
    with pytest.raises(NotFittedError):
        DNN().predict_proba(np.zeros((2, 3)))
    # strings without an encoder: a default FeatureEncoder is fitted inside (issue 14)
    assert DNN(epochs=1, n_threads=1).fit(X.iloc[:100], y[:100]).encoder_ is not None
    model = DNN(epochs=1, n_threads=1).fit(
        np.random.default_rng(0).normal(size=(50, 3)), np.arange(50) % 2
    )
    with pytest.raises(ValueError, match="features"):
        model.predict_proba(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        DNN(epochs=1).fit(pd.DataFrame({"a": [1.0, np.nan]}), [0, 1])


def test_encoder_one_pass_inputs_equal_the_separate_transforms(adult_small):
    X, _, Xt, _ = adult_small
    enc = FeatureEncoder().fit(X)
    cols = ["age", "education", "sex"]
    codes, num = enc.transform_codes_numeric(Xt, columns=cols)
    np.testing.assert_array_equal(codes, enc.transform_codes(Xt, columns=cols))
    np.testing.assert_array_equal(num, enc.transform_numeric(Xt))
    codes, _ = enc.transform_codes_numeric(Xt)
    np.testing.assert_array_equal(codes, enc.transform_codes(Xt))


@pytest.mark.parametrize("wide", [False, True])
def test_fit_reads_each_column_once(adult_small, monkeypatch, wide):
    """The encoder's fit and the encoding of the training rows share one read of each column
    (rank/_base passes the encoder one table)."""
    from recforge.features._columns import Table
    from recforge.rank import WideDeep

    X, y, _, _ = adult_small
    reads = []
    original = Table._read

    def counted(self, key, missing_values):
        reads.append(key)
        return original(self, key, missing_values)

    monkeypatch.setattr(Table, "_read", counted)
    cls = WideDeep if wide else DNN
    cls(encoder=FeatureEncoder(), epochs=1, random_state=0, n_threads=1).fit(X, y)
    assert sorted(reads) == sorted(str(c) for c in X.columns)
