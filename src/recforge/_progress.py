"""Progress bars of long loops (``verbose=True``): one helper, on tqdm's auto front-end.

``tqdm`` is imported only when a bar is shown, so a quiet fit never pays for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable


def progress_bar(
    enabled: bool,
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    **options,
):
    """A ``tqdm`` bar when ``enabled`` (over ``iterable``, or updated up to ``total``), else None.

    ``options`` go to ``tqdm`` (``unit``, ``unit_scale``, ``leave``, ...).

    Examples
    --------
    >>> from recforge._progress import progress_bar
    >>> progress_bar(False, total=10, desc="fit") is None
    True
    >>> bar = progress_bar(True, total=3, desc="fit", disable=True)
    >>> bar.update(3); bar.close()
    """
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, **options)


@contextlib.contextmanager
def progress(enabled: bool, *, total: int | None = None, desc: str | None = None, **options):
    """:func:`progress_bar` for a ``with`` block: yields the bar (or ``None``) and closes it."""
    bar = progress_bar(enabled, total=total, desc=desc, **options)
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()
