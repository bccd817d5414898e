"""Wide&Deep ranker (Cheng et al. 2016): a linear model on one-hot features and crosses plus a DNN,
summed into one logit and trained jointly."""

from __future__ import annotations

from .._validation import check_choice, check_float
from ._nn import _OPTIMIZERS, NeuralRanker, with_deep_parameters


class WideDeep(NeuralRanker):
    r"""Wide & Deep learning (Cheng et al. 2016, "Wide & Deep Learning for Recommender Systems").

    The logit is the sum of a wide linear part over the sparse features of the encoder's
    :meth:`~recforge.features.FeatureEncoder.transform` (standardised numerics, quantile buckets,
    one-hot categoricals and the feature ``crosses`` set on the encoder) and the deep part of
    :class:`~recforge.rank.DNN` (embeddings + ReLU MLP); one output bias. Both parts are trained
    jointly: every mini-batch back-propagates the same log-loss gradient into both. The wide part
    has its own optimiser — by default the deep one; ``wide_optimizer="ftrl"`` with ``wide_l1``
    gives the paper's FTRL-proximal + L1 recipe — and only the wide coordinates a batch touches
    are updated.

    Parameters
    ----------
    hidden_units, embedding_dim, embed_numeric, optimizer, learning_rate, l2, dropout, batch_size, epochs,
    early_stopping_rounds, callback, class_weight, random_state, n_threads, verbose
        As in :class:`~recforge.rank.DNN`.
    encoder : FeatureEncoder, optional
        Encodes raw columns; its ``crosses`` become the wide part's cross features. When None, a
        DataFrame with non-numeric (string, category) columns gets a default ``FeatureEncoder()``
        (``encoder_``, no crosses); numeric ``X`` is both the wide input and, standardised, the deep
        input.
    wide_optimizer : {None, "sgd", "adagrad", "adam", "ftrl"}, default None
        None = the deep part's ``optimizer``.
    wide_learning_rate : float > 0, optional
        None = ``learning_rate``.
    wide_l1, wide_l2 : float >= 0, default 0.0
        FTRL's L1 and L2 strengths (``wide_optimizer="ftrl"`` only).

    Attributes
    ----------
    As :class:`~recforge.rank.DNN`, and ``get_weights()["wide"]`` holds the wide weights
    (n_features,), named by ``encoder_.feature_names_out_``.

    Examples
    --------
    >>> from recforge.datasets import adult
    >>> from recforge.features import FeatureEncoder
    >>> from recforge.metrics import roc_auc_score
    >>> from recforge.rank import WideDeep
    >>> data = adult()
    >>> enc = FeatureEncoder(crosses=[("education", "occupation"), ("native_country", "occupation")])
    >>> model = WideDeep(encoder=enc, epochs=2, random_state=0).fit(data.X_train, data.y_train)
    >>> bool(roc_auc_score(data.y_test, model.predict_proba(data.X_test)[:, 1]) > 0.89)
    True
    """

    _has_wide = True

    @with_deep_parameters
    def __init__(
        self,
        *,
        wide_optimizer=None,
        wide_learning_rate=None,
        wide_l1=0.0,
        wide_l2=0.0,
        **deep_params,
    ):
        super().__init__(**deep_params)
        self.wide_optimizer = wide_optimizer
        self.wide_learning_rate = wide_learning_rate
        self.wide_l1 = wide_l1
        self.wide_l2 = wide_l2

    def _validate_params(self):
        super()._validate_params()
        if self.wide_optimizer is not None:
            check_choice(self.wide_optimizer, "wide_optimizer", set(_OPTIMIZERS))
        if self.wide_learning_rate is not None:
            check_float(
                self.wide_learning_rate, "wide_learning_rate", min_value=0.0, min_inclusive=False
            )
        check_float(self.wide_l1, "wide_l1", min_value=0.0)
        check_float(self.wide_l2, "wide_l2", min_value=0.0)

    def _wide_settings(self):
        opt = _OPTIMIZERS[self.wide_optimizer or self.optimizer]
        lr = float(
            self.learning_rate if self.wide_learning_rate is None else self.wide_learning_rate
        )
        if opt == _OPTIMIZERS["ftrl"]:
            return opt, lr, float(self.wide_l1), float(self.wide_l2)
        return opt, lr, 0.0, 0.0
