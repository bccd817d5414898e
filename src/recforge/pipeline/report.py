"""Evaluation of the whole pipeline: each source, the candidate ceiling, the fusion baseline, the final list."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from ..evaluate import evaluate_recall
from ..kernels.ranking import hit_matrix
from ..metrics import recall_at_k
from .labels import label_candidates

__all__ = ["PipelineReport", "evaluate_pipeline"]


@dataclasses.dataclass
class PipelineReport:
    """What :func:`evaluate_pipeline` measured.

    Attributes
    ----------
    rows : list of dict
        One row per source, then ``"rrf (no ranker)"`` and ``"pipeline"``: ``model``, ``ndcg``,
        ``precision``, ``recall``, ``hit_rate``, ``coverage`` (@k), ``recall_at_n`` (sources: their own
        top-N), ``hit_share`` (sources: share of the candidate hits they list), ``loss_without``
        (sources: share of the candidate hits only they list).
    k, n : int — the final cut-off and the candidates per user
    ceiling : float — recall@n of the candidate union: no ranker can pass it
    avg_hit_position : float — mean 1-based position of the hits in the final top-k
    best_source : str — the source with the highest NDCG@k
    n_users_evaluated : int
    """

    rows: list
    k: int
    n: int
    ceiling: float
    avg_hit_position: float
    best_source: str
    n_users_evaluated: int

    def row(self, model: str) -> dict:
        """The row of ``model`` (a source name, ``"rrf (no ranker)"`` or ``"pipeline"``)."""
        for r in self.rows:
            if r["model"] == model:
                return r
        raise KeyError(f"no row {model!r}; rows are {[r['model'] for r in self.rows]}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def format(self) -> str:
        """The funnel as a plain-text table."""
        k, n = self.k, self.n
        head = (
            f"  {'stage':<18}{'R@' + str(n):>8}{'NDCG@' + str(k):>9}{'P@' + str(k):>8}{'R@' + str(k):>8}"
            f"{'HR@' + str(k):>8}{'cover':>8}{'hits %':>8}{'lost w/o':>9}"
        )
        lines = [head]
        for r in self.rows:

            def fmt(key, width, pct=False, r=r):
                v = r.get(key)
                if v is None or (isinstance(v, float) and np.isnan(v)):
                    return " " * (width - 1) + "-"
                return f"{100 * v:>{width}.1f}" if pct else f"{v:>{width}.4f}"

            lines.append(
                f"  {r['model']:<18}{fmt('recall_at_n', 8)}{fmt('ndcg', 9)}{fmt('precision', 8)}"
                f"{fmt('recall', 8)}{fmt('hit_rate', 8)}{fmt('coverage', 8)}{fmt('hit_share', 8, True)}"
                f"{fmt('loss_without', 9, True)}"
            )
        pipe = self.row("pipeline")
        best = self.row(self.best_source)
        lines.append(
            f"  candidate union R@{n} (the ceiling): {self.ceiling:.4f} · best single source "
            f"{self.best_source} NDCG@{k} {best['ndcg']:.4f} · pipeline {pipe['ndcg']:.4f} "
            f"({pipe['ndcg'] / best['ndcg'] - 1:+.1%}) · average position of a hit "
            f"{self.avg_hit_position:.2f}"
        )
        return "\n".join(lines)


def evaluate_pipeline(model, train, test, k: int = 10, *, batch_size: int = 1024) -> PipelineReport:
    """Evaluate a fitted :class:`~recforge.pipeline.TwoStage` stage by stage on a train / test split.

    The protocol is :func:`recforge.evaluate.evaluate_recall`'s (full catalogue of the train items,
    train items filtered, test users with a train entry). ``n`` is the model's candidates per user.

    Parameters
    ----------
    model : TwoStage fitted on ``train``
    train, test : Interactions of one split
    k : int — the final cut-off

    Returns
    -------
    PipelineReport

    Examples
    --------
    >>> from recforge.datasets import movielens_small
    >>> from recforge.data import temporal_split
    >>> from recforge.pipeline import TwoStage, evaluate_pipeline
    >>> from recforge.recall import ItemCF, Popularity
    >>> train, test = temporal_split(movielens_small().interactions().positives(4.0), 0.2, 5)
    >>> model = TwoStage({"popularity": Popularity(), "itemcf": ItemCF()}, quotas=20, random_state=0).fit(train)
    >>> report = evaluate_pipeline(model, train, test)
    >>> report.ceiling >= report.row("pipeline")["recall"]
    True
    """
    model._check_fitted()
    n = model._settings[1]
    rows = []
    for name, source in model.sources_.items():
        at_k = evaluate_recall(source, train, test, k=k, batch_size=batch_size).as_dict()
        at_n = evaluate_recall(source, train, test, k=n, batch_size=batch_size)
        rows.append({"model": name, **_metrics(at_k), "recall_at_n": at_n.recall})

    test_csr, train_csr = test.matrix, train.matrix
    users = np.flatnonzero((np.diff(test_csr.indptr) > 0) & (np.diff(train_csr.indptr) > 0))
    universe = np.flatnonzero(np.bincount(train_csr.indices, minlength=train_csr.shape[1]) > 0)
    universe_ids = train.item_map.ids[universe]
    hits_total, hits_by = 0, np.zeros(len(model.sources_))
    only_by = np.zeros(len(model.sources_))
    padded = np.full((len(users), n), -1, np.int64)
    for start in range(0, len(users), batch_size):
        block = users[start : start + batch_size]
        cands = model.candidates(train.user_map.ids[block], items=universe_ids)
        rows_c = cands.rows()
        col = np.arange(len(rows_c)) - cands.offsets[rows_c]
        keep = col < n
        padded[start + rows_c[keep], col[keep]] = cands.items[keep]
        hit = label_candidates(block[rows_c], cands.items, test).astype(bool)
        listed = ~np.isnan(cands.source_ranks[hit])
        hits_total += int(hit.sum())
        hits_by += listed.sum(axis=0)
        only_by += (listed & (listed.sum(axis=1, keepdims=True) == 1)).sum(axis=0)
    ceiling = recall_at_k(padded, test_csr[users], k=n)
    for r, by, only in zip(rows, hits_by, only_by):
        r["hit_share"] = by / hits_total if hits_total else float("nan")
        r["loss_without"] = only / hits_total if hits_total else float("nan")

    baseline = copy.copy(model)
    baseline.ranker_ = None
    rows.append(
        {
            "model": "rrf (no ranker)",
            **_metrics(
                evaluate_recall(baseline, train, test, k=k, batch_size=batch_size).as_dict()
            ),
            "recall_at_n": ceiling,
        }
    )
    final = evaluate_recall(model, train, test, k=k, batch_size=batch_size)
    rows.append({"model": "pipeline", **_metrics(final.as_dict()), "recall_at_n": ceiling})

    positions = []
    for start in range(0, len(users), batch_size):
        block = users[start : start + batch_size]
        ids, scores = model.recommend(train.user_map.ids[block], k=k, items=universe_ids)
        valid = np.isfinite(scores)
        rec = np.full(ids.shape, -1, np.int64)
        rec[valid] = np.asarray(train.item_map.index(ids[valid], name="item_id"), np.int64).reshape(
            -1
        )
        sub = test_csr[block]
        hits = hit_matrix(rec, sub.indptr.astype(np.int64), _sorted_indices(sub))
        positions.append(np.nonzero(hits)[1] + 1)
    positions = np.concatenate(positions)
    best = max((r for r in rows[: len(model.sources_)]), key=lambda r: r["ndcg"])["model"]
    return PipelineReport(
        rows=rows,
        k=k,
        n=n,
        ceiling=float(ceiling),
        avg_hit_position=float(positions.mean()) if len(positions) else float("nan"),
        best_source=best,
        n_users_evaluated=final.n_users_evaluated,
    )


def _metrics(report: dict) -> dict:
    return {key: report[key] for key in ("ndcg", "precision", "recall", "hit_rate", "coverage")}


def _sorted_indices(csr):
    csr = csr.copy()
    csr.sort_indices()
    return csr.indices.astype(np.int64)
