"""PersonalRank vs the closed form r = (1 − α)(I − αMᵀ)⁻¹ r0, solved independently with scipy."""

import numpy as np
import pytest

from recforge.recall import PersonalRank
from tests._cf_helpers import random_interactions


@pytest.mark.oracle
@pytest.mark.parametrize("method", ["direct", "iterate", "cg", "solve"])
def test_matches_scipy_closed_form(method):
    sla = pytest.importorskip("scipy.sparse.linalg")
    import scipy.sparse as sp

    m = random_interactions(n_users=50, n_items=35, density=0.12, seed=11)
    alpha = 0.8
    model = PersonalRank(alpha=alpha, method=method, tol=1e-13).fit(m)
    n_users, n_items = m.shape
    w = (m != 0).astype(np.float64)
    adj = sp.bmat([[None, w], [w.T, None]], format="csr")
    deg = np.asarray(adj.sum(axis=1)).ravel()
    trans = (
        sp.diags(np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)) @ adj
    )  # row-stochastic M
    a = (sp.identity(n_users + n_items) - alpha * trans.T).tocsc()
    users = np.array([0, 1, 3, 17, 49])
    r0 = np.zeros((n_users + n_items, len(users)))
    r0[users, np.arange(len(users))] = 1.0
    expected = sla.spsolve(a, (1 - alpha) * r0)
    expected = np.asarray(expected.todense() if sp.issparse(expected) else expected)[n_users:]
    x0 = np.zeros((n_users, len(users)))
    x0[users, np.arange(len(users))] = 1.0
    np.testing.assert_allclose(model._walk(x0, start_on_items=False), expected, rtol=0, atol=1e-10)
