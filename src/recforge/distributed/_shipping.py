"""Ship a fitted model to every worker once, as its saved ``.npz`` bytes (never a pickle of it).

The client saves the model to bytes (``model.save`` on a ``BytesIO``) and broadcasts them; every
worker then loads them with ``ModelClass.load`` in a task of its own, sent with the bytes, so the
load runs while the client builds the graph instead of inside a worker's first scoring task (a
worker that joins later loads on first use). The loaded model is kept for the next tasks (a small
per-process cache keyed by the bytes' digest; a task that needs a model another thread is loading
waits for that load instead of loading it again).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import importlib
import io
import threading

from ..io import to_bytes
from ._compat import worker_threads

#: loaded models a worker process keeps (the last few shipped)
CACHE_SIZE = 2

_cache: collections.OrderedDict = collections.OrderedDict()
_loading: dict[str, threading.Lock] = {}  # digest -> held while one thread loads it
_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class ShippedModel:
    """A model broadcast to the workers: class path, digest of its bytes, future of the bytes."""

    class_path: str
    digest: str
    blob: object  # distributed.Future of bytes, replicated on every worker


def ship_model(client, model, name: str = "model") -> ShippedModel:
    """Save ``model`` to bytes on the client and broadcast them to every worker.

    Raises as :func:`check_model`.
    """
    cls = type(check_model(model, name))
    from distributed import fire_and_forget

    data = to_bytes(model.save, compress=False)  # deflate on the client costs more than the copy
    blob = client.scatter(data, broadcast=True, hash=False)
    shipped = ShippedModel(
        f"{cls.__module__}:{cls.__qualname__}", hashlib.sha256(data).hexdigest(), blob
    )
    for worker in client.scheduler_info()["workers"]:
        fire_and_forget(
            client.submit(
                _preload,
                shipped.class_path,
                shipped.digest,
                blob,
                workers=[worker],
                allow_other_workers=False,
                pure=False,
                priority=1,
            )
        )
    return shipped


def check_model(model, name: str = "model"):
    """``model``, if it can be shipped: ``TypeError`` naming ``name`` if it has no
    ``recommend``/``save``/``load``; an unfitted model raises its own ``NotFittedError`` (from
    its ``_check_fitted``, else from ``save`` when it is shipped), on the client."""
    for attr in ("recommend", "save", "load"):
        if not callable(getattr(model, attr, None)):
            raise TypeError(
                f"{name} must be a fitted recforge model with recommend/save/load, "
                f"got {type(model).__name__} without .{attr}"
            )
    check_fitted = getattr(model, "_check_fitted", None)
    if callable(check_fitted):
        check_fitted()
    return model


def _preload(class_path: str, digest: str, data: bytes) -> None:
    load_shipped(class_path, digest, data)


def load_shipped(class_path: str, digest: str, data: bytes):
    """The model behind ``digest`` in this worker process, loading ``data`` on first use."""
    return cached(digest, lambda: _load(class_path, digest, data))


def cached(digest: str, build):
    """The object this worker process keeps under ``digest``, made by ``build()`` on first use
    (one thread builds it; the others asking meanwhile wait for it); the last
    :data:`CACHE_SIZE` are kept."""
    with _lock:
        value = _cache.get(digest)
        if value is not None:
            _cache.move_to_end(digest)
            return value
        loading = _loading.setdefault(digest, threading.Lock())
    with loading:
        with _lock:
            value = _cache.get(digest)  # built by another thread while this one waited
        if value is not None:
            return value
        try:
            value = build()
            with _lock:
                _cache[digest] = value
                while len(_cache) > CACHE_SIZE:
                    _cache.popitem(last=False)
            return value
        finally:
            with _lock:
                _loading.pop(digest, None)


def model_class(class_path: str):
    """The class named by ``module:qualname``."""
    module, _, qualname = class_path.partition(":")
    cls = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    return cls


def worker_model(model):
    """``model`` with ``n_threads`` set to the worker's share of the machine, not every core."""
    if hasattr(model, "n_threads"):
        model.n_threads = worker_threads()
    return model


def _load(class_path: str, digest: str, data: bytes):
    return worker_model(model_class(class_path).load(io.BytesIO(data)))
