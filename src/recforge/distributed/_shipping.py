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

    Raises ``TypeError`` if ``model`` has no ``recommend``/``save``/``load``; an unfitted model
    raises its own ``NotFittedError`` here, on the client.
    """
    cls = type(model)
    for attr in ("recommend", "save", "load"):
        if not callable(getattr(model, attr, None)):
            raise TypeError(
                f"{name} must be a fitted recforge model with recommend/save/load, "
                f"got {cls.__name__} without .{attr}"
            )
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


def _preload(class_path: str, digest: str, data: bytes) -> None:
    load_shipped(class_path, digest, data)


def load_shipped(class_path: str, digest: str, data: bytes):
    """The model behind ``digest`` in this worker process, loading ``data`` on first use."""
    with _lock:
        model = _cache.get(digest)
        if model is not None:
            _cache.move_to_end(digest)
            return model
        loading = _loading.setdefault(digest, threading.Lock())
    with loading:
        with _lock:
            model = _cache.get(digest)  # loaded by another thread while this one waited
        if model is not None:
            return model
        try:
            return _load(class_path, digest, data)
        finally:
            with _lock:
                _loading.pop(digest, None)


def _load(class_path: str, digest: str, data: bytes):
    module, _, qualname = class_path.partition(":")
    cls = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    model = cls.load(io.BytesIO(data))
    if hasattr(model, "n_threads"):  # the worker's share of the machine, not every core
        model.n_threads = worker_threads()
    with _lock:
        _cache[digest] = model
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return model
