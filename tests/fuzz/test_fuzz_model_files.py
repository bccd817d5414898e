"""Fuzzing model loading: each model's saved file, mutated, loaded and used in the crash-isolating
worker.

Mutations: an array cast to another dtype, given NaN/inf/huge/negative values, shortened, emptied,
made 0-d or removed; the JSON record replaced or edited; the file's bytes truncated or flipped.
Outcome: ``ModelFileError`` (or another clear error) at load or use, or a model whose answers
pass the checks; never a crash, a hang or garbage.
"""

import io
import json
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from recforge.data import Interactions
from recforge.features import FeatureEncoder
from recforge.rank import DNN, GBDTClassifier, LogisticRegression, WideDeep
from recforge.recall import LFM, ContentBased, Item2Vec, ItemCF, PersonalRank, Popularity, UserCF
from tests.fuzz._harness import assert_handled

META = "__meta__"


def _interactions():
    rng = np.random.default_rng(0)
    dense = (rng.random((12, 9)) < 0.4) * rng.integers(1, 6, (12, 9)).astype(np.float32)
    dense[np.arange(9), np.arange(9)] = 3.0  # every item seen
    return Interactions(sp.csr_matrix(dense))


def _tabular():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    return X, (X[:, 0] + rng.normal(size=40) > 0).astype(int)


def _fit_recall(cls, **params):
    def make():
        data = _interactions()
        model = cls(**params)
        if cls is ContentBased:
            return model.fit(data, item_features=(data.item_map.ids, np.eye(data.n_items, 3)))
        return model.fit(data)

    return make


def _fit_ranker(cls, **params):
    def make():
        X, y = _tabular()
        return cls(**params).fit(X, y)

    return make


MODELS = {
    "Popularity": _fit_recall(Popularity),
    "ItemCF": _fit_recall(ItemCF, n_neighbors=3),
    "UserCF": _fit_recall(UserCF, n_neighbors=3),
    "PersonalRank": _fit_recall(PersonalRank),
    "LFM": _fit_recall(LFM, n_factors=3, epochs=2, n_threads=1, random_state=0),
    "Item2Vec": _fit_recall(Item2Vec, vector_size=3, epochs=2, n_threads=1, random_state=0),
    "ContentBased": _fit_recall(ContentBased, strategy="similarity"),
    "LogisticRegression": _fit_ranker(LogisticRegression),
    "GBDTClassifier": _fit_ranker(GBDTClassifier, n_estimators=3, max_depth=2, n_threads=1),
    "DNN": _fit_ranker(
        DNN, hidden_units=(4,), epochs=1, encoder=FeatureEncoder(), n_threads=1, random_state=0
    ),
    "WideDeep": _fit_ranker(WideDeep, hidden_units=(4,), epochs=1, n_threads=1, random_state=0),
}

_SAVED = {}


def _saved(name):
    """``(file bytes, arrays, record)`` of a freshly fitted model (fitted once per session)."""
    if name not in _SAVED:
        buffer = io.BytesIO()
        MODELS[name]().save(buffer)
        payload = buffer.getvalue()
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        record = json.loads(arrays.pop(META).tobytes().decode())
        _SAVED[name] = (payload, arrays, record)
    return _SAVED[name]


def _write(arrays, record):
    buffer = io.BytesIO()
    payload = dict(arrays)
    payload[META] = np.frombuffer(json.dumps(record).encode(), np.uint8)
    np.savez_compressed(buffer, **payload)
    return buffer.getvalue()


VALUES = [np.nan, np.inf, -np.inf, -1, 0, 10**9, 2**40, -(2**40), 1e39]
DTYPES = [
    "int8",
    "uint8",
    "int32",
    "int64",
    "uint64",
    "float16",
    "float32",
    "float64",
    "bool",
    "U3",
]


@st.composite
def mutations(draw, name):
    payload, arrays, record = _saved(name)
    arrays = {k: v.copy() for k, v in arrays.items()}
    record = json.loads(json.dumps(record))
    kind = draw(st.sampled_from(["dtype", "value", "shape", "drop", "record", "bytes"]))
    target = draw(st.sampled_from(sorted(arrays)))
    arr = arrays[target]
    if kind == "dtype":
        with np.errstate(all="ignore"):
            arrays[target] = arr.astype(draw(st.sampled_from(DTYPES)))
    elif kind == "value" and arr.size:
        flat = (
            arr.astype(np.float64)
            if arr.dtype.kind in "biu" and draw(st.booleans())
            else arr.copy()
        )
        value = draw(st.sampled_from(VALUES))
        position = draw(st.sampled_from([0, -1, arr.size // 2]))
        try:
            with np.errstate(all="ignore"):
                flat.reshape(-1)[position] = value
        except (ValueError, OverflowError, TypeError):
            pass
        arrays[target] = flat
    elif kind == "shape":
        how = draw(st.sampled_from(["short", "empty", "0d", "2d", "long"]))
        arrays[target] = {
            "short": arr.reshape(-1)[:-1],
            "empty": arr.reshape(-1)[:0],
            "0d": arr.reshape(-1)[:1].reshape(()) if arr.size else np.array(0),
            "2d": arr.reshape(1, -1),
            "long": np.concatenate([arr.reshape(-1)] * 2),
        }[how]
    elif kind == "drop":
        del arrays[target]
    elif kind == "record":
        edit = draw(
            st.sampled_from(
                ["list", "string", "null", "drop params", "bad param", "class", "version"]
            )
        )
        if edit == "list":
            record = [record]
        elif edit == "string":
            record = "recforge"
        elif edit == "null":
            record = None
        elif edit == "drop params":
            record.pop("params", None)
        elif edit == "bad param" and record.get("params"):
            key = draw(st.sampled_from(sorted(record["params"])))
            record["params"][key] = draw(st.sampled_from([-1, 0, 10**12, "x", None, [1], 1e308]))
        elif edit == "class":
            record["class"] = "Popularity" if name != "Popularity" else "ItemCF"
        elif edit == "version":
            record["format_version"] = draw(st.sampled_from([0, 2, "1", 1.0, True]))
    if kind == "bytes":
        data = bytearray(payload)
        if draw(st.booleans()):
            return bytes(data[: draw(st.integers(0, len(data) - 1))])
        position = draw(st.integers(0, len(data) - 1))
        data[position] ^= draw(st.integers(1, 255))
        return bytes(data)
    return _write(arrays, record)


def _use_task(name, path, tmp_path):
    cls_name = name
    if name in (
        "Popularity",
        "ItemCF",
        "UserCF",
        "PersonalRank",
        "LFM",
        "Item2Vec",
        "ContentBased",
    ):
        return {
            "task": "load_use",
            "class": cls_name,
            "path": str(path),
            "users": [0, 5, 11],
            "items": [0, 4, 8],
        }
    X, _ = _tabular()
    x_path = tmp_path / "X.npz"
    np.savez(x_path, X=X[:7])
    return {"task": "load_use", "class": cls_name, "path": str(path), "X": str(x_path)}


@pytest.mark.parametrize("name", list(MODELS))
def test_unmutated_model_file_loads_and_answers(name, worker, tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(_saved(name)[0])
    answer = worker.run(_use_task(name, path, tmp_path))
    assert answer["status"] == "ok", answer


@pytest.mark.parametrize("name", list(MODELS))
@given(data=st.data())
def test_mutated_model_file(name, data, worker, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("model")
    payload = data.draw(mutations(name))
    path = tmp_path / "model.npz"
    path.write_bytes(payload)
    assert_handled(
        worker.run(_use_task(name, path, tmp_path)), f"{name} file (mutated: {_describe(payload)})"
    )


def _describe(payload: bytes) -> str:
    try:
        with (
            zipfile.ZipFile(io.BytesIO(payload)),
            np.load(io.BytesIO(payload), allow_pickle=False) as npz,
        ):
            parts = []
            for k in npz.files:
                a = npz[k]
                parts.append(
                    f"{k}:{a.dtype}{list(a.shape)}"
                    + (f"={a.ravel()[:4].tolist()}" if a.size <= 64 else "")
                )
            return "; ".join(parts)[:2500]
    except Exception as exc:
        return f"{len(payload)} bytes, unreadable archive ({type(exc).__name__})"


# ---- CSR inputs that reach a kernel: raw, possibly inconsistent arrays ---------------------
@st.composite
def raw_csr(draw):
    n_rows, n_cols = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    m = sp.random(n_rows, n_cols, density=0.5, format="csr", random_state=draw(st.integers(0, 999)))
    indptr, indices, data = m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data
    edit = draw(
        st.sampled_from(
            [
                "none",
                "indptr past data",
                "decreasing",
                "negative last",
                "index out of range",
                "negative index",
                "nan data",
                "int8 indptr",
            ]
        )
    )
    if edit == "indptr past data":
        indptr[draw(st.integers(1, n_rows))] = draw(st.sampled_from([10**6, 2**40]))
    elif edit == "decreasing" and n_rows > 1:
        indptr[1], indptr[2] = indptr[2] + 1, max(indptr[1] - 1, 0)
    elif edit == "negative last":
        indptr[-1] = -74
    elif edit == "index out of range" and len(indices):
        indices[0] = n_cols + draw(st.sampled_from([0, 10**6]))
    elif edit == "negative index" and len(indices):
        indices[0] = -1
    elif edit == "nan data" and len(data):
        data[0] = np.nan
    elif edit == "int8 indptr":
        indptr = indptr.astype(np.int8)
    return edit, indptr, indices, data, (n_rows, n_cols)


@pytest.mark.parametrize("name", ["LogisticRegression", "GBDTClassifier", "WideDeep"])
@given(csr=raw_csr())
def test_ranker_fit_on_raw_csr(name, csr, worker, tmp_path_factory):
    edit, indptr, indices, data, shape = csr
    path = tmp_path_factory.mktemp("csr") / "X.npz"
    np.savez(
        path,
        indptr=indptr,
        indices=indices,
        data=data,
        shape=np.array(shape),
        y=np.arange(shape[0]) % 2,
    )
    params = (
        {"n_estimators": 2, "n_threads": 1}
        if name == "GBDTClassifier"
        else ({"epochs": 1, "n_threads": 1, "random_state": 0} if name == "WideDeep" else {})
    )
    answer = worker.run({"task": "fit_csr", "class": name, "X": str(path), "params": params})
    assert_handled(
        answer, f"{name}.fit on a CSR ({edit}): indptr={indptr.tolist()} indices={indices.tolist()}"
    )
