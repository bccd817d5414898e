"""Slow, readable reference implementations of :mod:`recforge.metrics` (tests only).

Plain Python loops over users and positions, straight from the textbook formulas, with no
validation. ``recommended`` is a list of rows (or a 2-D array) of item indices, ``-1`` = padding;
``relevant`` is a list of sets (or a scipy sparse matrix, whose stored entries are relevant).
"""

from __future__ import annotations

import math


def _relevant_sets(relevant):
    if hasattr(relevant, "tocsr"):
        csr = relevant.tocsr()
        return [
            {int(i) for i in csr.indices[csr.indptr[u] : csr.indptr[u + 1]]}
            for u in range(csr.shape[0])
        ]
    return [{int(i) for i in row} for row in relevant]


def per_user_metrics(recommended, relevant, k):
    """Per user with >= 1 relevant item: dict of lists precision/recall/ndcg/hit_rate."""
    rel_sets = _relevant_sets(relevant)
    out = {"precision": [], "recall": [], "ndcg": [], "hit_rate": []}
    for row, rel in zip(recommended, rel_sets):
        if len(rel) == 0:
            continue
        top = [int(i) for i in list(row)[:k]]
        hits = 0
        dcg = 0.0
        for position, item in enumerate(top):
            if item != -1 and item in rel:
                hits += 1
                dcg += 1.0 / math.log2(position + 2)
        idcg = 0.0
        for position in range(min(k, len(rel))):
            idcg += 1.0 / math.log2(position + 2)
        out["precision"].append(hits / k)
        out["recall"].append(hits / len(rel))
        out["ndcg"].append(dcg / idcg)
        out["hit_rate"].append(1.0 if hits > 0 else 0.0)
    return out


def _mean(values):
    return sum(values) / len(values)


def precision_at_k(recommended, relevant, k):
    return _mean(per_user_metrics(recommended, relevant, k)["precision"])


def recall_at_k(recommended, relevant, k):
    return _mean(per_user_metrics(recommended, relevant, k)["recall"])


def ndcg_at_k(recommended, relevant, k):
    return _mean(per_user_metrics(recommended, relevant, k)["ndcg"])


def hit_rate_at_k(recommended, relevant, k):
    return _mean(per_user_metrics(recommended, relevant, k)["hit_rate"])


def coverage_at_k(recommended, n_items, k):
    distinct = set()
    for row in recommended:
        for item in list(row)[:k]:
            if int(item) != -1:
                distinct.add(int(item))
    return len(distinct) / n_items


def roc_auc_pairwise(y_true, y_score, sample_weight=None):
    """O(n^2) AUC: weighted share of (positive, negative) pairs ordered correctly, ties = 1/2."""
    n = len(y_true)
    w = [1.0] * n if sample_weight is None else [float(x) for x in sample_weight]
    num = 0.0
    total_pos = sum(w[i] for i in range(n) if y_true[i] == 1)
    total_neg = sum(w[i] for i in range(n) if y_true[i] == 0)
    for i in range(n):
        if y_true[i] != 1:
            continue
        for j in range(n):
            if y_true[j] != 0:
                continue
            if y_score[i] > y_score[j]:
                num += w[i] * w[j]
            elif y_score[i] == y_score[j]:
                num += 0.5 * w[i] * w[j]
    return num / (total_pos * total_neg)


def log_loss(y_true, y_prob, eps=1e-15, sample_weight=None):
    n = len(y_true)
    w = [1.0] * n if sample_weight is None else [float(x) for x in sample_weight]
    total = 0.0
    for i in range(n):
        p = min(max(float(y_prob[i]), eps), 1.0 - eps)
        total += -w[i] * (math.log(p) if y_true[i] == 1 else math.log(1.0 - p))
    return total / sum(w)
