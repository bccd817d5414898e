"""Load any saved recommender (a recall model or a two-stage pipeline) by the class its file names.

The one home of "which class is in this file": ``recforge serve`` and the ``recommend`` /
``similar`` commands of the CLI both load through :func:`load_model`.
"""

from __future__ import annotations

from ..exceptions import ModelFileError
from ..io import describe_file, read_record


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
    """The ``class`` of a recforge model file's JSON record (see :func:`recforge.io.read_record`)."""
    name = read_record(file).get("class")
    if not isinstance(name, str):
        raise ModelFileError(f"{describe_file(file)}: the metadata record names no model class")
    return name


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
