"""The two-stage pipeline on the 20M synthetic set (160k users × 60k items × 20M events).

Three sources (Popularity, ItemCF, LFM), 200 candidates per user, the ranker trained on a sample of
users, then recommend for every user. Run it under ``/usr/bin/time -v`` for the peak RSS::

    /usr/bin/time -v python bench/pipeline_20m.py --threads 2 --train-users 20000

Prints the time of each stage (data, fit with its sub-stages, recommend for all users) and the
load average beside them: the machine may be shared, so the wall times are upper bounds. No dense
users × items matrix is built anywhere (the pipeline works in blocks of ``--block-size`` users).
"""

from __future__ import annotations

import argparse
import os
import resource
import time


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux → GB


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=160_000)
    parser.add_argument("--items", type=int, default=60_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-users", type=int, default=20_000)
    parser.add_argument("--negatives", type=int, default=30)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--lfm-epochs", type=int, default=5)
    parser.add_argument("--block-size", type=int, default=2048)
    args = parser.parse_args(argv)

    from recforge.data import synthetic_interactions
    from recforge.kernels import warmup
    from recforge.pipeline import TwoStage
    from recforge.recall import LFM, ItemCF, Popularity

    warmup()
    start = time.perf_counter()
    data = synthetic_interactions(args.users, args.items, args.events)
    print(
        f"data: {data.n_users} users × {data.n_items} items, {data.nnz} entries "
        f"in {time.perf_counter() - start:.1f} s · peak RSS {_rss_gb():.2f} GB",
        flush=True,
    )
    t = args.threads
    per_source = -(-args.candidates // 3)
    model = TwoStage(
        {
            "popularity": Popularity(n_threads=t),
            "itemcf": ItemCF(n_neighbors=50, n_threads=t),
            "lfm": LFM(epochs=args.lfm_epochs, n_threads=t, random_state=0),
        },
        quotas=per_source,
        n_candidates=args.candidates,
        embedding_source="lfm",
        max_train_users=args.train_users,
        negatives_per_user=args.negatives,
        block_size=args.block_size,
        n_threads=t,
        random_state=0,
        verbose=True,
    )
    start = time.perf_counter()
    model.fit(data)
    fit_s = time.perf_counter() - start
    stages = " · ".join(f"{k} {v:.1f} s" for k, v in model.fit_times_.items())
    print(
        f"fit {fit_s:.1f} s ({stages}) · training rows {model.training_summary_['rows']} · "
        f"peak RSS {_rss_gb():.2f} GB · load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    start = time.perf_counter()
    items, _scores = model.recommend(data.user_map.ids, k=10)
    rec_s = time.perf_counter() - start
    print(
        f"recommend for {len(items)} users (k=10 of {args.candidates} candidates) {rec_s:.1f} s · "
        f"peak RSS {_rss_gb():.2f} GB · load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    print(f"total fit + recommend {fit_s + rec_s:.1f} s")


if __name__ == "__main__":
    main()
