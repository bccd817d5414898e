"""What importing recforge loads: Numba costs about 0.5 s of import, so the packages and the models
that need no Numba kernel do not load it (each check in a fresh interpreter)."""

import json
import subprocess
import sys

import pytest


def loaded_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; which of numba / recforge's Numba kernel modules it loaded."""
    probe = (
        "import json, sys\n"
        f"{code}\n"
        "print(json.dumps({'numba': 'numba' in sys.modules,"
        " 'kernels': sorted(m for m in sys.modules if m in"
        " ('recforge.kernels.linear', 'recforge.kernels._jit'))}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=600, check=False
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["recforge", "recforge.rank", "recforge.recall"])
def test_import_loads_no_numba(module):
    assert loaded_after(f"import {module}") == {"numba": False, "kernels": []}


def test_fitting_lr_and_gbdt_loads_no_numba():
    code = (
        "import numpy as np\n"
        "from recforge.rank import GBDTClassifier, LogisticRegression\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.standard_normal((300, 4)); y = (X[:, 0] + rng.standard_normal(300) > 0) * 1\n"
        "lr = LogisticRegression().fit(X, y)\n"
        "assert lr.predict_proba(X).shape == (300, 2)\n"
        "gbdt = GBDTClassifier(n_estimators=3).fit(X, y)\n"
        "assert gbdt.predict_proba(X).shape == (300, 2)\n"
    )
    assert loaded_after(code) == {"numba": False, "kernels": []}


def test_fitting_the_compiled_recall_models_loads_no_numba():
    """ItemCF, UserCF, LFM, Item2Vec and Popularity run C++ kernels only."""
    code = (
        "from recforge.data import synthetic_interactions\n"
        "from recforge.recall import LFM, Item2Vec, ItemCF, Popularity, UserCF\n"
        "x = synthetic_interactions(200, 100, 3000, seed=0)\n"
        "users = x.user_map.ids[:5]\n"
        "for model in (ItemCF(), UserCF(), LFM(epochs=2), Item2Vec(epochs=1), Popularity()):\n"
        "    ids, _ = model.fit(x).recommend(users, k=5)\n"
        "    assert ids.shape == (5, 5)\n"
    )
    assert loaded_after(code) == {"numba": False, "kernels": []}


def test_personal_rank_loads_numba_when_first_taken():
    """PersonalRank's solvers are Numba kernels: taking the class from recforge.recall loads them."""
    loaded = loaded_after("import recforge.recall\nfrom recforge.recall import PersonalRank")
    assert loaded["numba"]
    assert loaded_after("import recforge.recall\nrecforge.recall.ItemCF")["numba"] is False


def test_fitting_the_neural_rankers_loads_no_numba():
    """DNN and Wide&Deep train and predict with C++ kernels (scipy's BLAS) only."""
    code = (
        "import numpy as np\n"
        "from recforge.rank import DNN, WideDeep\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.standard_normal((300, 4)); y = (X[:, 0] + rng.standard_normal(300) > 0) * 1\n"
        "for model in (DNN(epochs=2, dropout=0.2), WideDeep(epochs=2)):\n"
        "    assert model.fit(X, y).predict_proba(X).shape == (300, 2)\n"
    )
    assert loaded_after(code) == {"numba": False, "kernels": []}


def test_the_numba_paths_still_load_their_kernels():
    """FTRL (l1) imports its Numba kernels where it first needs them."""
    code = (
        "import numpy as np\n"
        "from recforge.rank import LogisticRegression\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.standard_normal((200, 3)); y = (X[:, 0] > 0) * 1\n"
        "LogisticRegression(penalty='l1', max_iter=2).fit(X, y)\n"
    )
    assert loaded_after(code)["kernels"] == ["recforge.kernels._jit", "recforge.kernels.linear"]
