"""What every ranker shares: input validation, the binary target, sample/class weights, the
optional embedded :class:`~recforge.features.FeatureEncoder`, the predict methods, scikit-learn
tags and save/load.

A ranker subclasses :class:`Ranker` and implements

* ``_fit(X, y, sample_weight, eval_set, **fit_params)`` — ``X`` is what
  :meth:`Ranker._prepare_X` returned (validated dense array or CSR matrix, or the encoder's
  output), ``y`` float64 0/1, ``sample_weight`` float64 (class weights already folded in),
  ``eval_set`` a list of ``(X, y, sample_weight)`` prepared the same way, ``fit_params`` the
  subclass's own fit-time arguments;
* ``_decision(X)`` — float64 margins (log-odds) of shape (n,);
* ``_get_state()`` / ``_set_state(arrays, meta)`` — fitted arrays (and a JSON-able dict) for save/load.

Class attributes tune the input handling: ``_encoder_output`` (``"csr"`` for linear models:
``encoder.transform``; ``"dense"`` for trees: ``encoder.transform_dense``), ``_accept_sparse``,
``_allow_nan`` (trees route missing values, linear models cannot), ``_auto_encoder`` (a
DataFrame with non-numeric columns and no ``encoder`` gets a default
:class:`~recforge.features.FeatureEncoder`).

The functions :func:`check_X`, :func:`check_binary_target`, :func:`check_sample_weight` and
:func:`class_weight_factors` are usable on their own.
"""

from __future__ import annotations

import functools
import inspect
import sys
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._params import ParamsMixin
from .._threads import resolve_n_threads
from .._validation import FLOAT32_MAX, as_numpy, check_int, check_sparse, check_unique_columns
from ..exceptions import NotFittedError
from ..io import ModelArrays, load_arrays, model_file_errors, save_arrays

_ENCODER_PREFIX = "encoder."


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------
def check_X(X, name: str = "X", *, accept_sparse: bool = True, allow_nan: bool = False):
    """Validate a feature matrix.

    Returns a C-contiguous float32/float64 ndarray (float32 and float64 input keep their dtype,
    float16 becomes float32, everything else float64) or a CSR matrix with float32/float64 data.
    A sparse input's structure is checked (:func:`recforge._validation.check_sparse`) before
    anything reads it. Values must lie within float32's range (the rankers compute in float32, or
    cast to it). Never modifies ``X``; copies only when a conversion is needed.
    """
    if sp.issparse(X):
        if not accept_sparse:
            raise TypeError(f"{name} is a sparse matrix; this model needs a dense array")
        X = check_sparse(X, name)
        X = X.tocsr() if X.format != "csr" else X
        if X.data.dtype not in (np.float32, np.float64):
            if X.data.dtype.kind == "c":
                raise ValueError(f"Complex data not supported in {name}")
            if X.data.dtype.kind not in "biuf":
                raise TypeError(f"{name} must be numeric, got dtype {X.data.dtype}")
            X = X.astype(_float_dtype_for(X.data.dtype))
        check_min_shape(X.shape, name)
        _check_values(X.data, name, allow_nan)
        return X
    if isinstance(X, pd.DataFrame):
        check_unique_columns(X, name)
        kinds = {c: X[c].dtype.kind for c in X.columns}
        bad = [c for c, k in kinds.items() if k not in "biuf"]
        if bad:
            raise TypeError(
                f"{name} has non-numeric columns {bad[:5]}; encode them first, e.g. with "
                "encoder=FeatureEncoder() or recforge.features.FeatureEncoder"
            )
        X = X.to_numpy(dtype=np.float64, na_value=np.nan)
    arr = np.asarray(X)
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported in {name}")
    check_2d(arr, name)
    if arr.dtype not in (np.float32, np.float64):
        if arr.dtype.kind == "O":
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError) as exc:  # numpy's class: callers matching it still do
                raise type(exc)(f"{name} must hold numbers only: {exc}") from None
        elif arr.dtype.kind in "biuf":
            arr = arr.astype(_float_dtype_for(arr.dtype))
        else:
            raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr)
    check_min_shape(arr.shape, name)
    _check_values(arr, name, allow_nan)
    return arr


def check_2d(arr: np.ndarray, name: str = "X") -> None:
    """ValueError (scikit-learn's wording) unless ``arr`` is 2-D (n_rows, n_features)."""
    if arr.ndim != 2:
        raise ValueError(
            f"Expected 2D array for {name}, got shape {arr.shape} instead. Reshape your data "
            "with array.reshape(-1, 1) for a single feature or array.reshape(1, -1) for a single row"
        )


def check_training_controls(estimator, flag: str) -> None:
    """The hyper-parameters every gradient trainer (LR, DNN, Wide&Deep) shares, checked in one place:
    ``early_stopping_rounds`` (None or an int >= 1), ``callback`` (None or callable), the bool
    attribute named ``flag`` (e.g. ``"fit_intercept"``) and ``n_threads``; raise naming the wrong one.
    """
    if estimator.early_stopping_rounds is not None:
        check_int(estimator.early_stopping_rounds, "early_stopping_rounds", min_value=1)
    if estimator.callback is not None and not callable(estimator.callback):
        raise TypeError("callback must be callable or None")
    value = getattr(estimator, flag)
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{flag} must be a bool, got {value!r}")
    resolve_n_threads(estimator.n_threads)


def _float_dtype_for(dtype) -> type:
    """float32 for float16 (exact upcast), float64 for every other non-float32/64 numeric dtype."""
    return np.float32 if dtype == np.float16 else np.float64


def _check_values(arr, name: str, allow_nan: bool) -> None:
    """No infinity, NaN only when ``allow_nan``, every value within float32's range: one min and one
    max pass (NaN-aware ones only when NaN is allowed and present)."""
    if arr.size == 0 or arr.dtype.kind != "f":
        return
    lo, hi = arr.min(), arr.max()
    if np.isnan(lo):
        if not allow_nan:
            raise ValueError(f"{name} contains NaN or infinity")
        if np.isnan(arr).all():
            return
        lo, hi = np.nanmin(arr), np.nanmax(arr)
    if np.isinf(lo) or np.isinf(hi):
        raise ValueError(f"{name} contains {'NaN or ' if not allow_nan else ''}infinity")
    largest = max(-float(lo), float(hi))
    if largest > FLOAT32_MAX:
        raise ValueError(
            f"{name} holds values beyond float32's range (|value| up to {largest:.3g} "
            f"> {FLOAT32_MAX:.3g}); the models compute in float32: rescale these "
            "features"
        )


def check_min_shape(shape: tuple[int, int], name: str = "X", *, rows: bool = True) -> None:
    """ValueError (scikit-learn's wording) for a matrix without rows (unless ``rows=False``) or
    without columns."""
    if rows and shape[0] < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={shape}) while a minimum of 1 is required "
            f"({name})"
        )
    if shape[1] < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={shape}) while a minimum of 1 is required "
            f"({name})"
        )


def check_binary_target(y, n_rows: int | None = None, name: str = "y", classes=None):
    """Return ``(classes, y01)``: the two sorted class labels and y as float64 0/1.

    A column vector is accepted with a ``DataConversionWarning`` (scikit-learn's, when available).
    Continuous targets raise ``ValueError("Unknown label type: continuous ...")``; one class, or more
    than two, raise ``ValueError`` naming the classes.
    """
    arr = target_vector(y, name, stacklevel=4)
    if n_rows is not None and arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} rows but X has {n_rows}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinity")
        if not np.all(arr == np.round(arr)):
            raise ValueError(
                f"Unknown label type: continuous. {name} must hold class labels (binary)"
            )
    if arr.dtype.kind == "O":
        try:
            arr = (
                arr.astype(str)
                if any(isinstance(v, str) for v in arr[:100])
                else arr.astype(np.float64)
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"Unknown label type: {name} holds objects that are not labels ({exc})"
            ) from None
    if arr.dtype.kind not in "biufUS":
        raise ValueError(f"Unknown label type: {name} has dtype {arr.dtype}")
    if classes is None:
        classes = np.unique(arr)
        if classes.size < 2:
            raise ValueError(
                f"{name} has 1 class {classes.tolist()}; a binary ranker needs 2 classes"
            )
        if classes.size > 2:
            raise ValueError(
                f"Only binary classification is supported. {name} has {classes.size} classes "
                f"{classes[:5].tolist()}; rankers predict click / no click"
            )
    else:
        unknown = np.setdiff1d(np.unique(arr), classes)
        if unknown.size:
            raise ValueError(
                f"{name} holds labels {unknown[:5].tolist()} not in classes {list(classes)}"
            )
    y01 = (arr == classes[1]).astype(np.float64)
    return classes, y01


def target_vector(y, name: str = "y", stacklevel: int = 2) -> np.ndarray:
    """``y`` as a 1-D array (n_samples,); a column vector (n_samples, 1) is raveled with a
    ``DataConversionWarning`` (scikit-learn's, when available) attributed ``stacklevel`` frames up
    from here. Any other shape raises ``ValueError`` naming ``name``."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change the shape "
            "of y to (n_samples,), for example using ravel().",
            _data_conversion_warning(),
            stacklevel=stacklevel,
        )
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _data_conversion_warning():
    try:
        from sklearn.exceptions import DataConversionWarning
    except ImportError:  # pragma: no cover - scikit-learn is optional
        return UserWarning
    return DataConversionWarning


def check_sample_weight(sample_weight, n_rows: int, name: str = "sample_weight") -> np.ndarray:
    """float64 copy of the weights (ones when None); a scalar applies to every row and is checked
    the same way. Negative, NaN/inf, all-zero or weights beyond float32's range raise ValueError."""
    if sample_weight is None:
        return np.ones(n_rows, dtype=np.float64)
    sw = as_numpy(sample_weight)
    if sw.ndim == 0:
        sw = np.broadcast_to(sw, (n_rows,))
    if sw.ndim != 1 or sw.shape[0] != n_rows:
        raise ValueError(f"{name} must have shape ({n_rows},), got {sw.shape}")
    if sw.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {sw.dtype}")
    sw = sw.astype(np.float64)
    if not np.all(np.isfinite(sw)):
        raise ValueError(f"{name} contains NaN or infinity")
    if np.any(sw < 0):
        raise ValueError(f"{name} must be non-negative")
    if not np.any(sw > 0):
        raise ValueError(f"{name} sums to zero")
    if sw.size and sw.max() > FLOAT32_MAX:
        raise ValueError(
            f"{name} holds values beyond float32's range (up to {sw.max():.3g}); rescale them"
        )
    return sw


def class_weight_factors(
    class_weight, classes, y01: np.ndarray, sample_weight: np.ndarray
) -> np.ndarray:
    """Per-row factors of ``class_weight``: None, ``"balanced"`` (n / (2 * count of the class), counted
    with the sample weights) or a dict label -> weight."""
    if class_weight is None:
        return np.ones_like(y01)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(
                f"class_weight must be None, 'balanced' or a dict, got {class_weight!r}"
            )
        counts = np.array([sample_weight[y01 == 0].sum(), sample_weight[y01 == 1].sum()])
        weights = sample_weight.sum() / (2.0 * np.maximum(counts, 1e-300))
    elif isinstance(class_weight, dict):
        unknown = set(class_weight) - set(classes.tolist())
        if unknown:
            raise ValueError(
                f"class_weight has labels {sorted(map(str, unknown))} not in the classes "
                f"{classes.tolist()}"
            )
        weights = np.array([float(class_weight.get(c, 1.0)) for c in classes.tolist()])
        if np.any(weights < 0) or not np.all(np.isfinite(weights)):
            raise ValueError("class_weight values must be finite and non-negative")
    else:
        raise TypeError(
            f"class_weight must be None, 'balanced' or a dict, got {type(class_weight).__name__}"
        )
    return np.where(y01 == 1, weights[1], weights[0])


def _has_non_numeric_columns(X) -> bool:
    """True for a DataFrame with a column that is not bool/int/float (strings, categories,
    objects)."""
    return isinstance(X, pd.DataFrame) and any(dtype.kind not in "biuf" for dtype in X.dtypes)


def feature_names_of(X):
    """Column names of a DataFrame whose columns are all strings, as an object array; else None."""
    if (
        isinstance(X, pd.DataFrame)
        and len(X.columns)
        and all(isinstance(c, str) for c in X.columns)
    ):
        return np.asarray(X.columns, dtype=object)
    return None


def _feature_name_error(fitted, given) -> ValueError:
    message = "The feature names should match those that were passed during fit.\n"
    fitted_set, given_set = set(fitted), set(given)
    unexpected = sorted(given_set - fitted_set)
    missing = sorted(fitted_set - given_set)

    def listing(names):
        out = ""
        for i, n in enumerate(names):
            if i >= 5:
                return out + "- ...\n"
            out += f"- {n}\n"
        return out

    if unexpected:
        message += "Feature names unseen at fit time:\n" + listing(unexpected)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + listing(missing)
    if not unexpected and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    return ValueError(message)


# ----------------------------------------------------------------------------------------------
# the base class
# ----------------------------------------------------------------------------------------------
class Ranker(ParamsMixin):
    """Base class of binary rankers (click-probability models). See the module docstring."""

    _encoder_output = "csr"
    _accept_sparse = True
    _allow_nan = False
    #: fit a default FeatureEncoder (``encoder_``) when ``encoder`` is None and X is a DataFrame
    #: with non-numeric columns
    _auto_encoder = False

    # -- subclass hooks ---------------------------------------------------------------------------
    def _fit(self, X, y, sample_weight, eval_set):  # pragma: no cover - abstract
        raise NotImplementedError

    def _decision(self, X) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _get_state(self) -> tuple[dict, dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_state(self, arrays: dict, meta: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _validate_params(self) -> None:
        """Check hyper-parameters (called at the start of ``fit``); raise ValueError/TypeError naming them."""

    # -- input handling ---------------------------------------------------------------------------
    def _encode(self, X, name: str):
        enc = self.encoder_
        return enc.transform(X) if self._encoder_output == "csr" else enc.transform_dense(X)

    def _check_encoded(self, Xm, name: str):
        """Validate the encoder's output (a subclass whose ``_encode`` returns something other than an
        array or CSR matrix overrides this)."""
        return check_X(Xm, name, accept_sparse=self._accept_sparse, allow_nan=self._allow_nan)

    def _set_feature_names(self, names) -> None:
        """``feature_names_in_`` = the fit input's column names (object (n_features,)), or none."""
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    def _check_feature_names(self, names) -> None:
        """ValueError when both the fit input and this input have column names and they differ."""
        fitted = getattr(self, "feature_names_in_", None)
        if (
            fitted is not None
            and names is not None
            and (len(fitted) != len(names) or np.any(fitted != names))
        ):
            raise _feature_name_error(fitted, names)

    def _prepare_X(self, X, *, reset: bool, name: str = "X"):
        """Validate (and encode) ``X``; on ``reset`` learn ``n_features_in_``/``feature_names_in_``/``encoder_``."""
        encoder = getattr(self, "encoder", None)
        names = feature_names_of(X)
        if reset:
            if encoder is None and self._auto_encoder and _has_non_numeric_columns(X):
                from ..features import FeatureEncoder

                check_unique_columns(X, name)
                encoder = FeatureEncoder()  # raw columns, as GBDT takes them, encoded inside
            if encoder is not None:
                from ..features import FeatureEncoder
                from ..features._columns import Table

                if not isinstance(encoder, FeatureEncoder):
                    raise TypeError(
                        f"encoder must be a FeatureEncoder or None, got {type(encoder).__name__}"
                    )
                # one table for the fit and the encoding below: each column is read once
                X = Table(X, name)
                self.encoder_ = FeatureEncoder(**encoder.get_params()).fit(X)
            elif hasattr(self, "encoder_"):
                del self.encoder_
            self._set_feature_names(names)
        else:
            self._check_fitted()
            if encoder is None:  # an encoder selects its columns by name itself
                self._check_feature_names(names)
        if getattr(self, "encoder_", None) is not None:
            if reset:
                self.n_features_in_ = len(self.encoder_.columns_)
            Xm = self._check_encoded(self._encode(X, name), name)
        else:
            Xm = check_X(X, name, accept_sparse=self._accept_sparse, allow_nan=self._allow_nan)
            if reset:
                self.n_features_in_ = Xm.shape[1]
            else:
                self._check_n_features(Xm.shape[1], name)
        return Xm

    def _check_n_features(self, n_features: int, name: str) -> None:
        """ValueError (scikit-learn's wording) unless ``n_features`` is ``n_features_in_``."""
        if n_features != self.n_features_in_:
            raise ValueError(
                f"{name} has {n_features} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )

    def _prepare_fit(self, X, y, sample_weight, eval_set):
        """Validate everything ``fit`` receives; returns ``(X, y01, weights, eval_list)``."""
        self._validate_params()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        Xm = self._prepare_X(X, reset=True)
        y01 = self._fit_target(y, Xm.shape[0])
        sw = check_sample_weight(sample_weight, Xm.shape[0])
        if hasattr(self, "classes_") and getattr(self, "class_weight", None) is not None:
            sw = sw * class_weight_factors(self.class_weight, self.classes_, y01, sw)
        evals = []
        if eval_set is not None:
            if (
                isinstance(eval_set, tuple)
                and len(eval_set) in (2, 3)
                and not isinstance(eval_set[0], tuple)
            ):
                eval_set = [eval_set]
            for k, item in enumerate(eval_set):
                if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
                    raise ValueError(
                        "eval_set must be a list of (X, y) or (X, y, sample_weight) tuples"
                    )
                Xe = self._prepare_X(item[0], reset=False, name=f"eval_set[{k}] X")
                ye = self._eval_target(item[1], Xe.shape[0], f"eval_set[{k}] y")
                swe = check_sample_weight(
                    item[2] if len(item) == 3 else None,
                    Xe.shape[0],
                    name=f"eval_set[{k}] sample_weight",
                )
                evals.append((Xe, ye, swe))
        return Xm, y01, sw, evals

    def _fit_target(self, y, n_rows: int) -> np.ndarray:
        """Validate the training target and return it as float64; sets ``classes_`` (binary rankers).
        A regression model overrides this (and ``_eval_target``, ``_fitted_attr``, ``_estimator_kind``)."""
        self.classes_, y01 = check_binary_target(y, n_rows)
        return y01

    def _eval_target(self, y, n_rows: int, name: str) -> np.ndarray:
        """Validate an ``eval_set`` target against the training classes; float64."""
        return check_binary_target(y, n_rows, name=name, classes=self.classes_)[1]

    # -- public API -------------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None, eval_set=None, **fit_params):
        """Fit on ``X`` (n_rows, n_features) and binary labels ``y``; returns ``self``.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features), scipy.sparse matrix, or DataFrame
            With ``encoder`` set: the raw columns (DataFrame or array) the encoder turns into features.
        y : array-like of shape (n_rows,)
            Two classes; ``classes_[1]`` is the positive one.
        sample_weight : array-like of shape (n_rows,), optional
        eval_set : list of (X, y) or (X, y, sample_weight), optional
            Scored after every iteration (``evals_result_``); the first drives early stopping.
        **fit_params
            A subclass's fit-time arguments, passed to ``_fit`` unchanged (never stored on the
            model).
        """
        unknown = sorted(set(fit_params) - set(inspect.signature(self._fit).parameters))
        if unknown:  # before any state is learned
            raise TypeError(
                f"{type(self).__name__}.fit() got unexpected keyword argument(s) {unknown}"
            )
        Xm, y01, sw, evals = self._prepare_fit(X, y, sample_weight, eval_set)
        self._fit(Xm, y01, sw, evals, **fit_params)
        return self

    def decision_function(self, X) -> np.ndarray:
        """Log-odds of the positive class, shape (n_rows,), float64."""
        return self._decision(self._prepare_X(X, reset=False))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_rows, 2), float64: ``[:, 1]`` is P(``classes_[1]``)."""
        z = self.decision_function(X)
        p = np.empty((z.shape[0], 2), dtype=np.float64)
        p[:, 1] = _expit(z)
        p[:, 0] = 1.0 - p[:, 1]
        return p

    def predict(self, X) -> np.ndarray:
        """Predicted labels (``classes_[1]`` where the log-odds are > 0), shape (n_rows,)."""
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(np.intp)]

    #: the attribute whose presence means "fitted" (set by ``fit``/``load``)
    _fitted_attr = "classes_"

    def _check_fitted(self) -> None:
        if not hasattr(self, self._fitted_attr):
            raise _not_fitted_error()(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, self._fitted_attr)

    #: scikit-learn's estimator type: "classifier" (click models), "regressor", or None (a
    #: learning-to-rank model, which scikit-learn has no type for)
    _estimator_kind = "classifier"

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, RegressorTags, Tags, TargetTags

        kind = self._estimator_kind
        return Tags(
            estimator_type=kind,
            target_tags=TargetTags(required=True),
            transformer_tags=None,
            regressor_tags=RegressorTags() if kind == "regressor" else None,
            classifier_tags=ClassifierTags(multi_class=False) if kind == "classifier" else None,
            input_tags=InputTags(sparse=self._accept_sparse, allow_nan=self._allow_nan),
        )

    # -- persistence ------------------------------------------------------------------------------
    def save(self, file) -> None:
        """Write the fitted ranker (and its encoder, if any) to ``file``: ``.npz`` + JSON, never pickle."""
        self._check_fitted()
        arrays, meta = self._get_state()
        arrays = dict(arrays)
        if any(k.startswith((_ENCODER_PREFIX, "_")) for k in arrays):
            raise RuntimeError("state array names must not start with 'encoder.' or '_'")
        if hasattr(self, "classes_"):
            classes = np.asarray(self.classes_)
            if classes.dtype == object:
                classes = classes.astype(str)
            arrays["_classes"] = classes
        record = {"ranker": dict(meta), "n_features_in": int(self.n_features_in_)}
        if getattr(self, "feature_names_in_", None) is not None:
            record["feature_names_in"] = [str(n) for n in self.feature_names_in_]
        params = self.get_params()
        if getattr(self, "encoder_", None) is not None:
            enc_arrays, enc_meta = self.encoder_.get_state(prefix=_ENCODER_PREFIX)
            arrays.update(enc_arrays)
            record["encoder"] = enc_meta
            params = {**params, "encoder": None}  # rebuilt from record["encoder"]
        params = {
            k: _jsonable_or_none(v) for k, v in params.items()
        }  # callbacks, Generators -> None
        save_arrays(
            file, model_class=type(self).__name__, params=params, arrays=arrays, meta=record
        )

    @classmethod
    def load(cls, file):
        """Read a ranker written by :meth:`save`; a corrupt or foreign file raises ``ModelFileError``."""
        params, arrays, record = load_arrays(file, expected_class=cls.__name__)
        with model_file_errors(file, cls.__name__):
            model = cls(**params)
            model._validate_params()
            if "_classes" in arrays:
                classes = arrays.take("_classes", kinds="biufU", shape=(2,), pop=True)
                if classes[0] == classes[1]:
                    raise arrays.error(
                        f"'_classes' must hold two distinct labels, got {classes.tolist()}"
                    )
                model.classes_ = classes
            elif cls._estimator_kind == "classifier":
                raise arrays.error("the file has no class labels ('_classes')")
            n_features = check_int(
                record.get("n_features_in"), "the record's n_features_in", min_value=0
            )
            model.n_features_in_ = n_features
            if "feature_names_in" in record:
                names = record["feature_names_in"]
                if (
                    not isinstance(names, list)
                    or len(names) != n_features
                    or not all(isinstance(n, str) for n in names)
                ):
                    raise arrays.error(f"'feature_names_in' must be a list of {n_features} strings")
                model.feature_names_in_ = np.asarray(names, dtype=object)
            if "encoder" in record:
                from ..features import FeatureEncoder

                enc_arrays = ModelArrays(
                    {k: v for k, v in arrays.items() if k.startswith(_ENCODER_PREFIX)}, arrays.where
                )
                model.encoder_ = FeatureEncoder.from_state(
                    enc_arrays, record["encoder"], prefix=_ENCODER_PREFIX
                )
                if len(model.encoder_.columns_) != n_features:
                    raise arrays.error(
                        f"the encoder has {len(model.encoder_.columns_)} columns, "
                        f"the record's n_features_in is {n_features}"
                    )
                model.encoder = FeatureEncoder(**model.encoder_.get_params())
                arrays = ModelArrays(
                    {k: v for k, v in arrays.items() if not k.startswith(_ENCODER_PREFIX)},
                    arrays.where,
                )
            ranker_meta = record.get("ranker", {})
            if not isinstance(ranker_meta, dict):
                raise arrays.error("the record's 'ranker' entry must be a JSON object")
            model._set_state(arrays, ranker_meta)
        return model


def _jsonable_or_none(value):
    """``value`` if JSON can store it (numpy scalars become Python ones), else None (a callback, a Generator)."""
    import json

    if isinstance(value, np.generic):
        value = value.item()
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


def _not_fitted_error() -> type:
    """recforge's NotFittedError; when scikit-learn is loaded, a subclass that is also scikit-learn's
    NotFittedError, so scikit-learn's tools (``check_is_fitted``, estimator checks) recognise it."""
    sk = sys.modules.get("sklearn.exceptions")
    if sk is None:
        return NotFittedError
    return _combined_not_fitted(sk.NotFittedError)


@functools.cache
def _combined_not_fitted(sk_error: type) -> type:
    return type(
        "NotFittedError", (NotFittedError, sk_error), {"__module__": NotFittedError.__module__}
    )


class available_if:
    """A method that exists only when ``check(self)`` is true (else ``hasattr`` is False), like
    scikit-learn's ``available_if``: e.g. ``partial_fit`` only for online solvers."""

    def __init__(self, check):
        self.check = check

    def __call__(self, fn):
        self.fn = fn
        functools.update_wrapper(self, fn)
        return self

    def __get__(self, obj, owner=None):
        if obj is None:
            return self.fn
        if not self.check(obj):
            raise AttributeError(
                f"{type(obj).__name__} has no attribute {self.fn.__name__!r} with these "
                "hyper-parameters"
            )
        return functools.partial(self.fn, obj)


def _expit(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out
