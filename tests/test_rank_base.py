"""The shared Ranker conventions (recforge.rank._base), through a toy ranker that uses the dense
(tree) input path, so every ranker built on the base gets the same behaviour."""

import io

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recforge.exceptions import ModelFileError, NotFittedError
from recforge.features import FeatureEncoder
from recforge.rank import Ranker
from recforge.rank._base import check_X


class ToyTree(Ranker):
    """Log-odds = weighted mean of the first column's NaN-filled values (tests only)."""

    _encoder_output = "dense"
    _accept_sparse = False
    _allow_nan = True

    def __init__(self, *, scale=1.0, encoder=None):
        self.scale = scale
        self.encoder = encoder

    def _fit(self, X, y, sample_weight, eval_set):
        self.bias_ = float(np.average(y, weights=sample_weight)) - 0.5
        self.n_evals_ = len(eval_set)

    def _decision(self, X):
        return self.scale * (np.nan_to_num(X[:, 0]) * 0.0 + self.bias_)

    def _get_state(self):
        return {"bias": np.array([self.bias_])}, {"n_evals": self.n_evals_}

    def _set_state(self, arrays, meta):
        self.bias_ = float(arrays["bias"][0])
        self.n_evals_ = meta["n_evals"]


@pytest.fixture
def frame():
    return pd.DataFrame(
        {"age": [20.0, np.nan, 40, 50, 60, 70], "city": ["a", "b", None, "a", "b", "a"]}
    )


Y = np.array([1, 0, 1, 1, 0, 1])


def test_dense_path_with_encoder_and_nan(frame, tmp_path):
    model = ToyTree(encoder=FeatureEncoder()).fit(frame, Y, eval_set=[(frame, Y)])
    assert model.n_features_in_ == 2 and list(model.feature_names_in_) == ["age", "city"]
    assert model.n_evals_ == 1 and model.classes_.tolist() == [0, 1]
    p = model.predict_proba(frame)
    assert p.shape == (6, 2)
    model.save(tmp_path / "toy.npz")
    back = ToyTree.load(tmp_path / "toy.npz")
    np.testing.assert_array_equal(back.predict_proba(frame), p)
    assert back.n_evals_ == 1 and isinstance(back.encoder_, FeatureEncoder)


def test_nan_allowed_but_not_sparse():
    X = np.array([[np.nan, 1.0], [2.0, 3.0]])
    ToyTree().fit(X, [0, 1])
    with pytest.raises(TypeError, match="sparse"):
        ToyTree().fit(sp.csr_matrix(np.eye(2)), [0, 1])
    with pytest.raises(ValueError, match="infinity"):
        ToyTree().fit(np.array([[np.inf], [1.0]]), [0, 1])


def test_feature_name_checks():
    df = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [0.0, 1, 0, 1]})
    model = ToyTree().fit(df, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="same order"):
        model.predict(df[["b", "a"]])
    with pytest.raises(ValueError, match="unseen at fit time"):
        model.predict(df.rename(columns={"a": "z"}))


def test_not_fitted_and_file_errors(tmp_path):
    with pytest.raises(NotFittedError):
        ToyTree().predict(np.ones((2, 2)))
    with pytest.raises(NotFittedError):
        ToyTree().save(tmp_path / "x.npz")
    with pytest.raises(ModelFileError):
        ToyTree.load(io.BytesIO(b"not a model"))
    ToyTree().fit(np.ones((2, 1)), [0, 1]).save(tmp_path / "t.npz")
    from recforge.rank import LogisticRegression

    with pytest.raises(ModelFileError, match="ToyTree"):
        LogisticRegression.load(tmp_path / "t.npz")


def test_check_X_keeps_dtype_and_never_modifies():
    X32 = np.ones((3, 2), np.float32)
    assert check_X(X32) is X32
    assert check_X(np.ones((3, 2), np.int64)).dtype == np.float64
    S = sp.coo_matrix(np.eye(3))
    out = check_X(S)
    assert out.format == "csr" and S.format == "coo"
    with pytest.raises(ValueError, match="0 sample"):
        check_X(np.ones((0, 3)))
    with pytest.raises(ValueError, match="0 feature"):
        check_X(np.ones((3, 0)))
    with pytest.raises(ValueError, match="Complex"):
        check_X(np.ones((2, 2), complex))
