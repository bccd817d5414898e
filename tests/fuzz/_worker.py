"""The crash-isolating side of the fuzz harness: one JSON task per stdin line, one answer per line.

Tasks (paths are files the parent wrote):

* ``{"task": "load_use", "class": "ItemCF", "path": ..., "users": [...], "items": [...]}`` — load a
  (possibly mutated) recall model file and call recommend / similar_items / recommend_from_history;
* ``{"task": "load_use", "class": "DNN", "path": ..., "X": ...}`` — load a ranker and predict ``X``
  (an ``.npz`` with ``X``);
* ``{"task": "fit_csr", "class": "LogisticRegression", "X": ...}`` — fit a ranker on a CSR matrix
  built from raw (possibly inconsistent) ``indptr``/``indices``/``data`` arrays of an ``.npz``, then
  predict it;
* ``{"task": "recall_k", "class": "ItemCF", "X": ..., "k": ...}`` — fit a recall model on the dense
  matrix ``X`` of an ``.npz`` and ask for ``k`` items (unbounded sizes: here, under a memory limit);
* ``{"task": "encoder", "params": {...}, "X": ...}`` — fit and apply a FeatureEncoder.

The worker runs under an address-space limit (``MEMORY_LIMIT_BYTES``), so an unbounded allocation
is a ``MemoryError`` here instead of a machine-wide out-of-memory kill.

Answer: ``{"status": "ok"}``, ``{"status": "error", "type": ..., "message": ...}`` for a clear
exception,
``{"status": "garbage", "message": ...}`` for a wrong result, ``{"status": "unexpected", ...}`` for
another exception. A crash is seen by the parent as the end of the stream.
"""

import json
import resource
import sys
import traceback
import warnings

import numpy as np
import scipy.sparse as sp

from recforge import rank, recall
from tests.fuzz._harness import CLEAR_ERRORS, Garbage, check, check_recommendation


def _load_use(task):
    cls = getattr(recall, task["class"], None) or getattr(rank, task["class"])
    model = cls.load(task["path"])
    if issubclass(cls, recall.RecallModel):
        catalogue = model.item_map_.ids
        for user in task["users"]:
            ids, scores = model.recommend(user, k=3)
            check_recommendation(ids, scores, 3, None, catalogue)
        ids, scores = model.similar_items(task["items"], k=3)
        check_recommendation(ids, scores, 3, len(task["items"]), catalogue)
        ids, scores = model.recommend_from_history(task["items"], k=3)
        check_recommendation(ids, scores, 3, None, catalogue)
    else:
        with np.load(task["X"], allow_pickle=False) as npz:
            X = npz["X"]
        out = model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)
        out = np.asarray(out)
        check(out.shape[0] == len(X), f"{len(out)} predictions for {len(X)} rows")
        check(np.isfinite(out).all(), "non-finite predictions")
        if hasattr(model, "predict_proba"):
            check(
                out.shape == (len(X), 2) and ((out >= 0) & (out <= 1)).all(),
                "probabilities out of [0, 1]",
            )


def _fit_csr(task):
    with np.load(task["X"], allow_pickle=False) as npz:
        parts = {name: npz[name] for name in npz.files}
    X = sp.csr_matrix(
        (parts["data"], parts["indices"], parts["indptr"]), shape=tuple(parts["shape"])
    )
    model = getattr(rank, task["class"])(**task.get("params", {})).fit(X, parts["y"])
    proba = model.predict_proba(X)
    check(
        proba.shape == (X.shape[0], 2) and np.isfinite(proba).all(),
        "non-finite or misshapen probabilities",
    )


def _recall_k(task):
    with np.load(task["X"], allow_pickle=False) as npz:
        X = npz["X"]
    model = getattr(recall, task["class"])()
    if task["class"] == "ContentBased":
        model.fit(X, item_features=(np.arange(X.shape[1]), np.eye(X.shape[1], 2)))
    else:
        model.fit(X)
    k = task["k"]
    ids, scores = model.recommend(model.user_map_.ids[0], k=k)
    check_recommendation(ids, scores, k, None, model.item_map_.ids)
    ids, scores = model.similar_items(model.item_map_.ids[:1], k=k)
    check_recommendation(ids, scores, k, 1, model.item_map_.ids)


def _encoder(task):
    from recforge.features import FeatureEncoder

    with np.load(task["X"], allow_pickle=False) as npz:
        X = npz["X"]
    encoder = FeatureEncoder(**task["params"]).fit(X)
    out = encoder.transform(X)
    check(
        out.shape[0] == len(X) and np.isfinite(out.data).all(), "misshapen or non-finite encoding"
    )


TASKS = {"load_use": _load_use, "fit_csr": _fit_csr, "recall_k": _recall_k, "encoder": _encoder}
MEMORY_LIMIT_BYTES = 6 * 2**30


def main():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    for line in sys.stdin:
        task = json.loads(line)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                TASKS[task["task"]](task)
            answer = {"status": "ok"}
        except MemoryError as exc:
            answer = {
                "status": "memory",
                "message": f"MemoryError under a {MEMORY_LIMIT_BYTES >> 30} GiB limit: {exc}",
            }
        except Garbage as exc:
            answer = {"status": "garbage", "message": str(exc)}
        except CLEAR_ERRORS as exc:
            answer = {"status": "error", "type": type(exc).__name__, "message": str(exc)[:500]}
        except Exception as exc:
            answer = {
                "status": "unexpected",
                "type": type(exc).__name__,
                "message": str(exc)[:500],
                "traceback": traceback.format_exc()[-2000:],
            }
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
