"""A module-scoped 2-process Dask LocalCluster fixture for the distributed tests (import ``client``).

Collecting src/recforge's doctests by path puts src/ on sys.path, and spawned workers inherit
sys.path: with an installed copy under test they would import src/, which has no compiled _core,
and die. src/ is kept off sys.path while the cluster lives.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import recforge


def _installed_elsewhere() -> bool:
    """True when the recforge under test is an installed copy, not the ``src/`` tree."""
    src = Path(__file__).resolve().parents[1] / "src"
    return Path(recforge.__file__).resolve().parent.parent != src


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    saved = sys.path[:]
    if _installed_elsewhere():
        src = Path(__file__).resolve().parents[1] / "src"
        sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != src]
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = Client(cluster)
    client.wait_for_workers(2, timeout=120)  # a cluster that cannot start fails here, not hangs
    yield client
    client.close()
    cluster.close()
    sys.path[:] = saved
