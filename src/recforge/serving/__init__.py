"""Serving: an in-process :class:`Recommender`, the feedback store and the HTTP app
(extra ``[serve]``).

``Recommender`` and ``FeedbackStore`` need only the core dependencies; :func:`create_app` needs
FastAPI and uvicorn (``pip install "recforge[serve]"``). Names are imported on first use, so
``recforge --help`` stays fast.
"""

import importlib

_HOMES = {
    "Recommender": ".recommender",
    "Recommendation": ".recommender",
    "FeedbackStore": ".store",
    "load_model": ".loader",
    "SERVABLE_CLASSES": ".loader",
    "create_app": ".app",
}

__all__ = list(_HOMES)


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name], __name__), name)
