"""Model files: one ``.npz`` archive holding the arrays and a JSON metadata record. Never pickle.

Layout of a file::

    __meta__   uint8 array: UTF-8 JSON {"format": "recforge-model", "format_version": 1,
               "recforge_version": "...", "class": "Popularity", "params": {...}, "meta": {...}}
    <name>     one array per fitted attribute (numeric or fixed-width unicode, never object)

Loading checks the format name, the format version, the class and the presence of every
array; any failure raises :class:`~recforge.exceptions.ModelFileError` naming the file.
"""
from __future__ import annotations

import io as _io
import json
import os
import zipfile

import numpy as np

from ._version import __version__
from .exceptions import ModelFileError

FORMAT = "recforge-model"
FORMAT_VERSION = 1
_META_KEY = "__meta__"


def save_arrays(file, *, model_class: str, params: dict, arrays: dict, meta: dict | None = None) -> None:
    """Write ``arrays`` and the JSON record to ``file`` (a path or a writable binary file object)."""
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "recforge_version": __version__,
        "class": model_class,
        "params": params,
        "meta": meta or {},
    }
    payload = {}
    for name, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(f"array {name!r} has dtype object, which cannot be saved without pickle")
        payload[name] = arr
    payload[_META_KEY] = np.frombuffer(json.dumps(record).encode("utf-8"), dtype=np.uint8)
    if isinstance(file, (str, os.PathLike)):
        with open(file, "wb") as f:
            np.savez_compressed(f, **payload)
    else:
        np.savez_compressed(file, **payload)


def load_arrays(file, *, expected_class: str | None = None, required: tuple = ()) -> tuple[dict, dict, dict]:
    """Read a model file written by :func:`save_arrays`.

    Returns ``(params, arrays, meta)``. Raises :class:`ModelFileError` for anything that is not
    a complete recforge model file of ``expected_class``.
    """
    where = os.fspath(file) if isinstance(file, (str, os.PathLike)) else "<file object>"
    if isinstance(file, (str, os.PathLike)) and not os.path.exists(file):
        raise FileNotFoundError(f"model file not found: {where}")
    try:
        if isinstance(file, (str, os.PathLike)):
            with open(file, "rb") as handle:  # np.load leaks the handle of a broken zip it opened itself
                arrays = _read_npz(handle)
        else:
            arrays = _read_npz(file)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ModelFileError(f"{where} is not a readable recforge model file ({type(exc).__name__}: {exc})") from exc
    if _META_KEY not in arrays:
        raise ModelFileError(f"{where} is not a recforge model file (no metadata record)")
    try:
        record = json.loads(arrays.pop(_META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{where}: the metadata record is corrupt ({exc})") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ModelFileError(f"{where} is not a recforge model file (format={record.get('format')!r})")
    version = record.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ModelFileError(
            f"{where} has model format version {version!r}; this recforge ({__version__}) reads versions "
            f"1..{FORMAT_VERSION} — upgrade recforge to load it"
        )
    if expected_class is not None and record.get("class") != expected_class:
        raise ModelFileError(f"{where} holds a {record.get('class')!r} model, not a {expected_class!r}")
    missing = [name for name in required if name not in arrays]
    if missing:
        raise ModelFileError(f"{where} is incomplete: missing arrays {missing}")
    return record.get("params", {}), arrays, record.get("meta", {})


def _read_npz(handle) -> dict:
    with np.load(handle, allow_pickle=False) as archive:
        if not hasattr(archive, "files"):
            raise ValueError("not an .npz archive")
        return {name: archive[name] for name in archive.files}


def to_bytes(save) -> bytes:
    """Call ``save(file_object)`` and return the bytes written (handy for storing models elsewhere)."""
    buffer = _io.BytesIO()
    save(buffer)
    return buffer.getvalue()
