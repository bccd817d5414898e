"""Fixtures shared by several test modules."""

import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def adult_data():
    """The bundled UCI Adult data (train/test frames and labels)."""
    from recforge.datasets import adult

    return adult()


@pytest.fixture(scope="session")
def adult_small(adult_data):
    """``(X_train, y_train, X_test, y_test)``: the first 3,000 training and 2,000 test rows, for quick fits."""
    d = adult_data
    return d.X_train.iloc[:3000], d.y_train[:3000], d.X_test.iloc[:2000], d.y_test[:2000]


def _installed_elsewhere() -> bool:
    """True when the recforge under test is an installed copy, not the ``src/`` tree."""
    import recforge

    src = Path(__file__).resolve().parents[1] / "src"
    return Path(recforge.__file__).resolve().parent.parent != src


@pytest.fixture(scope="module")
def dask_client():
    """A ``distributed.Client`` on a local cluster of 2 worker processes (1 thread each), one per
    test module that asks for it (the distributed tests: ItemCF/UserCF/recommend, GBDT)."""
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    # Collecting src/recforge's doctests by path puts src/ on sys.path, and spawned workers inherit
    # sys.path: with an installed copy under test they would import src/, which has no compiled
    # _core, and die. Keep src/ off sys.path while the cluster lives.
    saved = sys.path[:]
    if _installed_elsewhere():
        src = Path(__file__).resolve().parents[1] / "src"
        sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != src]
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = Client(cluster)
    client.wait_for_workers(
        2, timeout=120
    )  # a cluster that cannot start fails here instead of hanging
    yield client
    client.close()
    cluster.close()
    sys.path[:] = saved
