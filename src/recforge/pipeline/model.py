"""The two-stage recommender: recall sources → merged candidates → as-of features → ranker → top-k."""

from __future__ import annotations

import dataclasses
import inspect
import io as _io
import time

import numpy as np

from .._params import ParamsMixin
from .._threads import numba_threads, resolve_n_threads
from .._validation import (
    check_1d,
    check_choice,
    check_csr_arrays,
    check_float,
    check_int,
    check_random_state,
)
from ..data import IdMap, Interactions
from ..exceptions import ModelFileError, NotFittedError
from ..io import load_arrays, model_file_errors, save_arrays
from ..recall.base import history_indices
from .candidates import RRF_K, check_quotas, fetch_lists, merge_lists
from .features import (
    SEQUENCE_WINDOW,
    AsOfState,
    build_features,
    feature_names,
    prepare_embeddings,
    prepare_similarity,
)
from .labels import (
    cut_history,
    label_candidates,
    label_from_impressions,
    last_event_times,
    negatives_seed,
    sample_training_rows,
)
from .selection import (
    RRF_CHOICE,
    SourceOrder,
    mean_ndcg,
    simple_ndcg_rows,
    simple_orders,
    validation_users,
)
from .serving_spec import ServingSpec, serving_spec

__all__ = ["TrainingData", "TwoStage", "default_ranker", "default_sources"]

#: New candidates each source contributes by default (5 default sources: 300 candidates per user).
DEFAULT_QUOTA = 60
#: Random negatives kept per training user by default (the validation users keep all theirs).
DEFAULT_NEGATIVES_PER_USER = 50


def default_sources(n_threads=None, random_state=None) -> dict:
    """The default recall sources: Popularity, ItemCF, UserCF, LFM (BPR) and Item2Vec, unfitted."""
    from ..recall import LFM, Item2Vec, ItemCF, Popularity, UserCF

    seed = (
        None if random_state is None else int(check_random_state(random_state).integers(2**31 - 1))
    )
    return {
        "popularity": Popularity(n_threads=n_threads),
        "itemcf": ItemCF(n_threads=n_threads),
        "usercf": UserCF(n_threads=n_threads),
        "lfm": LFM(n_threads=n_threads, random_state=seed),
        "item2vec": Item2Vec(n_threads=n_threads, random_state=seed),
    }


def default_ranker(n_threads=None, random_state=None):
    """The default ranker: a GBDT classifier (logistic loss), 300 trees of depth 4, eta 0.05, min_child_weight 20,
    row and column subsampling 0.8.

    Shallow, regularised trees: on ml-latest-small (3 seeds) they beat xgboost's classifier defaults (100
    trees of depth 6, eta 0.3) by +37 % NDCG@10 as a reranker, and depth 6 with eta 0.1 by +13 %.
    """
    from ..rank import GBDTClassifier

    return GBDTClassifier(
        n_estimators=300,
        learning_rate=0.05,
        max_depth=4,
        min_child_weight=20.0,
        reg_lambda=1.0,
        subsample=0.8,
        colsample_bytree=0.8,
        n_threads=n_threads,
        random_state=random_state,
    )


@dataclasses.dataclass
class TrainingData:
    """The ranker's training set (see :meth:`TwoStage.training_data`).

    Attributes
    ----------
    X : float32 (n, n_features), NaN = missing
    y : int8 (n,) — 1 = interacted with after the cut
    rows : int64 (n,) — the training user of each row, 0..n_users-1 in user order (rows are grouped)
    users, items : int64 (n,) — internal user and item index of each row
    feature_names : list of str
    summary : dict — users, rows, positives, label events, the candidates' recall of the label events
    validation : bool (n,) or None — the rows of the held-out users (kept with all their
        negatives); None: ``fit`` holds out users by ``validation_fraction`` itself
    complete : bool (n,) or None — the rows of the users none of whose candidates the negative
        sampling dropped (they score fusion and the single sources); None: the held-out users'
        rows with ``negatives_per_user`` set, else every row
    in_sample : bool (n,) or None — the rows the negative sampling keeps; the held-out users'
        other negatives only serve the validation, the ranker that ranks in the end learns from
        these rows (None: all)
    simple_ndcg : float32 (n, n_orders) or None — each row's user's NDCG@``validation_k`` under
        fusion and each single source (:func:`~recforge.pipeline.selection.simple_ndcg_rows`),
        over all the user's candidates before the negative sampling, NaN for a user without a
        positive: the simple orders are chosen on every training user (None: on the
        ``complete`` rows)
    """

    X: np.ndarray
    y: np.ndarray
    rows: np.ndarray
    users: np.ndarray
    items: np.ndarray
    feature_names: list
    summary: dict
    validation: np.ndarray | None = None
    complete: np.ndarray | None = None
    in_sample: np.ndarray | None = None
    simple_ndcg: np.ndarray | None = None


def _clone(model):
    return type(model)(**model.get_params())


def _item_feature_matrix(item_features, item_ids):
    """Align ``item_features`` to ``item_ids``: (matrix float32 (n_items, n_features), column names)."""
    from ..recall.content_based import _item_feature_matrix as align

    names = [str(c) for c in getattr(item_features, "columns", [])]
    matrix = align(item_features, item_ids).astype(np.float32)
    if not names:
        names = [f"f{j}" for j in range(matrix.shape[1])]
    return matrix, names


def _known_classes() -> dict:
    from .. import rank, recall

    out = {}
    for module in (recall, rank):
        for name in module.__all__:
            out[name] = getattr(module, name)
    return out


class TwoStage(ParamsMixin):
    """The two-stage recommender: several recall sources, merged candidates, as-of features, a ranker.

    ``fit`` cuts each user's training history in time: the sources are fitted on the part before
    the cut, their merged candidates get features computed as of the cut and labels from the part
    after it, and the ranker learns from them. The sources are then refitted on all the data, and
    ``recommend`` ranks each user's candidates with features computed as of the end of the data.

    Parameters
    ----------
    sources : dict name → unfitted recall model, optional
        Default :func:`default_sources` (Popularity, ItemCF, UserCF, LFM, Item2Vec).
    quotas : int or dict name → int, default 60
        New candidates each source contributes first (in source order); the remaining slots up to
        ``n_candidates`` are filled in fusion order.
    n_candidates : int, optional
        Candidates per user (default: the sum of the quotas). ``recommend`` with a larger ``k``
        takes ``k``.
    depth : int, optional
        How deep each source's list is fetched (default ``n_candidates``): the depth of the rank
        features and of the fill-up.
    ranker : ranker (``fit(X, y)``, ``predict_proba(X)`` or ``predict(X)``), ``"default"``, None or a list
        ``"default"`` = :func:`default_ranker`; None ranks by reciprocal rank fusion (the baseline).
        A ranker whose ``fit`` takes ``group=`` receives the candidates per user (sizes, in row
        order); a ranker without ``predict_proba`` (learning to rank) scores with ``predict``.
        A list: the settings to choose among on the validation users.
    cut : {"last", "window"}, default "last"
        How the training history is cut for labels (see :mod:`recforge.pipeline.labels`).
    label_fraction : float, default 0.2
        ``cut="last"``: each user's share of events after the cut.
    label_window : float, optional
        ``cut="window"``: the label window in days.
    cut_time : float, optional
        ``cut="window"``: the cut in seconds (default: the end of the data minus ``label_window``).
    negatives_per_user : int or None, default 50
        Keep at most this many random negatives per training user (None: all). The validation
        users keep all theirs. With 300 candidates per user this trains the ranker on about a
        quarter of the rows: 2.6 × faster, and no lower NDCG on ml-latest-small than all the
        negatives of 200 candidates (see ``docs/pipeline.md``).
    validation_fraction : float in [0, 1), default 0.2
        Share of the training users held out to choose what ranks: each ranker (fitted on the
        other users), reciprocal rank fusion and every single source order the held-out users'
        candidates, and the best by NDCG@``validation_k`` on their labels is kept (a ranker only
        when it wins by ``min_gain``; it is then refitted on all the users; a source answers like
        the source alone). So the pipeline does not do worse than its best source on the data it
        is fitted on. 0: the (single) ranker is always used.
    validation_k : int, default 10
        The cut-off of the validation NDCG.
    min_gain : float >= 0, default 0.03
        A ranker is kept only when its validation NDCG exceeds the best of fusion and the single
        sources by more than this share (3 %); a smaller gain is within the noise of the held-out
        users, and the simpler ranking then serves.
    max_train_users : int, optional
        Train the ranker on a random sample of this many users (default: all with labels).
    windows : tuple of float, default (7, 30, 365)
        Activity / popularity windows in days.
    n_last : int, default 10
        The user's last items the similarity features look at.
    similarity_source, embedding_source : str or None
        The sources whose ``similarity_`` (ItemCF-like) and item vectors feed the similarity
        features (missing sources: those features are NaN).
    genre_decay : float, default 0.0
        Per-day decay of the user's genre profile.
    sequence_window : int >= 0, default 10
        The sequence features count, over the history's users, how often an item came at most
        this many events after another (``seq_*``: after the user's last items, before the last
        one); 0 leaves them NaN.
    high_weight : float, optional
        A weight >= this is a "high" event for the share features (default: the largest weight
        in the data).
    block_size : int, default 1024
        Users per block: memory is bounded by one block's candidates and features.
    rrf_k : float, default 60
        The fusion constant.
    n_threads : int, optional
        Threads of the default sources, the ranker and the feature kernels.
    deterministic : bool, default True
        Fit every source that takes a ``random_state`` (the SGD ones: LFM, Item2Vec) on one
        thread, so that a fit with a fixed ``random_state`` gives the same model on every run
        (their Hogwild updates at several threads depend on thread timing); they answer
        ``recommend`` on their own ``n_threads`` again after the fit. False: they train on
        their ``n_threads`` (faster, and each run another draw).
    random_state : int, optional
        Seeds the default sources, the ranker and the sampling.
    verbose : bool, default False
        Print each stage and its time.

    Attributes
    ----------
    sources_ : dict name → recall model fitted on all the data
    ranker_ : the fitted ranker (or None)
    feature_names_out_ : list of str
    feature_groups_ : list of str — the group of each feature
    fit_times_ : dict stage → seconds
    training_summary_ : dict — users, rows, positives, the candidates' recall of the label part
    selection_ : dict or None — what ranks (``selected``: a ranker, ``"rrf"`` or a source name;
        ``kind``: ``"ranker"``, ``"rrf"`` or ``"source"``) and the validation NDCG of every choice

    Examples
    --------
    >>> from recforge.datasets import movielens_small
    >>> from recforge.data import temporal_split
    >>> from recforge.pipeline import TwoStage
    >>> from recforge.recall import ItemCF, Popularity
    >>> train, test = temporal_split(movielens_small().interactions().positives(4.0), 0.2, 5)
    >>> model = TwoStage({"popularity": Popularity(), "itemcf": ItemCF()}, quotas=20, random_state=0)
    >>> model = model.fit(train)
    >>> item_ids, scores = model.recommend(1, k=10)          # movieIds, best first
    >>> item_ids.shape, len(model.feature_names_out_) > 30
    ((10,), True)
    """

    def __init__(
        self,
        sources=None,
        *,
        quotas=DEFAULT_QUOTA,
        n_candidates=None,
        depth=None,
        ranker="default",
        cut="last",
        label_fraction=0.2,
        label_window=None,
        cut_time=None,
        negatives_per_user=DEFAULT_NEGATIVES_PER_USER,
        validation_fraction=0.2,
        validation_k=10,
        min_gain=0.03,
        max_train_users=None,
        windows=(7, 30, 365),
        n_last=10,
        similarity_source="itemcf",
        embedding_source="item2vec",
        genre_decay=0.0,
        sequence_window=SEQUENCE_WINDOW,
        high_weight=None,
        block_size=1024,
        rrf_k=RRF_K,
        n_threads=None,
        deterministic=True,
        random_state=None,
        verbose=False,
    ):
        self.sources = sources
        self.quotas = quotas
        self.n_candidates = n_candidates
        self.depth = depth
        self.ranker = ranker
        self.cut = cut
        self.label_fraction = label_fraction
        self.label_window = label_window
        self.cut_time = cut_time
        self.negatives_per_user = negatives_per_user
        self.validation_fraction = validation_fraction
        self.validation_k = validation_k
        self.min_gain = min_gain
        self.max_train_users = max_train_users
        self.windows = windows
        self.n_last = n_last
        self.similarity_source = similarity_source
        self.embedding_source = embedding_source
        self.genre_decay = genre_decay
        self.sequence_window = sequence_window
        self.high_weight = high_weight
        self.block_size = block_size
        self.rrf_k = rrf_k
        self.n_threads = n_threads
        self.deterministic = deterministic
        self.random_state = random_state
        self.verbose = verbose

    # ---- parameters ----------------------------------------------------------------------------
    def _source_templates(self) -> dict:
        if self.sources is None:
            return default_sources(self.n_threads, self.random_state)
        if not isinstance(self.sources, dict) or not self.sources:
            raise TypeError(
                f"sources must be a non-empty dict name -> recall model, got {type(self.sources).__name__}"
            )
        for name, model in self.sources.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"sources keys must be non-empty strings, got {name!r}")
            if not all(
                callable(getattr(model, m, None)) for m in ("fit", "recommend", "get_params")
            ):
                raise TypeError(
                    f"sources[{name!r}] must be a recall model (fit, recommend, get_params), "
                    f"got {type(model).__name__}"
                )
        return dict(self.sources)

    def _ranker_templates(self) -> list:
        """The candidate rankers (unfitted): [] for ``ranker=None``."""
        if self.ranker is None:
            return []
        given = list(self.ranker) if isinstance(self.ranker, (list, tuple)) else [self.ranker]
        if not given:
            raise ValueError("ranker must not be an empty list")
        out = []
        for ranker in given:
            if isinstance(ranker, str):
                check_choice(ranker, "ranker", {"default"})
                out.append(default_ranker(self.n_threads, self.random_state))
                continue
            has = {
                m
                for m in ("fit", "predict_proba", "predict", "get_params")
                if callable(getattr(ranker, m, None))
            }
            if not {"fit", "get_params"} <= has or not has & {"predict_proba", "predict"}:
                raise TypeError(
                    f"ranker must have fit, get_params and predict_proba or predict (or be "
                    f"'default', None or a list of rankers), got {type(ranker).__name__}"
                )
            out.append(ranker)
        return out

    def _validate(self, names):
        quotas = check_quotas(self.quotas, names)
        total = int(quotas.sum())
        n_candidates = (
            total
            if self.n_candidates is None
            else check_int(self.n_candidates, "n_candidates", min_value=1)
        )
        depth = n_candidates if self.depth is None else check_int(self.depth, "depth", min_value=1)
        windows = check_1d(
            self.windows, "windows", dtype=np.float64, finite=True, allow_empty=False
        )
        if np.any(windows <= 0):
            raise ValueError(f"windows must be > 0 days, got {list(self.windows)}")
        check_int(self.n_last, "n_last", min_value=1)
        check_float(self.genre_decay, "genre_decay", min_value=0.0)
        check_int(self.sequence_window, "sequence_window", min_value=0)
        check_int(self.block_size, "block_size", min_value=1)
        check_float(self.rrf_k, "rrf_k", min_value=0.0)
        check_choice(self.cut, "cut", {"last", "window"})
        if not isinstance(self.deterministic, (bool, np.bool_)):
            raise TypeError(f"deterministic must be a bool, got {self.deterministic!r}")
        if self.negatives_per_user is not None:
            check_int(self.negatives_per_user, "negatives_per_user", min_value=1)
        check_float(
            self.validation_fraction,
            "validation_fraction",
            min_value=0.0,
            max_value=1.0,
            max_inclusive=False,
        )
        check_int(self.validation_k, "validation_k", min_value=1)
        check_float(self.min_gain, "min_gain", min_value=0.0)
        if self.cut_time is not None:
            check_float(self.cut_time, "cut_time")
        if self.max_train_users is not None:
            check_int(self.max_train_users, "max_train_users", min_value=1)
        if self.high_weight is not None:
            check_float(self.high_weight, "high_weight")
        for attr in ("similarity_source", "embedding_source"):
            value = getattr(self, attr)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{attr} must be a source name or None, got {type(value).__name__}")
        resolve_n_threads(self.n_threads)
        return quotas, n_candidates, depth, windows

    def _log(self, message):
        if self.verbose:
            print(f"[TwoStage] {message}", flush=True)

    # ---- fitting -------------------------------------------------------------------------------
    def fit(self, interactions, *, item_features=None, impressions=None, training_data=None):
        """Fit the sources, build the labelled candidates of the cut, train the ranker, refit the sources.

        Parameters
        ----------
        interactions : Interactions with timestamps (seconds)
        item_features : DataFrame indexed by item id (e.g. ``genre_topics(movies)``) or (item_ids, matrix)
            Item features (genres): feature columns, the genre profile, and passed to every source
            whose ``fit`` takes ``item_features``.
        impressions : DataFrame with columns user, item, clicked, time, optional
            When given, the labels come from the impressions after the cut instead of the interactions.
        training_data : TrainingData, optional
            The ranker's training set built elsewhere (e.g. partition by partition on a cluster by
            :mod:`recforge.distributed.pipeline`) from the same interactions and parameters; its
            ``feature_names`` must be this model's. Skips the sources' fit on the history.

        Returns
        -------
        self
        """
        data = interactions
        prepared = self._prepare(data, item_features)
        templates, settings, genres, genre_names, high = prepared
        windows = settings[3]
        rankers = self._ranker_templates()
        times = {}
        names_out, _groups = feature_names(list(templates), windows, genre_names)
        if training_data is None:
            train = self._training_data(
                data,
                prepared,
                item_features,
                impressions,
                check_random_state(self.random_state),
                times,
            )
        elif not isinstance(training_data, TrainingData):
            raise TypeError(
                f"training_data must be a TrainingData, got {type(training_data).__name__}"
            )
        elif list(training_data.feature_names) != names_out:
            raise ValueError(
                "training_data has other feature_names than this model builds "
                "(built with other sources, windows or item features)"
            )
        else:
            train = training_data
        self.training_summary_ = train.summary
        start = time.perf_counter()
        fitted_ranker, self.selection_, self._fitted_settings = self._select_ranker(
            rankers, train, names_out
        )
        times["ranker"] = time.perf_counter() - start
        self._log(f"ranker fitted in {times['ranker']:.2f} s")

        start = time.perf_counter()
        sources = self._fit_sources(templates, data, item_features)
        times["sources_on_all"] = time.perf_counter() - start
        self._log(f"sources refitted on all the data in {times['sources_on_all']:.2f} s")

        if self.cut == "last":
            as_of = last_event_times(data, default=float(data.timestamps.max()))
        else:
            as_of = np.full(data.n_users, float(data.timestamps.max()))
        self._install(
            data, sources, fitted_ranker, (genres, genre_names, high), as_of, settings, times
        )
        return self

    def _fit_ranker(self, template, X, y, rows, names):
        if y.min() == y.max():
            raise ValueError(
                "the training candidates are all of one class; the ranker cannot learn "
                "(more candidates, another cut, or more data)"
            )
        ranker = _clone(template)
        kwargs = {}
        if "group" in inspect.signature(ranker.fit).parameters:
            kwargs["group"] = np.bincount(rows)[np.unique(rows)]
        return ranker.fit(self._ranker_input(ranker, X, names), y, **kwargs)

    def _select_ranker(self, rankers, train, names):
        """Fit the ranker that orders the candidates: (fitted ranker, :class:`SourceOrder` or None
        for fusion; the selection record or None; every setting as fitted, for ``save``).

        With ``validation_fraction > 0`` each candidate ranker is fitted on the rows of the users
        not held out and scored, with fusion and every single source, by NDCG@``validation_k`` on
        the held-out users; the best ranker ranks from then on (refitted on every user's sampled
        rows, ``train.in_sample``) if it beats the best of fusion and the sources by ``min_gain``
        there, else that best one (chosen on every user with all candidates kept: they learn
        nothing from the labels).
        """
        if not rankers:
            return None, None, []
        X, y, rows = train.X, train.y, train.rows
        held = train.validation
        if held is None:
            held = np.isin(train.users, self._validation_users(train.users))
        fit_part = ~held
        final = np.ones(len(y), bool) if train.in_sample is None else train.in_sample
        k = int(self.validation_k)
        if not held.any() or not fit_part.any() or y[held].max(initial=0) == 0:
            if len(rankers) > 1:
                raise ValueError(
                    "several rankers need validation users with positives to choose among them "
                    "(validation_fraction > 0, more training users)"
                )
            ranker = self._fit_ranker(rankers[0], X[final], y[final], rows[final], names)
            return ranker, None, [ranker]
        Xv, rows_v, items_v, y_v = X[held], rows[held], train.items[held], y[held]
        choices, fitted = [], []
        for i, template in enumerate(rankers):
            ranker = self._fit_ranker(template, X[fit_part], y[fit_part], rows[fit_part], names)
            fitted.append(ranker)
            scores = self._ranker_scores(ranker, Xv, names)
            name = "ranker" if len(rankers) == 1 else f"ranker[{i}]"
            choices.append(("ranker", name, i, mean_ndcg(rows_v, items_v, y_v, scores, k)))
        simple_scores = simple_orders(X, names)
        for position, (name, scores) in enumerate(simple_scores.items()):
            kind = "rrf" if name == RRF_CHOICE and position == 0 else "source"
            choices.append((kind, name, None, mean_ndcg(rows_v, items_v, y_v, scores[held], k)))
        simple_all, simple_users = self._simple_ndcg(train, simple_scores, held)
        n_rankers = len(rankers)
        best_ranker = max(range(n_rankers), key=lambda c: (choices[c][3], -c))  # ties: earlier
        names_simple = list(simple_all)
        best_simple = n_rankers + max(
            range(len(names_simple)), key=lambda c: (simple_all[names_simple[c]], -c)
        )
        learned = choices[best_ranker][3] > (1.0 + float(self.min_gain)) * choices[best_simple][3]
        kind, name, index, _ = choices[best_ranker if learned else best_simple]
        selection = {
            "selected": name,
            "kind": kind,
            "validation_users": len(np.unique(rows_v)),
            "ndcg": {c[1]: c[3] for c in choices},
            "simple_users": simple_users,
            "simple_ndcg": simple_all,
        }
        self._log(
            f"validation NDCG@{k}: "
            + ", ".join(f"{c[1]} {c[3]:.4f}" for c in choices)
            + f" -> {name}"
        )
        if kind == "ranker":
            ranker = self._fit_ranker(rankers[index], X[final], y[final], rows[final], names)
            return ranker, selection, fitted
        if kind == "source":
            return SourceOrder(name, names), selection, fitted
        return None, selection, fitted

    def _simple_ndcg(self, train, simple_scores, held):
        """Fusion's and each source's mean NDCG@``validation_k`` over the training users that can
        score them, and how many: (name → NDCG, n users). They learn nothing from the labels, so
        every training user tells which is best — over all its candidates
        (``train.simple_ndcg``, computed before the negative sampling), or else over the users
        whose candidates the sampling all kept (``train.complete``)."""
        y, rows = train.y, train.rows
        if train.simple_ndcg is not None:
            first = np.unique(rows, return_index=True)[1]
            per_user = train.simple_ndcg[first].astype(np.float64)
            scored = np.isfinite(per_user).all(axis=1)
            means = (
                per_user[scored].mean(axis=0)
                if scored.any()
                else np.full(len(simple_scores), np.nan)
            )
            return dict(zip(simple_scores, means.tolist())), int(scored.sum())
        complete = train.complete
        if complete is None:
            complete = held if self.negatives_per_user is not None else np.ones(len(y), bool)
        k = int(self.validation_k)
        means = {
            name: mean_ndcg(rows[complete], train.items[complete], y[complete], scores[complete], k)
            for name, scores in simple_scores.items()
        }
        return means, len(np.unique(rows[complete]))

    def _validation_users(self, users):
        """The held-out training users (internal indices, sorted) for a training set of ``users``."""
        return validation_users(
            users, float(self.validation_fraction), check_random_state(self.random_state)
        )

    def _install(self, data, sources, ranker, genre_state, as_of, settings, times):
        """Set the fitted state: ``sources`` and ``ranker`` serve ``data`` with features as of ``as_of``."""
        genres, genre_names, high = genre_state
        self.sources_, self.ranker_ = sources, ranker
        self.user_map_, self.item_map_ = data.user_map, data.item_map
        self.state_ = AsOfState(
            data, genres, genre_names, high, sequence_window=self.sequence_window
        )
        self.as_of_ = as_of
        self.feature_names_out_, self.feature_groups_ = feature_names(
            list(sources), settings[3], genre_names
        )
        self.fit_times_ = times
        if not hasattr(self, "training_summary_"):
            self.training_summary_ = {}
        if not hasattr(self, "selection_"):
            self.selection_, self._fitted_settings = None, []
        self._settings = tuple(settings)
        self._serving_inputs = self._similarity_inputs(sources)

    def history_model(self, interactions, *, item_features=None) -> TwoStage:
        """This pipeline's sources fitted on the history before the label cut, without a ranker.

        Its :meth:`features` are the ranker's training features (as of each user's cut) — what a
        cluster needs to build the training frame partition by partition
        (:mod:`recforge.distributed.pipeline`); ``cut="last"`` only (a per-user rule).

        Returns
        -------
        TwoStage, fitted (``ranker_`` None), on the history part of ``interactions``
        """
        if self.cut != "last":
            raise ValueError(f"history_model needs cut='last', got cut={self.cut!r}")
        high = self._prepare(interactions, item_features)[4]
        cut = cut_history(interactions, cut="last", fraction=self.label_fraction)
        return self._history_model(cut.history, cut.as_of, item_features, high)

    def _history_model(self, history, as_of, item_features, high) -> TwoStage:
        templates, settings, genres, genre_names, _ = self._prepare(history, item_features)
        sources = self._fit_sources(templates, history, item_features)
        model = _clone(self)
        model.ranker = None  # it has none: it ranks by fusion and serves features
        model._install(history, sources, None, (genres, genre_names, high), as_of, settings, {})
        return model

    def training_data(self, interactions, *, item_features=None, impressions=None) -> TrainingData:
        """The ranker's training set as ``fit`` builds it: labelled candidates of the cut, features as of the cut.

        The sources are fitted on the history before the cut only; nothing after the cut reaches the
        features (the leakage tests check exactly this). Returns :class:`TrainingData`.
        """
        return self._training_data(
            interactions,
            self._prepare(interactions, item_features),
            item_features,
            impressions,
            check_random_state(self.random_state),
            {},
        )

    def _prepare(self, data, item_features):
        """Check the input and the parameters: (source templates, settings, genres, genre names, high)."""
        if not isinstance(data, Interactions):
            raise TypeError(
                f"interactions must be a recforge.data.Interactions with timestamps, "
                f"got {type(data).__name__}"
            )
        if data.nnz == 0:
            raise ValueError("interactions has no entries")
        if data.timestamps is None:
            raise ValueError(
                "interactions has no timestamps; the pipeline cuts each history in time "
                "(build it with Interactions.from_dataframe(..., timestamp_col=...))"
            )
        templates = self._source_templates()
        settings = self._validate(list(templates))
        genres, genre_names = (None, [])
        if item_features is not None:
            genres, genre_names = _item_feature_matrix(item_features, data.item_map.ids)
        high = (
            float(self.high_weight)
            if self.high_weight is not None
            else float(data.matrix.data.max())
        )
        return templates, settings, genres, genre_names, high

    def _training_data(
        self, data, prepared, item_features, impressions, rng, times
    ) -> TrainingData:
        """The labelled candidates of the cut; ``prepared`` is what :meth:`_prepare` returned."""
        templates, settings, genres, genre_names, high = prepared
        names = list(templates)
        windows = settings[3]
        n_threads = resolve_n_threads(self.n_threads)
        start = time.perf_counter()
        cut = cut_history(
            data,
            cut=self.cut,
            fraction=self.label_fraction,
            window=self.label_window,
            cut_time=self.cut_time,
        )
        history_sources = self._fit_sources(templates, cut.history, item_features)
        times["sources_on_history"] = time.perf_counter() - start
        self._log(
            f"sources fitted on the history before the cut in {times['sources_on_history']:.2f} s"
        )

        fut = cut.future.matrix
        hist_count = np.diff(cut.history.matrix.indptr)
        if impressions is None:
            users = np.flatnonzero((np.diff(fut.indptr) > 0) & (hist_count > 0))
        else:
            users = np.flatnonzero(hist_count > 0)
        if self.max_train_users is not None and len(users) > self.max_train_users:
            users = np.sort(rng.choice(users, int(self.max_train_users), replace=False))
        if len(users) == 0:
            raise ValueError(
                "no user has events both before and after the cut; lower label_fraction, "
                "change label_window or give more data"
            )
        state = AsOfState(
            cut.history, genres, genre_names, high, sequence_window=self.sequence_window
        )
        similarity, embeddings = self._similarity_inputs(history_sources)
        names_out, _ = feature_names(names, windows, genre_names)
        held_users = self._validation_users(users)
        seed = negatives_seed(rng)

        start = time.perf_counter()
        keys = (
            "X",
            "y",
            "rows",
            "users",
            "items",
            "validation",
            "complete",
            "in_sample",
            "simple_ndcg",
        )
        parts = {key: [] for key in keys}
        n_pos_union = 0
        row_offset = 0
        with numba_threads(n_threads):
            for b in range(0, len(users), int(self.block_size)):
                block = users[b : b + int(self.block_size)]
                cands, X = self._candidate_features(
                    history_sources,
                    state,
                    (similarity, embeddings),
                    block,
                    data.user_map.ids[block],
                    cut.as_of[block],
                    settings,
                )
                rows = cands.rows()
                if impressions is None:
                    y = label_candidates(block[rows], cands.items, cut.future)
                    keep = np.ones(len(y), bool)
                else:
                    y, keep = label_from_impressions(
                        block[rows],
                        cands.items,
                        impressions,
                        cut.as_of,
                        data.user_map,
                        data.item_map,
                    )
                held = np.isin(block[rows], held_users)
                simple = np.full((len(y), len(names) + 1), np.nan, np.float32)
                simple[keep] = simple_ndcg_rows(
                    X[keep],
                    names_out,
                    rows[keep],
                    cands.items[keep],
                    y[keep],
                    int(self.validation_k),
                )
                sampled = sample_training_rows(
                    rows, block[rows], cands.items, y, held, self.negatives_per_user, seed
                )
                keep &= sampled.keep
                # a user none of whose candidates the sampling dropped can score the simple choices
                complete, in_sample = sampled.complete, sampled.in_sample
                n_pos_union += int(y.sum())
                for key, value in (
                    ("X", X),
                    ("y", y),
                    ("rows", rows + row_offset),
                    ("users", block[rows]),
                    ("items", cands.items),
                    ("validation", held),
                    ("complete", complete),
                    ("in_sample", in_sample),
                    ("simple_ndcg", simple),
                ):
                    parts[key].append(value[keep])
                row_offset += len(block)
        out = {key: np.concatenate(value) for key, value in parts.items()}
        times["training_candidates_and_features"] = time.perf_counter() - start
        n_future = int(np.diff(fut.indptr)[users].sum())
        summary = {
            "users": len(users),
            "rows": len(out["y"]),
            "positives": int(out["y"].sum()),
            "label_events": n_future,
            "candidate_recall": (n_pos_union / n_future) if n_future else float("nan"),
        }
        self._log(
            f"{len(users)} users, {summary['rows']} rows, {summary['positives']} positives; candidates "
            f"hold {summary['candidate_recall']:.1%} of the label events "
            f"({times['training_candidates_and_features']:.2f} s)"
        )
        return TrainingData(
            X=out["X"],
            y=out["y"],
            rows=out["rows"],
            users=out["users"],
            items=out["items"],
            feature_names=names_out,
            summary=summary,
            validation=out["validation"],
            complete=out["complete"],
            in_sample=out["in_sample"],
            simple_ndcg=out["simple_ndcg"],
        )

    def _fit_sources(self, templates, data, item_features) -> dict:
        fitted = {}
        for name, template in templates.items():
            model = _clone(template)
            params = model.get_params()
            serial = bool(self.deterministic) and {"random_state", "n_threads"} <= params.keys()
            if serial:
                model.set_params(n_threads=1)
            if (
                item_features is not None
                and "item_features" in inspect.signature(model.fit).parameters
            ):
                model.fit(data, item_features=item_features)
            else:
                model.fit(data)
            if serial:
                model.set_params(n_threads=params["n_threads"])
            fitted[name] = model
        return fitted

    def _similarity_inputs(self, sources):
        similarity = embeddings = None
        if self.similarity_source is not None and self.similarity_source in sources:
            similarity = prepare_similarity(sources[self.similarity_source])
        if self.embedding_source is not None and self.embedding_source in sources:
            embeddings = prepare_embeddings(sources[self.embedding_source])
        return similarity, embeddings

    def _candidates(
        self,
        sources,
        user_ids,
        quotas,
        n_candidates,
        depth,
        *,
        history=None,
        filter_seen=True,
        filter_items=None,
        items=None,
        k=0,
    ):
        target = max(n_candidates, k)
        item_map = next(
            iter(sources.values())
        ).item_map_  # every source is fitted on the same item map
        lists, scores = fetch_lists(
            sources,
            item_map,
            user_ids,
            history=history,
            depth=max(depth, target),
            filter_seen=filter_seen,
            filter_items=filter_items,
            items=items,
        )
        return merge_lists(
            lists, scores, quotas, target, self.rrf_k, resolve_n_threads(self.n_threads)
        )

    def _features(self, state, inputs, users, as_of, cands, windows, history=None):
        """The feature matrix of ``cands`` (rows: internal ``users`` or one new user's ``history``)
        as of ``as_of``, from ``state`` and the (similarity, embeddings) ``inputs``."""
        similarity, embeddings = inputs
        return build_features(
            state,
            users,
            as_of,
            cands,
            windows=windows,
            n_last=self.n_last,
            similarity=similarity,
            embeddings=embeddings,
            decay=self.genre_decay,
            history=history,
            n_threads=resolve_n_threads(self.n_threads),
        )

    def _candidate_features(self, sources, state, inputs, users, user_ids, as_of, settings):
        """The merged candidates of internal ``users`` (external ``user_ids``) and their features as
        of ``as_of``: what the ranker learns from (history sources) and scores (fitted sources)."""
        quotas, n_candidates, depth, windows = settings
        cands = self._candidates(sources, user_ids, quotas, n_candidates, depth)
        return cands, self._features(state, inputs, users, as_of, cands, windows)

    @staticmethod
    def _ranker_input(ranker, X, names):
        if getattr(ranker, "encoder", None) is not None:
            import pandas as pd

            return pd.DataFrame(X, columns=names)
        return X

    # ---- the recommend contract ------------------------------------------------------------------
    def candidates(self, user_ids, *, filter_seen=True, filter_items=None, items=None):
        """The merged candidates of known users (the first stage alone).

        Returns
        -------
        Candidates
            Row ``r`` is ``user_ids[r]``; ``items`` are INTERNAL item indices (``item_map_.ids[items]``
            gives the ids), with each source's score / rank, the number of sources and the fusion score.
        """
        self._check_fitted()
        user_idx = np.atleast_1d(
            np.asarray(self.user_map_.index(user_ids, name="user_id"), dtype=np.int64)
        )
        quotas, n_candidates, depth, _ = self._settings
        with numba_threads(resolve_n_threads(self.n_threads)):
            return self._candidates(
                self.sources_,
                self.user_map_.ids[user_idx],
                quotas,
                n_candidates,
                depth,
                filter_seen=filter_seen,
                filter_items=filter_items,
                items=items,
            )

    def features(self, user_ids):
        """The merged candidates of known users and their feature matrix (what the ranker scores).

        Returns
        -------
        cands : Candidates — row ``r`` is ``user_ids[r]`` (items are INTERNAL indices)
        X : float32 (n_candidates, len(feature_names_out_)), NaN = missing
        """
        self._check_fitted()
        user_idx = np.atleast_1d(
            np.asarray(self.user_map_.index(user_ids, name="user_id"), dtype=np.int64)
        )
        with numba_threads(resolve_n_threads(self.n_threads)):
            return self._candidate_features(
                self.sources_,
                self.state_,
                self._serving_inputs,
                user_idx,
                self.user_map_.ids[user_idx],
                self.as_of_[user_idx],
                self._settings,
            )

    def ranked_by(self) -> str:
        """What orders the candidates, in words: the ranker's class, ``"fusion only"`` or
        ``"<source> alone"``, with ``"(chosen on validation)"`` when the validation chose it."""
        self._check_fitted()
        if isinstance(self.ranker_, SourceOrder):
            what = f"{self.ranker_.source} alone"
        elif self.ranker_ is None:
            what = "fusion only"
        else:
            what = type(self.ranker_).__name__
        return what if self.selection_ is None else f"{what} (chosen on validation)"

    def serving_spec(self) -> ServingSpec:
        """What a serving path needs, read-only: the fitted sources and merge settings, what
        orders the candidates, the feature settings and arrays (see
        :class:`~recforge.pipeline.serving_spec.ServingSpec`).

        Examples
        --------
        >>> from recforge.datasets import movielens_small
        >>> from recforge.pipeline import TwoStage
        >>> from recforge.recall import ItemCF, Popularity
        >>> data = movielens_small().interactions().positives(4.0)
        >>> model = TwoStage({"popularity": Popularity(), "itemcf": ItemCF()}, quotas=10, ranker=None)
        >>> spec = model.fit(data).serving_spec()
        >>> spec.ranked_by, list(spec.sources), spec.n_candidates, spec.as_of.flags.writeable
        ('rrf', ['popularity', 'itemcf'], 20, False)
        """
        self._check_fitted()
        return serving_spec(self)

    def _check_fitted(self):
        if not hasattr(self, "sources_"):
            raise NotFittedError("this TwoStage is not fitted yet; call fit(interactions) first")

    def _score(self, X, cands):
        if self.ranker_ is None or len(X) == 0:
            return cands.rrf.astype(np.float32)
        return self._ranker_scores(self.ranker_, X, self.feature_names_out_)

    def _ranker_scores(self, ranker, X, names):
        """float32 (n,): the positive-class probability, or ``predict`` of a ranker without it."""
        X = self._ranker_input(ranker, X, names)
        if callable(getattr(ranker, "predict_proba", None)):
            return np.asarray(ranker.predict_proba(X), np.float32)[:, 1]
        return np.asarray(ranker.predict(X), np.float32).reshape(-1)

    def _rank_block(self, cands, users, as_of, k, history=None):
        from ..kernels.pipeline import segment_topk

        if self.ranker_ is None:
            scores = cands.rrf.astype(np.float32)
        else:
            X = self._features(
                self.state_, self._serving_inputs, users, as_of, cands, self._settings[3], history
            )
            scores = self._score(X, cands)
        out_items = np.empty((cands.n_rows, k), np.int64)
        out_scores = np.empty((cands.n_rows, k), np.float32)
        segment_topk(
            cands.offsets,
            cands.items,
            np.ascontiguousarray(scores, np.float32),
            k,
            out_items,
            out_scores,
            n_threads=resolve_n_threads(self.n_threads),
        )
        return out_items, out_scores

    def recommend(self, user_ids, k=10, *, filter_seen=True, filter_items=None, items=None):
        """Top-``k`` items for known users: their merged candidates ordered by the ranker.

        Parameters
        ----------
        user_ids : scalar or array-like of external user ids
        k : int >= 1
        filter_seen : bool, default True — drop the items each user interacted with in training
        filter_items : array-like of external item ids, optional — never recommend these
        items : array-like of external item ids, optional — recommend only among these

        Returns
        -------
        item_ids : ndarray (k,) or (n_users, k) — best first, ``-1`` (``None`` for string ids) pads
        scores : ndarray (k,) or (n_users, k), float32 — the ranker's probability (the fusion
            score without a ranker; ``1 / rank`` when a source was chosen on validation, see
            :class:`~recforge.pipeline.selection.SourceOrder`); ``-inf`` pads
        """
        self._check_fitted()
        k = check_int(k, "k", min_value=1)
        scalar = np.ndim(user_ids) == 0
        user_idx = np.atleast_1d(
            np.asarray(self.user_map_.index(user_ids, name="user_id"), dtype=np.int64)
        )
        quotas, n_candidates, depth, _ = self._settings
        out_items = np.empty((len(user_idx), k), np.int64)
        out_scores = np.empty((len(user_idx), k), np.float32)
        with numba_threads(resolve_n_threads(self.n_threads)):
            for b in range(0, len(user_idx), int(self.block_size)):
                block = user_idx[b : b + int(self.block_size)]
                cands = self._candidates(
                    self.sources_,
                    self.user_map_.ids[block],
                    quotas,
                    n_candidates,
                    depth,
                    filter_seen=filter_seen,
                    filter_items=filter_items,
                    items=items,
                    k=k,
                )
                idx, val = self._rank_block(cands, block, self.as_of_[block], k)
                out_items[b : b + len(block)] = idx
                out_scores[b : b + len(block)] = val
        return self._finish(out_items, out_scores, scalar)

    def recommend_from_history(
        self, item_ids, weights=None, k=10, *, filter_seen=True, filter_items=None, items=None
    ):
        """Top-``k`` items for a new user who interacted with ``item_ids`` (oldest first).

        The sources fold the history in (``recommend_from_history``); the features treat the
        history as events at the end of the training data, in the given order.

        Returns
        -------
        item_ids : ndarray (k,), scores : ndarray (k,) float32
        """
        self._check_fitted()
        k = check_int(k, "k", min_value=1)
        history = np.atleast_1d(np.asarray(item_ids))
        item_idx, w = history_indices(self.item_map_, item_ids, weights)
        quotas, n_candidates, depth, _ = self._settings
        now = float(self.state_.h_times.max()) if len(self.state_.h_times) else 0.0
        rows_history = (
            np.array([0, len(item_idx)], np.int64),
            item_idx,
            np.full(len(item_idx), now),
            w,
        )
        with numba_threads(resolve_n_threads(self.n_threads)):
            cands = self._candidates(
                self.sources_,
                None,
                quotas,
                n_candidates,
                depth,
                history=(history if history.size else [], None if weights is None else w),
                filter_seen=filter_seen,
                filter_items=filter_items,
                items=items,
                k=k,
            )
            idx, val = self._rank_block(cands, None, np.array([now]), k, history=rows_history)
        return self._finish(idx, val, scalar=True)

    def similar_items(self, item_ids, k=10, *, filter_items=None, items=None):
        """The ``k`` items most similar to each query item, from the ``similarity_source`` (else the first source
        that answers). Returns ``(item_ids, scores)`` like :meth:`recommend`."""
        self._check_fitted()
        names = list(self.sources_)
        if self.similarity_source in self.sources_:
            names.remove(self.similarity_source)
            names.insert(0, self.similarity_source)
        error = None
        for name in names:
            try:
                return self.sources_[name].similar_items(
                    item_ids, k=k, filter_items=filter_items, items=items
                )
            except NotImplementedError as exc:
                error = exc
        raise NotImplementedError(f"no source of this TwoStage implements similar_items ({error})")

    def _finish(self, idx, val, scalar):
        ids = self.item_map_.ids
        valid = idx >= 0
        if ids.dtype.kind in "iu":
            out = np.full(idx.shape, -1, dtype=np.int64)
        else:
            out = np.full(idx.shape, None, dtype=object)
        out[valid] = ids[idx[valid]]
        if scalar:
            return out[0], val[0]
        return out, val

    # ---- persistence ---------------------------------------------------------------------------
    def _json_params(self) -> dict:
        """The parameters as JSON: model objects become markers, rebuilt on load from the fitted models."""
        params = self.get_params()
        params["sources"] = None if self.sources is None else "given"
        if self.ranker is not None and not isinstance(self.ranker, str):
            params["ranker"] = "given"  # a list of settings too
        params["windows"] = [float(w) for w in np.atleast_1d(self.windows)]
        return params

    def save(self, file) -> None:
        """Write the whole fitted pipeline (sources, ranker, feature state) to ONE ``.npz`` file, no pickle."""
        from ..io import to_bytes

        self._check_fitted()
        arrays = {
            "user_ids": self.user_map_.ids,
            "item_ids": self.item_map_.ids,
            "as_of": self.as_of_,
        }
        arrays.update({f"state_{k}": v for k, v in self.state_.arrays().items()})
        classes = []
        for i, model in enumerate(self.sources_.values()):
            arrays[f"source_{i}"] = np.frombuffer(to_bytes(model.save), np.uint8)
            classes.append(type(model).__name__)
        trained = None if isinstance(self.ranker_, SourceOrder) else self.ranker_
        if trained is not None:
            arrays["ranker"] = np.frombuffer(to_bytes(trained.save), np.uint8)
        settings = self._fitted_settings if self._json_params()["ranker"] == "given" else []
        for i, setting in enumerate(settings):  # what load rebuilds the ``ranker`` parameter from
            arrays[f"ranker_setting_{i}"] = np.frombuffer(to_bytes(setting.save), np.uint8)
        meta = {
            "ranker_settings": [type(setting).__name__ for setting in settings],
            "ranker_is_list": isinstance(self.ranker, (list, tuple)),
            "source_names": list(self.sources_),
            "source_classes": classes,
            "ranker_class": None if trained is None else type(trained).__name__,
            "selection": self.selection_,
            "feature_names": self.feature_names_out_,
            "feature_groups": self.feature_groups_,
            "genre_names": self.state_.genre_names,
            "high": self.state_.high,
            "fit_times": self.fit_times_,
            "training_summary": self.training_summary_,
        }
        save_arrays(
            file,
            model_class=type(self).__name__,
            params=self._json_params(),
            arrays=arrays,
            meta=meta,
        )

    @classmethod
    def load(cls, file):
        """Read a pipeline written by :meth:`save`; a corrupt or foreign file raises ``ModelFileError``."""
        params, arrays, meta = load_arrays(
            file, expected_class=cls.__name__, required=("user_ids", "item_ids", "as_of")
        )
        with model_file_errors(file, cls.__name__):
            known = _known_classes()
            source_names = meta["source_names"]
            sources_param = params.pop("sources")
            ranker_param = params.pop("ranker")
            params["windows"] = tuple(params["windows"])
            user_map = IdMap(arrays.take("user_ids", kinds="iuU"))
            item_map = IdMap(arrays.take("item_ids", kinds="iuU"))
            n_users, n_items = len(user_map), len(item_map)

            def part(cls_name, array, what):
                if cls_name not in known:
                    raise ModelFileError(f"unknown {what} class {cls_name!r}")
                blob = arrays.take(array, kinds="u")
                return known[cls_name].load(_io.BytesIO(blob.tobytes()))

            sources = {
                name: part(cls_name, f"source_{i}", "source")
                for i, (name, cls_name) in enumerate(zip(source_names, meta["source_classes"]))
            }
            ranker = None
            if meta["ranker_class"] is not None:
                ranker = part(meta["ranker_class"], "ranker", "ranker")
            fitted_settings = [
                part(cls_name, f"ranker_setting_{i}", "ranker")
                for i, cls_name in enumerate(meta.get("ranker_settings", []))
            ]
            if ranker_param == "given":
                given = [_clone(setting) for setting in fitted_settings] or [_clone(ranker)]
                ranker_param = given if meta.get("ranker_is_list") else given[0]
            model = cls(
                sources=None
                if sources_param is None
                else {n: _clone(m) for n, m in sources.items()},
                ranker=ranker_param,
                **params,
            )
            names = list(sources)
            settings = model._validate(names)
            h_indptr, h_items, h_weights = check_csr_arrays(
                arrays.take("state_h_indptr", kinds="iu"),
                arrays.take("state_h_items", kinds="iu"),
                arrays.take("state_h_weights", dtype=np.float32),
                (n_users, n_items),
                "state_h",
            )
            state_arrays = {
                "h_indptr": h_indptr,
                "h_items": h_items.astype(np.int64, copy=False),
                "h_times": arrays.take("state_h_times", shape=(len(h_items),), dtype=np.float64),
                "h_weights": h_weights,
                "genres": arrays.take(
                    "state_genres", ndim=2, shape=(n_items, None), dtype=np.float32
                ),
            }
            model.state_ = AsOfState.from_arrays(
                state_arrays,
                n_users,
                n_items,
                meta["genre_names"],
                meta["high"],
                sequence_window=model.sequence_window,
            )
            model.as_of_ = arrays.take("as_of", shape=(n_users,), dtype=np.float64)
            model.sources_ = sources
            model.user_map_, model.item_map_ = user_map, item_map
            model.feature_names_out_ = list(meta["feature_names"])
            model.feature_groups_ = list(meta["feature_groups"])
            built = feature_names(names, settings[3], meta["genre_names"])[0]
            if model.feature_names_out_ != built:
                raise ModelFileError(
                    "the file's feature columns are not the ones this recforge builds "
                    "(saved by another version)"
                )
            model.fit_times_ = dict(meta["fit_times"])
            model.training_summary_ = dict(meta["training_summary"])
            model.selection_ = meta.get("selection")
            if model.selection_ is not None and model.selection_["kind"] == "source":
                if model.selection_["selected"] not in sources:
                    raise ModelFileError(
                        f"the selected source {model.selection_['selected']!r} is not in the file"
                    )
                ranker = SourceOrder(model.selection_["selected"], model.feature_names_out_)
            model.ranker_ = ranker
            model._fitted_settings = fitted_settings
            model._settings = tuple(settings)
            model._serving_inputs = model._similarity_inputs(sources)
        return model
