"""Load any saved recommender (a recall model or a two-stage pipeline) by the class its file names.

The one home of "which class is in this file": ``recforge serve`` and the ``recommend`` /
``similar`` commands of the CLI both load through :func:`load_model`.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..exceptions import ModelFileError
from ..io import _META_KEY, describe_file


def _servable_classes() -> dict:
    from .. import recall

    from ..pipeline import TwoStage

    classes = {name: getattr(recall, name) for name in recall.__all__ if name != "RecallModel"}
    classes["TwoStage"] = TwoStage
    return classes


#: Class name (as written in a model file's record) → class, for every model ``recforge serve``
#: serves.
SERVABLE_CLASSES = _servable_classes()


def model_class_name(file) -> str:
    """The ``class`` of a recforge model file's JSON record, reading only that record.

    Raises ``FileNotFoundError`` for a missing path and :class:`ModelFileError` for anything that
    is not a recforge model file; the full validation happens in the class's ``load``.
    """
    where = describe_file(file)
    if isinstance(file, (str, os.PathLike)) and not os.path.exists(file):
        raise FileNotFoundError(f"model file not found: {where}")
    try:
        if isinstance(file, (str, os.PathLike)):
            with open(file, "rb") as handle:  # np.load leaks the handle of a broken zip it opened
                record = _read_record(handle)
        else:
            record = _read_record(file)
    except Exception as exc:  # not a zip, no record, bad JSON: all mean "not a model file"
        raise ModelFileError(
            f"{where} is not a readable recforge model file ({type(exc).__name__}: {exc})"
        ) from exc
    name = record.get("class") if isinstance(record, dict) else None
    if not isinstance(name, str):
        raise ModelFileError(f"{where}: the metadata record names no model class")
    return name


def _read_record(handle):
    with np.load(handle, allow_pickle=False) as archive:
        return json.loads(archive[_META_KEY].tobytes().decode("utf-8"))


def load_model(file):
    """Load the model saved in ``file`` whatever its class (one of :data:`SERVABLE_CLASSES`).

    Examples
    --------
    >>> import io, scipy.sparse as sp
    >>> from recforge.recall import Popularity
    >>> buf = io.BytesIO()
    >>> Popularity().fit(sp.csr_matrix([[1.0, 0.0], [1.0, 1.0]])).save(buf)
    >>> _ = buf.seek(0)
    >>> type(load_model(buf)).__name__
    'Popularity'
    """
    name = model_class_name(file)
    if name not in SERVABLE_CLASSES:
        raise ModelFileError(
            f"{describe_file(file)} holds a {name!r} model, which recforge serve "
            f"cannot serve; servable: {sorted(SERVABLE_CLASSES)}"
        )
    if hasattr(file, "seek"):
        file.seek(0)
    return SERVABLE_CLASSES[name].load(file)
