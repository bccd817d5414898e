"""Model files: one ``.npz`` archive holding the arrays and a JSON metadata record. Never pickle.

Layout of a file::

    __meta__   uint8 array: UTF-8 JSON {"format": "recforge-model", "format_version": 1,
               "recforge_version": "...", "class": "Popularity", "params": {...}, "meta": {...}}
    <name>     one array per fitted attribute (numeric or fixed-width unicode, never object)

Loading checks the format name, the format version, the class and the presence of every
array; any failure raises :class:`~recforge.exceptions.ModelFileError` naming the file.

Embeddings are also exchanged with gensim in word2vec's text format
(:func:`save_word2vec_format`, :func:`load_word2vec_format`).
"""

from __future__ import annotations

import contextlib
import contextvars
import io as _io
import json
import math
import os
import zipfile

import numpy as np
import scipy.sparse as sp

from ._validation import FLOAT32_MAX, check_csr_arrays
from ._version import __version__
from .exceptions import ModelFileError

#: the largest finite float32: scores and weights reach the kernels as float32
FORMAT = "recforge-model"
FORMAT_VERSION = 1
_META_KEY = "__meta__"
#: whether save_arrays deflates its members (to_bytes(compress=False) turns it off for one call)
_COMPRESS = contextvars.ContextVar("recforge_compress_saves", default=True)


def save_arrays(
    file, *, model_class: str, params: dict, arrays: dict, meta: dict | None = None
) -> None:
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
            raise TypeError(
                f"array {name!r} has dtype object, which cannot be saved without pickle"
            )
        payload[name] = arr
    payload[_META_KEY] = np.frombuffer(json.dumps(record).encode("utf-8"), dtype=np.uint8)
    write = np.savez_compressed if _COMPRESS.get() else np.savez
    if isinstance(file, (str, os.PathLike)):
        with open(file, "wb") as f:
            write(f, **payload)
    else:
        write(file, **payload)


def load_arrays(
    file, *, expected_class: str | None = None, required: tuple = ()
) -> tuple[dict, dict, dict]:
    """Read a model file written by :func:`save_arrays`.

    Returns ``(params, arrays, meta)``. Raises :class:`ModelFileError` for anything that is not
    a complete recforge model file of ``expected_class``.
    """
    where = describe_file(file)
    if isinstance(file, (str, os.PathLike)) and not os.path.exists(file):
        raise FileNotFoundError(f"model file not found: {where}")
    try:
        if isinstance(file, (str, os.PathLike)):
            with open(
                file, "rb"
            ) as handle:  # np.load leaks the handle of a broken zip it opened itself
                arrays = _read_npz(handle)
        else:
            arrays = _read_npz(file)
    except MemoryError:
        raise
    except (
        Exception
    ) as exc:  # zlib, zipfile, tokenize, NotImplementedError, ...: all mean a broken file
        raise ModelFileError(
            f"{where} is not a readable recforge model file ({type(exc).__name__}: {exc})"
        ) from exc
    if _META_KEY not in arrays:
        raise ModelFileError(f"{where} is not a recforge model file (no metadata record)")
    try:
        record = json.loads(arrays.pop(_META_KEY).tobytes().decode("utf-8"))
    except Exception as exc:  # bad UTF-8, bad JSON, nesting too deep, integers too long
        raise ModelFileError(
            f"{where}: the metadata record is corrupt ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(record, dict):
        raise ModelFileError(
            f"{where}: the metadata record is a JSON {type(record).__name__}, not an object"
        )
    if record.get("format") != FORMAT:
        raise ModelFileError(
            f"{where} is not a recforge model file (format={record.get('format')!r})"
        )
    version = record.get("format_version")
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or version > FORMAT_VERSION
        or version < 1
    ):
        raise ModelFileError(
            f"{where} has model format version {version!r}; this recforge ({__version__}) reads versions "
            f"1..{FORMAT_VERSION} — upgrade recforge to load it"
        )
    if expected_class is not None and record.get("class") != expected_class:
        raise ModelFileError(
            f"{where} holds a {record.get('class')!r} model, not a {expected_class!r}"
        )
    missing = [name for name in required if name not in arrays]
    if missing:
        raise ModelFileError(f"{where} is incomplete: missing arrays {missing}")
    params, meta = record.get("params", {}), record.get("meta", {})
    if not isinstance(params, dict) or not isinstance(meta, dict):
        raise ModelFileError(
            f"{where}: the metadata record's 'params' and 'meta' must be JSON objects"
        )
    return params, ModelArrays(arrays, where), meta


def describe_file(file) -> str:
    """How a model file is named in messages: its path, or ``<file object>``."""
    return os.fspath(file) if isinstance(file, (str, os.PathLike)) else "<file object>"


@contextlib.contextmanager
def model_file_errors(file, model_class: str):
    """Turn any error raised while rebuilding a model from a file into :class:`ModelFileError`.

    Wrap the whole of a ``load`` after :func:`load_arrays` in it: whatever a tampered file makes fail
    (a wrong dtype reaching Numba, a shape mismatch, an index error) reaches the user as one error
    type naming the file. ``MemoryError`` passes through unchanged.
    """
    where = describe_file(file)
    try:
        yield
    except MemoryError:
        raise
    except ModelFileError as exc:  # raised by a part's state check that did not know the file
        if where in str(exc):
            raise
        raise ModelFileError(f"{where}: {exc}") from exc
    except Exception as exc:
        raise ModelFileError(
            f"{where} holds an inconsistent {model_class} model ({type(exc).__name__}: {exc})"
        ) from exc


class ModelArrays(dict):
    """The arrays of a model file (name → array), with checked access for the code that rebuilds a model.

    Every array a model reads back goes through :meth:`take` (or :meth:`csr`) so that a tampered file
    is refused at load, naming the file and the array, instead of reaching a kernel.
    """

    def __init__(self, arrays: dict, where: str = "<file object>"):
        super().__init__(arrays)
        self.where = where

    @classmethod
    def of(cls, arrays: dict, where: str = "the model state") -> ModelArrays:
        """``arrays`` itself if it is a :class:`ModelArrays`, else a checked view of the plain dict
        (for a ``_set_state`` that a composite model calls with a dict of its part's arrays)."""
        return arrays if isinstance(arrays, ModelArrays) else cls(arrays, where)

    def error(self, message: str) -> ModelFileError:
        """A :class:`ModelFileError` naming this file."""
        return ModelFileError(f"{self.where}: {message}")

    def take(
        self,
        name: str,
        *,
        kinds: str = "f",
        ndim: int | None = 1,
        shape: tuple | None = None,
        dtype=None,
        finite: bool = True,
        min_value=None,
        max_value=None,
        pop: bool = False,
    ) -> np.ndarray:
        """Return array ``name`` after checking it.

        ``kinds``: allowed dtype kinds (``"f"`` float, ``"iu"`` integers, ``"U"`` strings, ``"b"`` bool);
        ``ndim``/``shape``: expected dimensions (``None`` entries in ``shape`` match any length);
        ``dtype``: cast to it after the checks (a float cast must stay finite); ``finite``: refuse NaN/inf
        in float arrays; ``min_value``/``max_value``: inclusive bounds of every value (numeric
        arrays); ``pop``: remove it from the mapping. The result is C-contiguous.
        """
        if name not in self:
            raise self.error(f"array {name!r} is missing")
        arr = self.pop(name) if pop else self[name]
        if not isinstance(arr, np.ndarray):
            arr = np.asarray(arr)
        if arr.dtype.kind not in kinds:
            raise self.error(f"array {name!r} has dtype {arr.dtype}, expected kind {kinds!r}")
        if ndim is not None and arr.ndim != ndim:
            raise self.error(f"array {name!r} has {arr.ndim} dimensions, expected {ndim}")
        if shape is not None:
            if len(shape) != arr.ndim or any(
                e is not None and int(e) != a for e, a in zip(shape, arr.shape)
            ):
                raise self.error(f"array {name!r} has shape {arr.shape}, expected {tuple(shape)}")
        if dtype is not None:
            target = np.dtype(dtype)
            if target.kind in "iu" and arr.dtype.kind in "iu" and arr.size:
                info = np.iinfo(target)
                if int(arr.min()) < info.min or int(arr.max()) > info.max:
                    raise self.error(f"array {name!r} holds values outside {target}")
            with np.errstate(over="ignore", invalid="ignore"):
                arr = arr.astype(target, copy=False)
        if finite and arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            raise self.error(
                f"array {name!r} holds non-finite values (NaN/inf or beyond its dtype's range)"
            )
        if arr.size and min_value is not None and arr.min() < min_value:
            raise self.error(f"array {name!r} holds {arr.min()}, below its minimum {min_value}")
        if arr.size and max_value is not None and arr.max() > max_value:
            raise self.error(f"array {name!r} holds {arr.max()}, above its maximum {max_value}")
        return np.ascontiguousarray(arr) if arr.ndim else arr  # (ascontiguousarray makes 0-d 1-d)

    def check_products(
        self, left: str, right: str, *, offset: float = 0.0, scale: float = 1.0
    ) -> None:
        """Refuse factor matrices (arrays ``left``, ``right`` of this file, already taken) whose
        row dot products, times ``scale`` plus ``offset``, could overflow float32 (Cauchy–Schwarz:
        ``|l_i · r_j| <= max ||l_i|| * max ||r_j||``): finite weights that score inf or NaN."""
        norms = [
            float(np.linalg.norm(np.asarray(self[name], np.float64), axis=1).max(initial=0.0))
            for name in (left, right)
        ]
        if not scale * norms[0] * norms[1] + abs(offset) <= FLOAT32_MAX:
            raise self.error(
                f"arrays {left!r} and {right!r} hold vectors so long that their dot "
                "products overflow float32"
            )

    def csr(
        self, prefix: str, shape: tuple[int, int], *, data_dtype=np.float32, pop: bool = False
    ) -> sp.csr_matrix:
        """Rebuild the CSR matrix saved as ``{prefix}_indptr``, ``{prefix}_indices``, ``{prefix}_data``.

        The three arrays pass :func:`recforge._validation.check_csr_arrays` first, so scipy and the
        kernels only ever see a consistent matrix of ``shape``; the data must be finite.
        """
        indptr = self.take(f"{prefix}_indptr", kinds="iu", pop=pop)
        indices = self.take(f"{prefix}_indices", kinds="iu", pop=pop)
        data = self.take(f"{prefix}_data", kinds="biuf", dtype=data_dtype, pop=pop)
        try:
            indptr, indices, data = check_csr_arrays(indptr, indices, data, shape, prefix)
        except (TypeError, ValueError) as exc:
            raise self.error(f"the sparse matrix {prefix!r} is inconsistent: {exc}") from exc
        return sp.csr_matrix((data, indices, indptr), shape=shape)


#: deflate expands at most ~1032:1: a member claiming more than this times its compressed size lies
_MAX_DEFLATE_RATIO = 1100


def save_word2vec_format(file, keys, vectors) -> None:
    """Write ``vectors`` (n, dim) with ``keys`` (n,) as word2vec text: a ``"n dim"`` header, then one
    ``"key v1 ... vdim"`` line per key (gensim's ``KeyedVectors.load_word2vec_format(path,
    binary=False)`` reads it). Keys must be non-empty and contain no whitespace. ``file``: a path or
    a text file object; example at :func:`load_word2vec_format`."""
    vectors = np.asarray(vectors, dtype=np.float32)
    keys = [str(k) for k in np.asarray(keys).tolist()]
    if vectors.ndim != 2 or len(keys) != vectors.shape[0]:
        raise ValueError(f"keys ({len(keys)}) and vectors {vectors.shape} must align, vectors 2-D")
    for k in keys:
        if not k or any(c.isspace() for c in k):
            raise ValueError(f"word2vec keys must be non-empty without whitespace, got {k!r}")
    lines = [f"{len(keys)} {vectors.shape[1]}"]
    lines += [k + " " + " ".join(repr(float(x)) for x in row) for k, row in zip(keys, vectors)]
    text = "\n".join(lines) + "\n"
    if hasattr(file, "write"):
        file.write(text)
    else:
        with open(file, "w", encoding="utf-8") as f:
            f.write(text)


def load_word2vec_format(file):
    """Read word2vec text vectors (as :func:`save_word2vec_format` or gensim write them).

    Returns ``(keys, vectors)``: keys an ndarray of str (n,), vectors float32 (n, dim). A malformed
    file raises ``ValueError`` naming the line.

    Examples
    --------
    >>> import io
    >>> buffer = io.StringIO()
    >>> save_word2vec_format(buffer, ["a", "b"], np.eye(2))
    >>> _ = buffer.seek(0)
    >>> keys, vectors = load_word2vec_format(buffer)
    >>> keys.tolist(), vectors.dtype.name, vectors.shape
    (['a', 'b'], 'float32', (2, 2))
    """
    if hasattr(file, "read"):
        text = file.read()
    else:
        with open(file, encoding="utf-8") as f:
            text = f.read()
    lines = text.splitlines()
    if not lines:
        raise ValueError("empty word2vec file")
    try:
        n, dim = (int(x) for x in lines[0].split())
    except ValueError:
        raise ValueError(f"word2vec header must be 'n_vectors dim', got {lines[0]!r}") from None
    body = [ln for ln in lines[1:] if ln.strip()]
    if len(body) != n:
        raise ValueError(f"word2vec header says {n} vectors, the file has {len(body)}")
    keys, vectors = [], np.empty((n, dim), np.float32)
    for row, line in enumerate(body):
        parts = line.rstrip().split(" ")
        if len(parts) != dim + 1:
            raise ValueError(
                f"line {row + 2}: expected a key and {dim} numbers, got {len(parts)} fields"
            )
        keys.append(parts[0])
        vectors[row] = np.array(parts[1:], dtype=np.float32)
    return np.array(keys, dtype=str), vectors


class _NotAnArchive(ValueError):
    """The bytes are not a zip archive at all (a text file, a pickle, ...)."""


def read_record(file) -> dict:
    """The JSON record of a model file (format, version, class, params, meta), reading no array.

    How a caller learns which class a file holds before loading it (``recforge serve``, the CLI).
    Raises ``FileNotFoundError`` for a missing path and :class:`ModelFileError` for anything that is
    not a readable recforge model file; the full validation happens in the class's ``load``.
    """
    where = describe_file(file)
    if isinstance(file, (str, os.PathLike)) and not os.path.exists(file):
        raise FileNotFoundError(f"model file not found: {where}")
    try:
        if isinstance(file, (str, os.PathLike)):
            with open(file, "rb") as handle:
                record = _read_meta(handle)
        else:
            start = file.tell()
            try:
                record = _read_meta(file)
            finally:
                file.seek(start)
    except MemoryError:
        raise
    except _NotAnArchive as exc:
        raise ModelFileError(f"{where} is not a recforge model file ({exc})") from exc
    except Exception as exc:
        raise ModelFileError(
            f"{where} is not a readable recforge model file ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ModelFileError(f"{where} is not a recforge model file (no recforge metadata record)")
    return record


def _read_meta(handle):
    start = handle.tell()
    if not zipfile.is_zipfile(handle):
        raise _NotAnArchive("not an .npz archive")
    handle.seek(start)
    with np.load(handle, allow_pickle=False) as archive:
        return json.loads(archive[_META_KEY].tobytes().decode("utf-8"))


def _read_npz(handle) -> dict:
    start = handle.tell()
    if not zipfile.is_zipfile(handle):  # np.load would try it as a pickle and say so
        raise _NotAnArchive("not an .npz archive")
    handle.seek(start)
    file_size = handle.seek(0, os.SEEK_END) - start
    handle.seek(start)
    with np.load(handle, allow_pickle=False) as archive:
        if not hasattr(archive, "files"):
            raise ValueError("not an .npz archive")
        for info in archive.zip.infolist():
            _check_member_size(archive.zip, info, file_size)
        return {name: archive[name] for name in archive.files}


def _check_member_size(zf, info, file_size: int) -> None:
    """Refuse a member whose header declares more data than the file holds, before numpy allocates
    it (a 2 KB file declaring shape (10**10,) would otherwise allocate 40 GB)."""
    too_big = info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 1024
    if info.compress_size > file_size or too_big:
        raise ValueError(
            f"member {info.filename!r} claims {info.file_size} bytes, more than the file can hold"
        )
    if not info.filename.endswith(".npy"):
        return
    with zf.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(
                f"member {info.filename!r} has .npy format version {version}, not 1.0 or 2.0"
            )
        declared = math.prod(int(n) for n in shape) * dtype.itemsize
        held = info.file_size - member.tell()
        if declared > held:
            raise ValueError(
                f"member {info.filename!r} declares shape {shape} of {dtype} "
                f"({declared} bytes) but holds {held} bytes"
            )


def to_bytes(save, *, compress: bool | None = None) -> bytes:
    """Call ``save(file_object)`` and return the bytes written (how a model is shipped to Dask workers).

    ``compress=False`` stores the arrays uncompressed: larger, but no deflate on the client, which
    costs more than copying the bytes to workers on one host or a fast network. ``None`` keeps the
    setting of an enclosing call (a pipeline saving its sources inside its own file).
    """
    buffer = _io.BytesIO()
    token = _COMPRESS.set(_COMPRESS.get() if compress is None else compress)
    try:
        save(buffer)
    finally:
        _COMPRESS.reset(token)
    return buffer.getvalue()
