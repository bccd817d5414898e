"""Ship each scoring task only the users it scores: the model cut into a shared item side and
per-partition user rows.

A model whose per-user arrays are known (:data:`USER_ARRAYS`: LFM's user factors, ItemCF's
interaction weights; every model's ids and training interactions ``user_items``) is split on the
client into

* the **item side** — every other array of the model file (item ids, item factors and biases, the
  item–item similarity), broadcast once to every worker;
* one **user slice** per partition — the partition's rows of the per-user arrays (CSR rows of
  ``user_items`` and of arrays aligned with its entries), scattered to one worker.

The arrays travel as Dask's own NumPy frames (a header and the raw buffer, sent without a copy
for a range of users; never pickled: model arrays are never of dtype object); a task finds the
item side already deserialised in its worker's memory.

A task rebuilds the model of its users from the two with the model's own checked loader
(``_from_arrays``, the code behind ``load``): the same arrays, so the same scores as the whole
model. A worker holds the item side, the user slices of the partitions it was given and the
output of the task it runs. Models not in :data:`USER_ARRAYS` are shipped whole
(:func:`._shipping.ship_model`).
"""

from __future__ import annotations

import json

import numpy as np

from ._shipping import model_class, worker_model

#: per model class name: (arrays with one row per user, arrays aligned with ``user_items``'s
#: entries) beside ``user_ids`` and ``user_items_*``; every other array is the item side
USER_ARRAYS = {
    "LFM": (("user_factors",), ()),
    "ItemCF": ((), ("user_weights",)),
}
#: the member of a user slice naming the users a task scores (not a model array)
_POSITIONS = "__positions__"


def splittable(model) -> bool:
    """Whether ``model`` is split by user (its class is in :data:`USER_ARRAYS` exactly: a subclass
    may keep more per-user state)."""
    return type(model).__name__ in USER_ARRAYS and type(model).__module__.startswith(
        "recforge.recall."
    )


class ModelSplit:
    """A fitted model cut by user on the client.

    Attributes
    ----------
    class_path : str
        ``module:qualname`` of the model class.
    params_json : str
        ``model.get_params()`` as JSON (as a model file records them).
    item_side : dict
        Name → array of every array of the model file that is not per user.
    """

    def __init__(self, model):
        cls = type(model)
        self.class_path = f"{cls.__module__}:{cls.__qualname__}"
        self.params_json = json.dumps(model.get_params())
        arrays = model._arrays()
        rows, entries = USER_ARRAYS[cls.__name__]
        self._rows = {name: arrays.pop(name) for name in ("user_ids", *rows)}
        self._indptr = arrays.pop("user_items_indptr")
        self._entries = {
            name: arrays.pop(name) for name in ("user_items_indices", "user_items_data", *entries)
        }
        self.item_side = arrays

    def n_interactions(self, rows) -> int:
        """Training interactions of the users ``rows`` (a ``slice`` or int64 indices)."""
        indptr = self._indptr
        if isinstance(rows, slice):
            return int(indptr[rows.stop] - indptr[rows.start])
        return int((indptr[rows + 1] - indptr[rows]).sum())

    def user_slice(self, rows, positions=None) -> dict:
        """Name → array of the per-user arrays of ``rows`` (a ``slice``: views of the model's
        arrays but the rebased ``user_items_indptr``; or sorted unique int64 indices of the
        model's users: copies), in that order; ``positions`` (int64 indices into ``rows``,
        optional) are the users to score, in order (default: every user of ``rows``)."""
        out = {name: arr[rows] for name, arr in self._rows.items()}
        indptr = self._indptr
        if isinstance(rows, slice):
            start, stop = int(indptr[rows.start]), int(indptr[rows.stop])
            entries = slice(start, stop)
            sub_indptr = np.asarray(indptr[rows.start : rows.stop + 1], np.int64) - start
        else:
            lengths = (indptr[rows + 1] - indptr[rows]).astype(np.int64)
            sub_indptr = np.concatenate([[0], np.cumsum(lengths)])
            entries = np.repeat(indptr[rows] - sub_indptr[:-1], lengths) + np.arange(sub_indptr[-1])
        out["user_items_indptr"] = sub_indptr
        for name, arr in self._entries.items():
            out[name] = arr[entries]
        if positions is not None:
            out[_POSITIONS] = np.asarray(positions, np.int64)
        return out


def model_of_slice(class_path: str, params_json: str, names, arrays):
    """On a worker: ``(model, users)`` — the model of one partition's users from the arrays
    ``names`` → ``arrays`` (the item side and the partition's user slice), every array checked by
    the model's loader; and the ids of the users to score (1-D, the model's id dtype)."""
    arrays = dict(zip(names, arrays, strict=True))
    positions = arrays.pop(_POSITIONS, None)
    model = model_class(class_path)._from_arrays(json.loads(params_json), arrays)
    ids = model.user_map_.ids
    return worker_model(model), (ids if positions is None else ids[positions])
