"""GBDT reference: histograms by a plain loop over rows, splits by exhaustive search over bins.

The specification of ``recforge.kernels.gbdt``; slow, used by tests only. Split gain follows
xgboost's implementation: ``loss_chg = G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)`` (twice the paper's
½[…]); a split needs both hessian sums ``>= min_child_weight`` and ``> 0``, ``loss_chg > 1e-6``
and ``loss_chg >= gamma``; ties keep the first candidate found (features ascending; numeric:
missing-right thresholds ascending, then missing-left thresholds descending).

A categorical feature with more than ``max_cat_to_onehot`` bins is split by a sorted partition
(LightGBM's search for many categories): its bins with ``H_b > 0`` and
``H_b >= min_category_weight`` sorted by ``G_b / (H_b + cat_smooth)`` (stable), left = the first
``i`` of that order, then the last ``i``, ``i = 1 .. min(max_cat_threshold, (n_used + 1) // 2)``,
each with missing values right, then left; with ``min_group_weight > 0`` a prefix is a candidate
only when the bins added since the scan's last candidate hold ``H >= min_group_weight``, a scan
stops once the rest of the node (missing values right) holds less, and the missing-left candidate
needs the rest without the missing values to hold as much. The children's terms of its gain take
``λ + cat_l2`` (the parent's ``λ``).
"""

from __future__ import annotations

import numpy as np

from ..kernels.gbdt import MISSING_BIN, N_BINS


def build_histogram(X_binned, gh, rows):
    """(n_features, 256, 2) float64 sums of gh over ``rows``."""
    n_features = X_binned.shape[1]
    hist = np.zeros((n_features, N_BINS, 2))
    for r in rows:
        for f in range(n_features):
            hist[f, X_binned[r, f]] += gh[r]
    return hist


def _gain(g, h, lam, mcw):
    return 0.0 if (h < mcw or h <= 0) else g * g / (h + lam)


def best_split(
    hist,
    sum_g,
    sum_h,
    n_bins,
    is_categorical,
    *,
    reg_lambda=1.0,
    gamma=0.0,
    min_child_weight=1.0,
    feature_mask=None,
    max_cat_to_onehot=N_BINS,
    max_cat_threshold=32,
    cat_smooth=10.0,
    cat_l2=0.0,
    min_group_weight=0.0,
    min_category_weight=0.0,
):
    """Exhaustive search: ``(feature, threshold_bin, default_left, loss_chg, left_bins)``; feature -1
    if none. ``left_bins``: the sorted value bins that go left of a partition split (threshold -1),
    else ()."""
    best = (-1, 0, False, 1e-6, ())
    parent = _gain(sum_g, sum_h, reg_lambda, min_child_weight)
    for f in range(hist.shape[0]):
        if feature_mask is not None and not feature_mask[f]:
            continue
        nb = int(n_bins[f])
        miss = hist[f, MISSING_BIN]
        has_missing = miss[0] != 0 or miss[1] != 0
        candidates = []  # (left-bin set, threshold, default_left) in the kernel's order
        if is_categorical[f] and nb > max_cat_to_onehot:
            h_bins = hist[f, :nb, 1]
            used = np.flatnonzero((h_bins > 0) & (h_bins >= min_category_weight))
            key = hist[f, used, 0] / (hist[f, used, 1] + cat_smooth)
            order = list(used[np.argsort(key, kind="stable")])
            grouped = min_group_weight > 0
            for side in (order, order[::-1]):
                lh = group_h = 0.0
                for i in range(1, min(max_cat_threshold, (len(order) + 1) // 2) + 1):
                    lh += hist[f, side[i - 1], 1]
                    group_h += hist[f, side[i - 1], 1]
                    if grouped:
                        if sum_h - lh < min_group_weight:
                            break
                        if group_h < min_group_weight:
                            continue
                        group_h = 0.0
                    candidates.append((side[:i], -1, False))
                    if has_missing and not (grouped and sum_h - lh - miss[1] < min_group_weight):
                        candidates.append((side[:i], -1, True))
        elif is_categorical[f]:
            candidates += [([b], b, False) for b in range(nb)]
            if has_missing:
                candidates += [([b], b, True) for b in range(nb)]
        else:
            candidates += [(list(range(t + 1)), t, False) for t in range(nb)]
            if has_missing:
                candidates += [(list(range(t + 1)), t, True) for t in range(nb - 2, -2, -1)]
        for bins, t, dleft in candidates:
            lg, lh = hist[f, bins].sum(axis=0) if bins else (0.0, 0.0)
            if dleft:
                lg, lh = lg + miss[0], lh + miss[1]
            rg, rh = sum_g - lg, sum_h - lh
            if lh < min_child_weight or rh < min_child_weight or lh <= 0 or rh <= 0:
                continue
            lam = reg_lambda + (cat_l2 if t < 0 and is_categorical[f] else 0.0)
            chg = (
                _gain(lg, lh, lam, min_child_weight) + _gain(rg, rh, lam, min_child_weight) - parent
            )
            if chg > best[3] + 1e-9 * max(1.0, abs(chg)):
                best = (f, t, dleft, chg, tuple(sorted(int(b) for b in bins)) if t < 0 else ())
    if best[0] >= 0 and best[3] < gamma:
        return (-1, 0, False, 0.0, ())
    return best if best[0] >= 0 else (-1, 0, False, 0.0, ())


def goes_left(bins_of_feature, threshold, default_left, categorical, left_bins=()):
    """Boolean mask of the rows (their bins of the split feature) that go to the left child
    (``left_bins``: a partition split's bins that go left)."""
    b = np.asarray(bins_of_feature).astype(np.int64)
    missing = b == MISSING_BIN
    if categorical and len(left_bins):
        left = np.isin(b, list(left_bins))
    else:
        left = (b == threshold) if categorical else (b <= threshold)
    return np.where(missing, bool(default_left), left)


def leaf_value(sum_g, sum_h, *, reg_lambda=1.0, min_child_weight=1.0, learning_rate=1.0):
    """``−G/(H+λ) × learning_rate`` (0 when ``H < min_child_weight``)."""
    if sum_h < min_child_weight or sum_h <= 0:
        return 0.0
    return -sum_g / (sum_h + reg_lambda) * learning_rate


def rank_gradients(
    objective,
    raw,
    y,
    group_ptr,
    group_weight=None,
    top_k=32,
    normalize=True,
    score_normalize=True,
    exp_gain=True,
):
    """LambdaMART (gradient, hessian) per row, float64 (n, 2): for each group, rank by score
    (float32, descending, stable); for ranks ``i < min(n, top_k)``, ``j > i`` with different labels,
    ``h``/``l`` the higher/lower-labelled: ``σ = sigmoid(s_h - s_l)``, ``Δ = 1`` (pairwise) or
    ``|ΔNDCG|`` of swapping ranks (gain ``2^y - 1``, discount ``1/log2(rank + 2)``, ideal DCG over
    the top ``min(n, top_k)``), ``Δ /= |s_h - s_l| + 0.01`` if ``score_normalize`` and scores differ,
    ``g_h += (σ - 1)Δ``, ``g_l -= (σ - 1)Δ``, ``h_h, h_l += 2 max(σ(1 - σ), 1e-16)Δ``; then per group
    ``× log2(1 + S)/S`` (``S = Σ -2(σ - 1)Δ > 0``, if ``normalize``) and ``× w_g · G/Σw``."""
    raw = np.asarray(raw, np.float64)
    y = np.asarray(y, np.float64)
    out = np.zeros((len(raw), 2))
    n_groups = len(group_ptr) - 1
    wnorm = 1.0 if group_weight is None else n_groups / float(np.sum(group_weight))
    for g in range(n_groups):
        s, e = int(group_ptr[g]), int(group_ptr[g + 1])
        n = e - s
        score = raw[s:e].astype(np.float32).astype(np.float64)
        lab = y[s:e]
        order = sorted(range(n), key=lambda i: -score[i])  # Python's sort is stable
        k = min(n, top_k)
        gain = (lambda v: 2.0**v - 1.0) if exp_gain else (lambda v: v)
        disc = [1.0 / np.log2(r + 2.0) for r in range(n)]
        idcg = sum(gain(v) * disc[r] for r, v in enumerate(sorted(lab, reverse=True)[:k]))
        gh = np.zeros((n, 2))
        total = 0.0
        for i in range(k):
            for j in range(i + 1, n):
                a, b = order[i], order[j]
                if lab[a] == lab[b]:
                    continue
                (rh, hi), (rl, lo) = ((i, a), (j, b)) if lab[a] > lab[b] else ((j, b), (i, a))
                delta = 1.0
                if objective == "rank:ndcg":
                    change = (gain(lab[hi]) - gain(lab[lo])) * (disc[rh] - disc[rl])
                    delta = abs(change / idcg) if idcg > 0 else 0.0
                if score_normalize and score[order[0]] != score[order[-1]]:
                    delta /= abs(score[hi] - score[lo]) + 0.01
                sigma = 1.0 / (1.0 + np.exp(-(score[hi] - score[lo])))
                lam = (sigma - 1.0) * delta
                hess = 2.0 * max(sigma * (1.0 - sigma), 1e-16) * delta
                gh[hi] += (lam, hess)
                gh[lo] += (-lam, hess)
                total += -2.0 * lam
        if normalize and total > 0:
            gh *= np.log2(1.0 + total) / total
        if group_weight is not None:
            gh *= group_weight[g] * wnorm
        out[s:e] = gh
    return out
