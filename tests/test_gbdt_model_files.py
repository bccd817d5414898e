"""GBDT bad input and tampered model files (issue 16, items 10, 11 and 16).

Values beyond float32's range and divergence raise at fit; every array a GBDT reads back from a
file is checked at load (dtype, shape, finiteness, tree structure, feature and bin indices), so a
tampered file gives ``ModelFileError`` instead of NaN predictions or a crash in the C++ kernel. The
crash-shaped tamperings run in a subprocess, so that a regression fails the test instead of killing
the run.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import recforge
from recforge.exceptions import ModelFileError
from recforge.io import load_arrays, save_arrays
from recforge.rank import GBDTLR, GBDTClassifier, GBDTRegressor


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int), 3 * X[:, 0] + X[:, 1]


# ---- item 10: finite float64 values beyond float32, divergence ------------------------------------
@pytest.mark.parametrize("cls", [GBDTClassifier, GBDTRegressor])
def test_weights_beyond_float32_raise(cls):
    X, yc, yr = _data()
    y = yc if cls is GBDTClassifier else yr
    with pytest.raises(ValueError, match="sample_weight"):
        cls(n_estimators=3, n_threads=1).fit(X, y, sample_weight=np.full(len(X), 1e300))


def test_regression_target_beyond_float32_raises():
    X, _, _yr = _data()
    with pytest.raises(ValueError, match="y holds values beyond float32"):
        GBDTRegressor(n_estimators=3, n_threads=1).fit(X, np.full(len(X), 1e39))


@pytest.mark.parametrize("cls", [GBDTClassifier, GBDTRegressor])
def test_X_beyond_float32_raises(cls):
    X, yc, yr = _data()
    X[3, 1] = 1e39
    with pytest.raises(ValueError, match=r"X .*beyond float32"):
        cls(n_estimators=3, n_threads=1).fit(X, yc if cls is GBDTClassifier else yr)


def test_divergence_raises_instead_of_a_nan_model():
    X, _, yr = _data()
    with pytest.raises(ValueError, match=r"GBDTRegressor diverged.*learning_rate"):
        GBDTRegressor(learning_rate=1e10, n_estimators=20, n_threads=1).fit(X, yr)
    model = GBDTRegressor(learning_rate=1.0, n_estimators=20, n_threads=1).fit(
        X, yr
    )  # large but fine
    assert np.all(np.isfinite(model.predict(X)))


# ---- items 11 and 16: tampered files --------------------------------------------------------------
def _saved(tmp_path, model, X, y, name="m.npz"):
    path = tmp_path / name
    model.fit(X, y).save(path)
    return path


def _tamper(path, change):
    params, arrays, record = load_arrays(path)
    arrays = dict(arrays)
    change(arrays, record)
    save_arrays(path, model_class=_class_of(path), params=params, arrays=arrays, meta=record)


def _class_of(path):
    with np.load(path, allow_pickle=False) as archive:
        return json.loads(archive["__meta__"].tobytes().decode())["class"]


def _set(name, value):
    def change(arrays, record):
        arrays[name] = value(arrays[name]) if callable(value) else value

    return change


def _set_meta(key, value):
    def change(arrays, record):
        record["ranker"][key] = value

    return change


def _fitted(cls):
    X, yc, yr = _data()
    return cls(n_estimators=4, max_depth=3, n_threads=1), X, (yc if cls is GBDTClassifier else yr)


def _nan_leaf(v):
    v = v.copy()
    v[np.flatnonzero(v != 0)[0]] = np.nan
    return v


TAMPERINGS = {
    # item 11: non-finite parameters
    "leaf value NaN": _set("forest_value", _nan_leaf),
    "leaf value inf": _set("forest_value", lambda v: np.where(v != 0, np.inf, v)),
    "base margin inf": _set_meta("base_margin", float("inf")),
    "base margin NaN": _set_meta("base_margin", float("nan")),
    # item 16: arrays of the wrong shape or dtype
    "node feature 0-d": _set("forest_feature", np.array(3, np.int32)),
    "node left 0-d": _set("forest_left", np.array(1, np.int32)),
    "node values 2-d": _set("forest_value", lambda v: v[:, None]),
    "node threshold float64 strings": _set("forest_threshold", lambda v: v.astype(str)),
    "roots shortened to 0": _set("forest_roots", np.zeros(0, np.int64)),
    "roots decreasing": _set("forest_roots", lambda r: r[::-1].copy()),
    "schema_has_labels shortened": _set("schema_has_labels", lambda h: h[:-1]),
    "schema_is_categorical 0-d": _set("schema_is_categorical", np.array(0, np.uint8)),
    "bin offsets shortened": _set("bin_offsets", lambda o: o[:-1]),
    "bin edges NaN": _set(
        "bin_edges", lambda e: np.where(np.arange(len(e)) == 0, np.nan, e).astype(np.float32)
    ),
    "bin edges not increasing": _set("bin_edges", lambda e: e[::-1].copy()),
    "best_iteration a string": _set_meta("best_iteration", "0"),
    "n_trees wrong": _set_meta("n_trees", 99),
    # crash-shaped: indices the C++ kernel would follow
    "child index past the end": _set(
        "forest_left", lambda a: np.where(a >= 0, a + 10**6, a).astype(np.int32)
    ),
    "child index backwards (a cycle)": _set(
        "forest_left", lambda a: np.where(a > 0, 0, a).astype(np.int32)
    ),
    "child in the next tree": _set(
        "forest_right", lambda a: np.where(a > 0, a + 7, a).astype(np.int32)
    ),
    "feature index past n_features": _set(
        "forest_feature", lambda a: np.where(a >= 0, 10**6, a).astype(np.int32)
    ),
    "negative feature of a split": _set(
        "forest_feature", lambda a: np.where(a >= 0, -5, a).astype(np.int32)
    ),
    "threshold bin past the bins": _set(
        "forest_threshold_bin", lambda a: (a + 300).astype(np.int32)
    ),
    "threshold off its bin edge": _set(
        "forest_threshold", lambda a: (a + 0.125).astype(np.float32)
    ),
    "categorical flag flipped": _set("forest_categorical", lambda a: (1 - a).astype(np.uint8)),
}


_CRASH_SHAPED = {
    "child index past the end",
    "child index backwards (a cycle)",
    "child in the next tree",
    "feature index past n_features",
    "negative feature of a split",
    "threshold bin past the bins",
}


@pytest.mark.parametrize("cls", [GBDTClassifier, GBDTRegressor])
@pytest.mark.parametrize("case", sorted(set(TAMPERINGS) - _CRASH_SHAPED))
def test_tampered_file_is_refused_at_load(tmp_path, cls, case):
    model, X, y = _fitted(cls)
    path = _saved(tmp_path, model, X, y)
    _tamper(path, TAMPERINGS[case])
    with pytest.raises(ModelFileError, match=r"m.npz"):
        cls.load(path)


@pytest.mark.parametrize("cls", [GBDTClassifier, GBDTRegressor])
def test_crash_shaped_tamperings_are_refused_in_a_subprocess(tmp_path, cls):
    model, X, y = _fitted(cls)
    paths = {}
    for k, case in enumerate(sorted(_CRASH_SHAPED)):
        paths[case] = _saved(tmp_path, model, X, y, name=f"m{k}.npz")
        _tamper(paths[case], TAMPERINGS[case])
    np.save(tmp_path / "X.npy", X.astype(np.float32))
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from recforge.exceptions import ModelFileError
        from recforge.rank import {cls.__name__} as cls
        X = np.load(sys.argv[1])
        out = {{}}
        for case, path in json.loads(sys.argv[2]).items():
            try:
                model = cls.load(path)
            except ModelFileError:
                out[case] = "refused"
                continue
            model.predict(X)
            out[case] = "accepted"
        print(json.dumps(out))
    """)
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(recforge.__file__))}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(tmp_path / "X.npy"),
            json.dumps({c: str(p) for c, p in paths.items()}),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, f"the interpreter died ({proc.returncode}): {proc.stderr[-2000:]}"
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {c: "refused" for c in _CRASH_SHAPED}


@pytest.mark.parametrize("classes", [np.array([1]), np.array([3, 3]), np.array(1), None])
def test_classifier_needs_two_class_labels(tmp_path, classes):
    model, X, y = _fitted(GBDTClassifier)
    path = _saved(tmp_path, model, X, y)

    def change(arrays, record):
        if classes is None:
            del arrays["_classes"]
        else:
            arrays["_classes"] = classes

    _tamper(path, change)
    with pytest.raises(ModelFileError, match=r"m.npz"):
        GBDTClassifier.load(path)


def test_gbdt_lr_refuses_a_tampered_tree_part(tmp_path):
    X, y, _ = _data()
    path = tmp_path / "m.npz"
    GBDTLR(n_estimators=3, max_depth=2, n_threads=1).fit(X, y).save(path)
    params, arrays, record = load_arrays(path)
    arrays = dict(arrays)
    part = tmp_path / "part.npz"
    part.write_bytes(arrays["gbdt"].tobytes())
    _tamper(part, TAMPERINGS["leaf value NaN"])
    arrays["gbdt"] = np.frombuffer(part.read_bytes(), np.uint8)
    save_arrays(path, model_class="GBDTLR", params=params, arrays=arrays, meta=record)
    with pytest.raises(ModelFileError, match=r"m.npz.*'gbdt' part.*forest_value"):
        GBDTLR.load(path)


def test_untampered_files_still_load(tmp_path):
    df = pd.DataFrame(
        {"a": np.arange(300.0) % 17, "c": np.array(["x", "y", "z"])[np.arange(300) % 3]}
    )
    y = ((df.a > 8) ^ (df.c == "y")).astype(int)
    for cls, target in ((GBDTClassifier, y), (GBDTRegressor, df.a * 2)):
        model = cls(n_estimators=5, max_depth=3, max_leaves=6, n_threads=1).fit(df, target)
        path = tmp_path / f"{cls.__name__}.npz"
        model.save(path)
        np.testing.assert_array_equal(cls.load(path).predict(df), model.predict(df))


@pytest.mark.parametrize("cls", [GBDTClassifier, GBDTRegressor])
def test_frame_without_columns_raises(cls):
    """Rows but no columns: a clear error (it raised IndexError inside the grower)."""
    y = np.array([0, 1, 0, 1, 1]) if cls is GBDTClassifier else np.arange(5.0)
    with pytest.raises(ValueError, match="0 feature"):
        cls(n_estimators=2).fit(pd.DataFrame(index=range(5)), y)
