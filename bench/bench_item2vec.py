"""Item2Vec training throughput: recforge's C++ word2vec vs gensim, one epoch, same parameters and threads.

Sequences: each user's positives in time order — MovieLens ml-latest-small (ratings >= 4) and the
synthetic 160k users × 60k items × 20M interactions set. Parameters as ANCHORS.md: dim 64, window 5,
negative 5, ns_exponent 0.75, sample 1e-3, learning rate 0.025 → 0.0001, 2 threads. Only training is
timed (gensim's vocabulary scan and our counting are outside). words/s = raw words (before
subsampling) / median seconds for both, so the two rates count the same words; each entry's extra_info
also has the words actually trained on after subsampling (ours: the trainer's count; gensim: the
"effective words" its train() returns), which differ only by the randomness of subsampling.
Our vectors are allocated as Item2Vec allocates them (``aligned_vectors``). Skip-gram runs our
default (``recforge``: negatives shared per window, pWord2Vec's blocks) and the per-pair path that
trains as gensim does (``recforge-pairwise``: negatives of their own for every pair).

The group ``item2vec-one-core-busy-*`` runs our trainer with 1 and 2 threads while a foreign process
keeps one core busy (DESIGN.md: 2 threads must not be slower than 1 there).

Run:  pytest bench/bench_item2vec.py --benchmark-only --benchmark-json=/tmp/i2v.json
      python bench/compare.py /tmp/i2v.json
"""

import numpy as np
import pytest

from recforge.kernels.sgns import aligned_vectors, keep_probabilities, sgns_train_epoch

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
# busy-core runs swing with the machine's load: more rounds on the 20M set (medians of 3)
BUSY_ROUNDS = {"movielens": pick(5, 2), "synthetic20M": pick(3, 2)}
_cache = {}


def corpus(name):
    if name not in _cache:
        _cache.clear()  # one large corpus in memory at a time
        offsets, items = CORPORA[name]()
        _cache[name] = (offsets, items)
    return _cache[name]


def _train_args(name, algorithm, n_threads, shared_negatives=True):
    offsets, items = corpus(name)
    n_items = int(items.max()) + 1
    counts = np.bincount(items, minlength=n_items)
    keep = keep_probabilities(counts, 1e-3)
    weights = counts.astype(np.float64) ** 0.75
    rng = np.random.default_rng(0)
    vin, vout = aligned_vectors(n_items, DIM), aligned_vectors(n_items, DIM)
    vin[:] = (rng.random((n_items, DIM), dtype=np.float32) - 0.5) / DIM
    kwargs = {
        "keep_prob": keep,
        "window": WINDOW,
        "negative": NEGATIVE,
        "cbow": algorithm == "cbow",
        "shared_negatives": shared_negatives,
        "alpha_start": 0.025,
        "alpha_end": 0.0001,
        "seed": 1,
        "n_threads": n_threads,
    }
    return (offsets, items, vin, vout, weights), kwargs


def _recforge_epoch(benchmark, name, algorithm, shared_negatives=True):
    args, kwargs = _train_args(name, algorithm, THREADS, shared_negatives)
    trained = benchmark.pedantic(
        sgns_train_epoch, args=args, kwargs=kwargs, rounds=ROUNDS[name], warmup_rounds=0
    )
    assert np.isfinite(args[2]).all()
    return trained


def _gensim_epoch(benchmark, name, algorithm):
    gensim_models = pytest.importorskip("gensim.models")
    offsets, items = corpus(name)
    sentences = [items[offsets[u] : offsets[u + 1]].tolist() for u in range(len(offsets) - 1)]
    sentences = [s for s in sentences if s]
    model = gensim_models.Word2Vec(
        vector_size=DIM,
        window=WINDOW,
        negative=NEGATIVE,
        min_count=1,
        sg=int(algorithm == "skipgram"),
        workers=THREADS,
        seed=1,
    )
    model.build_vocab(sentences)
    trained, _ = benchmark.pedantic(
        model.train,
        args=(sentences,),
        kwargs={"total_examples": len(sentences), "epochs": 1},
        rounds=ROUNDS[name],
        warmup_rounds=0,
    )
    return trained


# One test function, the library innermost: ours and gensim's run back to back on each corpus, so a
# change of load on the shared machine between them stays small.
@pytest.mark.parametrize("library", ["recforge", "recforge-pairwise", "gensim"])
@pytest.mark.parametrize("algorithm", ["skipgram", "cbow"])
@pytest.mark.parametrize("name", list(CORPORA))
def test_item2vec_epoch(benchmark, name, algorithm, library):
    if library == "recforge-pairwise" and algorithm == "cbow":
        pytest.skip("CBOW has one set of negatives per window either way")
    benchmark.group = f"item2vec-{algorithm}-{name}"
    if library == "gensim":
        trained = _gensim_epoch(benchmark, name, algorithm)
    else:
        trained = _recforge_epoch(benchmark, name, algorithm, library == "recforge")
    words = len(corpus(name)[1])
    benchmark.extra_info["words"] = words
    benchmark.extra_info["words_trained"] = int(trained)
    benchmark.extra_info["words_per_s"] = words / benchmark.stats.stats.median


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("algorithm", ["skipgram", "cbow"])
@pytest.mark.parametrize("name", list(CORPORA))
def test_recforge_item2vec_epoch_busy_core(benchmark, busy_core, name, algorithm, n_threads):
    args, kwargs = _train_args(name, algorithm, n_threads)
    benchmark.group = f"item2vec-one-core-busy-{algorithm}-{name}"
    benchmark.pedantic(
        sgns_train_epoch, args=args, kwargs=kwargs, rounds=BUSY_ROUNDS[name], warmup_rounds=0
    )
    benchmark.extra_info["words_per_s"] = len(args[1]) / benchmark.stats.stats.median
    assert np.isfinite(args[2]).all()
