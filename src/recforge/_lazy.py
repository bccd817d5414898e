"""Attributes of a package that load their module on first access (PEP 562).

The models built on Numba kernels live behind them, so that importing their package (and every
other model in it) does not pay for Numba's import, about 0.5 s.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_attributes(
    package: str, modules: Mapping[str, str], package_globals: dict, all_names: list[str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``name`` in ``modules`` is imported from
    the relative module ``modules[name]`` when first read, then kept in ``package_globals``.

    Examples
    --------
    >>> import recforge.recall
    >>> recforge.recall.PersonalRank.__name__
    'PersonalRank'
    """

    def __getattr__(name: str):
        if name in modules:
            value = getattr(importlib.import_module(modules[name], package), name)
            package_globals[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(package_globals) | set(all_names))

    return __getattr__, __dir__
