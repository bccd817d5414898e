"""Compiled kernels: Numba functions on arrays, and thin dispatch to the C++ module ``recforge._core``.

Numba kernels compile on their first call (and are cached on disk). :func:`warmup` compiles them
all up front, e.g. while building a container image, so that no user request pays for it.
A kernel module takes part by defining ``_warmup()``, which calls its kernels on tiny inputs, or
compiles them from their signatures, with the argument types the models pass (each signature
they use). Numba's disk cache serves later processes, so nothing compiles there, but a process
still pays twice for its kernels (measured by ``bench/warmup_first_call.py``, CPU seconds on a busy
2-core machine): once for Numba's start at its first kernel call (its typing and target contexts:
85-130 modules imported, Numba's own, scipy.linalg and cffi, every ``@overload`` registry
installed; 0.25-0.28 s, whatever the kernel, no recforge code in it; a ``parallel=True`` kernel
adds ~5 ms to start the threading layer), and 3-20 ms for each kernel signature's first call
(loaded from the cache and linked). ``import numba`` itself (~0.33 s) is paid by the first import
of a module with Numba kernels (PersonalRank, FTRL, the metrics, the pipeline); the C++ models
(ItemCF, UserCF, LFM, Item2Vec, LR with L-BFGS, GBDT, DNN, Wide&Deep) never load it. A process
whose first request must be fast calls :func:`warmup` itself at start (~1.2 s of CPU with a
filled cache).
"""

from __future__ import annotations

import importlib
import pkgutil
import time

#: Modules outside this package that hold Numba kernels (each with a ``_warmup``): none, every
#: kernel lives under ``recforge.kernels``; the hook stays for an extension package's kernels.
OTHER_KERNEL_MODULES: tuple = ()


def kernel_modules() -> list[str]:
    """Names of the modules with Numba kernels: this package's, then ``OTHER_KERNEL_MODULES``."""
    names = sorted(
        f"{__name__}.{info.name}"
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("__")
    )
    return names + list(OTHER_KERNEL_MODULES)


def jitted_functions() -> dict:
    """Every Numba dispatcher of the kernel modules, by qualified name (``module.function``).

    Examples
    --------
    >>> from recforge.kernels import jitted_functions
    >>> "recforge.kernels.segsort.segment_argsort" in jitted_functions()
    True
    """
    from ._jit import dispatcher_of

    found = {}
    for name in kernel_modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            dispatcher = dispatcher_of(value)
            if dispatcher is not None and dispatcher.py_func.__module__ == name:
                found[f"{name}.{attr}"] = dispatcher
    return found


def warmup(verbose: bool = False) -> dict:
    """Compile (or load from the cache) every Numba kernel of recforge.

    Returns
    -------
    dict
        Seconds spent per kernel module (short name, e.g. ``"neighbors"``).

    Examples
    --------
    >>> from recforge.kernels import warmup
    >>> seconds = warmup()
    >>> "ranking" in seconds
    True
    """
    spent = {}
    for name in kernel_modules():
        module = importlib.import_module(name)
        hook = getattr(module, "_warmup", None)
        if hook is None:
            continue
        short = name.rsplit(".", 1)[-1] if name.startswith(f"{__name__}.") else name
        start = time.perf_counter()
        hook()
        spent[short] = time.perf_counter() - start
        if verbose:
            print(f"  {short:<28} {spent[short]:.2f} s")
    return spent
