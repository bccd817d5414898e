"""Item2Vec training throughput: recforge's C++ word2vec vs gensim, one epoch, same parameters and threads.

Sequences: each user's positives in time order — MovieLens ml-latest-small (ratings >= 4) and the
synthetic 160k users × 60k items × 20M interactions set. Parameters as ANCHORS.md: dim 64, window 5,
negative 5, ns_exponent 0.75, sample 1e-3, learning rate 0.025 → 0.0001, 2 threads. Only training is
timed (gensim's vocabulary scan and our counting are outside). words/s = raw words / median seconds
(see each entry's extra_info).

Run:  pytest bench/bench_item2vec.py --benchmark-only --benchmark-json=/tmp/i2v.json
      python bench/compare.py /tmp/i2v.json
"""
import numpy as np
import pytest

from recforge.kernels.sgns import keep_probabilities, sgns_train_epoch

from .conftest import pick

THREADS = 2
DIM, WINDOW, NEGATIVE = 64, 5, 5
SYNTH = pick((160_000, 60_000, 20_000_000), (2_000, 1_000, 100_000))


def _movielens():
    from recforge.datasets import movielens_small

    return movielens_small().interactions().positives(4.0).sequences()


def _synthetic():
    from recforge.data import synthetic_interactions

    return synthetic_interactions(*SYNTH).sequences()


CORPORA = {"movielens": _movielens, "synthetic20M": _synthetic}
ROUNDS = {"movielens": pick(5, 2), "synthetic20M": pick(1, 2)}
_cache = {}


def corpus(name):
    if name not in _cache:
        _cache.clear()  # one large corpus in memory at a time
        offsets, items = CORPORA[name]()
        _cache[name] = (offsets, items)
    return _cache[name]


@pytest.mark.parametrize("name", list(CORPORA))
@pytest.mark.parametrize("algorithm", ["skipgram", "cbow"])
def test_recforge_item2vec_epoch(benchmark, name, algorithm):
    offsets, items = corpus(name)
    n_items = int(items.max()) + 1
    counts = np.bincount(items, minlength=n_items)
    keep = keep_probabilities(counts, 1e-3)
    weights = counts.astype(np.float64) ** 0.75
    rng = np.random.default_rng(0)
    vin = ((rng.random((n_items, DIM), dtype=np.float32) - 0.5) / DIM).astype(np.float32)
    vout = np.zeros_like(vin)
    benchmark.group = f"item2vec-{algorithm}-{name}"
    benchmark.pedantic(sgns_train_epoch, args=(offsets, items, vin, vout, weights),
                       kwargs={"keep_prob": keep, "window": WINDOW, "negative": NEGATIVE, "cbow": algorithm == "cbow",
                                   "alpha_start": 0.025, "alpha_end": 0.0001, "seed": 1, "n_threads": THREADS},
                       rounds=ROUNDS[name], warmup_rounds=0)
    benchmark.extra_info["words"] = len(items)
    benchmark.extra_info["words_per_s"] = len(items) / benchmark.stats.stats.median
    assert np.isfinite(vin).all()


@pytest.mark.parametrize("name", list(CORPORA))
@pytest.mark.parametrize("algorithm", ["skipgram", "cbow"])
def test_gensim_word2vec_epoch(benchmark, name, algorithm):
    gensim_models = pytest.importorskip("gensim.models")
    offsets, items = corpus(name)
    sentences = [items[offsets[u]:offsets[u + 1]].tolist() for u in range(len(offsets) - 1)]
    sentences = [s for s in sentences if s]
    model = gensim_models.Word2Vec(vector_size=DIM, window=WINDOW, negative=NEGATIVE, min_count=1,
                                   sg=int(algorithm == "skipgram"), workers=THREADS, seed=1)
    model.build_vocab(sentences)
    benchmark.group = f"item2vec-{algorithm}-{name}"
    benchmark.pedantic(model.train, args=(sentences,), kwargs={"total_examples": len(sentences), "epochs": 1},
                       rounds=ROUNDS[name], warmup_rounds=0)
    benchmark.extra_info["words"] = len(items)
    benchmark.extra_info["words_per_s"] = len(items) / benchmark.stats.stats.median
