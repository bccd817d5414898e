"""Fixtures shared by several test modules."""

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
