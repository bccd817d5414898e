"""Peak memory of the 20M runs on the synthetic 160k × 60k × 20M set (run under /usr/bin/time -v).

Usage:  /usr/bin/time -v python bench/peak_memory_20m.py WHAT      (read "Maximum resident set size")
WHAT: data (the baseline: generating the set and its sequences), item2vec-skipgram, item2vec-cbow,
gensim-skipgram, gensim-cbow, lfm, implicit-bpr (one training epoch each, parameters as bench_item2vec.py /
bench_lfm.py); personal-rank (recommend for 1,000 users, tol 1e-6); itemcf (fit + recommend for every user,
K = 20). 2 threads.
"""

import sys
import time

from recforge.data import synthetic_interactions


def main(what: str) -> None:
    data = synthetic_interactions(160_000, 60_000, 20_000_000)
    start = time.perf_counter()
    if what == "data":
        data.sequences()
    elif what.startswith("item2vec-"):
        from recforge.recall import Item2Vec

        Item2Vec(
            algorithm=what.split("-")[1],
            window=5,
            ns_exponent=0.75,
            epochs=1,
            n_threads=2,
            random_state=0,
        ).fit(data)
    elif what.startswith("gensim-"):
        from gensim.models import Word2Vec

        offsets, items = data.sequences()
        sentences = [items[offsets[u] : offsets[u + 1]].tolist() for u in range(len(offsets) - 1)]
        sentences = [s for s in sentences if s]
        Word2Vec(
            sentences,
            vector_size=64,
            window=5,
            negative=5,
            min_count=1,
            epochs=1,
            sg=int(what.endswith("skipgram")),
            workers=2,
            seed=0,
        )
    elif what == "lfm":
        from recforge.recall import LFM

        LFM(n_factors=64, epochs=1, n_threads=2, random_state=0).fit(data)
    elif what == "implicit-bpr":
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        BayesianPersonalizedRanking(factors=64, iterations=1, num_threads=2, random_state=0).fit(
            data.matrix.copy(), show_progress=False
        )
    elif what == "personal-rank":
        from recforge.recall import PersonalRank

        PersonalRank(tol=1e-6, n_threads=2).fit(data).recommend(data.user_map.ids[:1000], k=10)
    elif what == "itemcf":
        from recforge.recall import ItemCF

        ItemCF(n_neighbors=20, n_threads=2).fit(data).recommend(data.user_map.ids, k=10)
    else:
        raise SystemExit(f"unknown WHAT {what!r}; see the module docstring")
    print(f"{what}: {time.perf_counter() - start:.1f} s after data generation")


if __name__ == "__main__":
    main(sys.argv[1])
