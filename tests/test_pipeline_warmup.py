"""After ``recforge warmup`` a pipeline's first fit and recommend compile no Numba signature.

A fresh interpreter (the package as installed, Numba's normal disk cache) runs ``warmup()``, notes
every kernel's signatures, then fits a TwoStage on the bundled ml-latest-small (ItemCF similarity
with scipy's int32 indices, read-only timestamps, genres) and recommends, for known users and from
a history. A signature that appears only then (another dtype, layout or read-only flag than
``warmup`` compiled) is compiled inside the user's first fit: seconds of CPU on a cold cache.
"""

import json
import subprocess
import sys

import pytest

FIT_AFTER_WARMUP = r"""
import json
from recforge.kernels import jitted_functions, warmup

warmup()
dispatchers = jitted_functions()
after_warmup = {name: {str(s) for s in d.signatures} for name, d in dispatchers.items()}

from recforge.data import temporal_split
from recforge.datasets import movielens_small
from recforge.pipeline import TwoStage
from recforge.rank import GBDTClassifier
from recforge.recall import LFM, ItemCF, Popularity
from recforge.recall.content_based import genre_topics

ml = movielens_small()
train, _ = temporal_split(ml.interactions().positives(4.0), test_fraction=0.2, min_interactions=5)
sources = {
    "popularity": Popularity(n_threads=2),
    "itemcf": ItemCF(n_threads=2),
    "lfm": LFM(n_factors=8, epochs=2, n_threads=2, random_state=0),
}
model = TwoStage(
    sources,
    quotas=20,
    embedding_source="lfm",
    ranker=GBDTClassifier(n_estimators=5, max_depth=3, random_state=0),
    n_threads=2,
    random_state=0,
).fit(train, item_features=genre_topics(ml.movies))
model.recommend(train.user_map.ids[:50], k=10)
model.recommend_from_history(train.item_map.ids[:5], k=10)
new = sorted(
    f"{name}{s}" for name, d in dispatchers.items() for s in map(str, d.signatures)
    if s not in after_warmup[name]
)
print(json.dumps({"new": new, "n_dispatchers": len(dispatchers)}))
"""


@pytest.mark.slow
def test_pipeline_fit_compiles_nothing_after_warmup():
    out = subprocess.run(
        [sys.executable, "-c", FIT_AFTER_WARMUP], capture_output=True, text=True, timeout=1800
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["n_dispatchers"] > 10  # the kernels were found
    assert got["new"] == [], "signatures the pipeline uses that warmup() misses"
