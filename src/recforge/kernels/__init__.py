"""Compiled kernels: Numba functions on arrays, and thin dispatch to the C++ module ``recforge._core``.

Numba kernels compile on their first call (and are cached on disk). :func:`warmup` compiles them
all up front, e.g. while building a container image, so that no user request pays for it.
A kernel module takes part by defining ``_warmup()``, which calls its kernels on tiny inputs.
"""
from __future__ import annotations

import importlib
import pkgutil
import time


def warmup(verbose: bool = False) -> dict:
    """Compile (or load from the cache) every Numba kernel of recforge.

    Returns
    -------
    dict
        Seconds spent per kernel module.

    Examples
    --------
    >>> from recforge.kernels import warmup
    >>> seconds = warmup()
    >>> "ranking" in seconds
    True
    """
    spent = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("__"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        hook = getattr(module, "_warmup", None)
        if hook is None:
            continue
        start = time.perf_counter()
        hook()
        spent[info.name] = time.perf_counter() - start
        if verbose:
            print(f"  {info.name:<20} {spent[info.name]:.2f} s")
    return spent
