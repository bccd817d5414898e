"""Ship each scoring task only the users it scores: the model cut into a shared item side and
per-partition user rows.

A model whose per-user arrays are known (:data:`USER_ARRAYS`: LFM's user factors, ItemCF's
interaction weights; every model's ids and training interactions ``user_items``) is split on the
client into

* the **item side** — every other array of the model file (item ids, item factors and biases, the
  item–item similarity), written once as ``.npz`` bytes, broadcast to every worker and read there
  once per worker process (cached by digest, as :mod:`._shipping` caches whole models);
* one **user slice** per partition — the partition's rows of the per-user arrays (CSR rows of
  ``user_items`` and of arrays aligned with its entries), ``.npz`` bytes scattered to one worker.

A task rebuilds the model of its users from the two with the model's own checked loader
(``_from_arrays``, the code behind ``load``): the same arrays, so the same scores as the whole
model. A worker never holds more than the item side, one partition's rows and its output; nothing
is pickled. Models not in :data:`USER_ARRAYS` are shipped whole (:func:`._shipping.ship_model`).
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np

from ._shipping import cached, model_class, worker_model

#: per model class name: (arrays with one row per user, arrays aligned with ``user_items``'s
#: entries) beside ``user_ids`` and ``user_items_*``; every other array is the item side
USER_ARRAYS = {
    "LFM": (("user_factors",), ()),
    "ItemCF": ((), ("user_weights",)),
}
_CSR = ("indptr", "indices", "data")
#: the member of a user slice naming the users a task scores (not a model array)
_POSITIONS = "__positions__"


def splittable(model) -> bool:
    """Whether ``model`` is split by user (its class is in :data:`USER_ARRAYS` exactly: a subclass
    may keep more per-user state)."""
    return type(model).__name__ in USER_ARRAYS and type(model).__module__.startswith(
        "recforge.recall."
    )


def _npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _read_npz(data: bytes) -> dict:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


class ModelSplit:
    """A fitted model cut by user on the client.

    Attributes
    ----------
    class_path : str
        ``module:qualname`` of the model class.
    params_json : str
        ``model.get_params()`` as JSON (as a model file records them).
    item_side : bytes
        ``.npz`` bytes of every array that is not per user.
    digest : str
        SHA-256 of ``item_side`` and ``params_json`` (the workers' cache key).
    """

    def __init__(self, model):
        cls = type(model)
        self.class_path = f"{cls.__module__}:{cls.__qualname__}"
        self.params_json = json.dumps(model.get_params())
        arrays = model._arrays()
        self._rows, self._entries = USER_ARRAYS[cls.__name__]
        self._user = {name: arrays.pop(name) for name in ("user_ids", *self._rows)}
        self._csr = {
            name: tuple(arrays.pop(f"{name}_{part}") for part in _CSR) for name in ("user_items",)
        }
        self._entry_data = {name: arrays.pop(name) for name in self._entries}
        self.item_side = _npz_bytes(arrays)
        self.digest = hashlib.sha256(self.item_side + self.params_json.encode()).hexdigest()

    def n_interactions(self, rows) -> int:
        """Training interactions of the users ``rows`` (a ``slice`` or int64 indices)."""
        indptr = self._csr["user_items"][0]
        if isinstance(rows, slice):
            return int(indptr[rows.stop] - indptr[rows.start])
        return int((indptr[rows + 1] - indptr[rows]).sum())

    def user_slice(self, rows, positions=None) -> bytes:
        """``.npz`` bytes of the per-user arrays of ``rows`` (a ``slice`` or sorted unique int64
        indices of the model's users), in that order; ``positions`` (int64 indices into ``rows``,
        optional) are the users to score, in order (default: every user of ``rows``)."""
        out = {name: arr[rows] for name, arr in self._user.items()}
        if positions is not None:
            out[_POSITIONS] = np.asarray(positions, np.int64)
        indptr, indices, data = self._csr["user_items"]
        if isinstance(rows, slice):
            start, stop = int(indptr[rows.start]), int(indptr[rows.stop])
            entries = slice(start, stop)
            sub_indptr = np.asarray(indptr[rows.start : rows.stop + 1], np.int64) - start
        else:
            lengths = (indptr[rows + 1] - indptr[rows]).astype(np.int64)
            sub_indptr = np.concatenate([[0], np.cumsum(lengths)])
            entries = np.repeat(indptr[rows] - sub_indptr[:-1], lengths) + np.arange(sub_indptr[-1])
        out["user_items_indptr"] = sub_indptr
        out["user_items_indices"] = indices[entries]
        out["user_items_data"] = data[entries]
        for name, arr in self._entry_data.items():
            out[name] = arr[entries]
        return _npz_bytes(out)


def model_of_slice(class_path: str, digest: str, params_json: str, item_side, user_slice: bytes):
    """On a worker: ``(model, users)`` — the model of one partition's users, from the (cached)
    item side and the partition's user slice, every array checked by the model's loader; and the
    ids of the users to score (1-D, the model's id dtype)."""
    shared = cached(digest, lambda: _read_npz(item_side))
    arrays = dict(shared)
    arrays.update(_read_npz(user_slice))
    positions = arrays.pop(_POSITIONS, None)
    model = model_class(class_path)._from_arrays(json.loads(params_json), arrays)
    ids = model.user_map_.ids
    return worker_model(model), (ids if positions is None else ids[positions])
