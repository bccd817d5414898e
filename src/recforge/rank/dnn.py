"""DNN ranker: embeddings of the categorical columns + standardised numerics -> ReLU MLP -> sigmoid."""

from __future__ import annotations

from ._nn import NeuralRanker


class DNN(NeuralRanker):
    r"""Deep neural network for click prediction, trained with mini-batch Adam, Adagrad or SGD on
    C++ kernels (scipy's BLAS for the dense layers' matrix products, sparse embedding updates).

    Every categorical column (and, with ``embed_numeric``, every numeric column's quantile bucket)
    goes through its own embedding table; the embeddings and the standardised numeric columns are
    concatenated into :math:`x_0` and fed through ReLU layers ``hidden_units`` and a linear output
    unit: :math:`p = \sigma(\mathrm{mlp}(x_0))`. Training minimises the weighted binary log-loss,
    averaged over each mini-batch, plus ``l2`` times the squared norm of the dense kernels (Keras'
    ``L2`` regulariser). Initialisation, optimiser formulas and defaults follow Keras (Glorot
    uniform kernels, U(-0.05, 0.05) embeddings, Adam with beta 0.9/0.999 and epsilon 1e-7,
    Adagrad with initial accumulator 0.1); only the embedding rows a batch uses are updated.

    Parameters
    ----------
    hidden_units : sequence of int, default (128, 64, 32)
    embedding_dim : int or dict column -> int, default 8
        Embedding width per column (a dict gives per-column widths, others 8).
    embed_numeric : bool, default True
        Also embed each numeric column's quantile bucket (the encoder's ``n_bins``) besides feeding
        its standardised value.
    optimizer : {"adam", "adagrad", "sgd"}, default "adam"
    learning_rate : float > 0, default 1e-3
    l2 : float >= 0, default 0.0
    dropout : float in [0, 1), default 0.0
        Inverted dropout on the hidden layers' outputs during training.
    batch_size : int >= 1, default 256
    epochs : int >= 1, default 5
    early_stopping_rounds : int >= 1, optional
        Stop when the AUC on the first ``eval_set`` has not improved for this many epochs and keep
        the weights of the best epoch (``best_iteration_``).
    callback : callable, optional
        ``callback(info)`` after each epoch with a dict ``epoch, train_loss, eval_auc``; returning
        True stops training.
    encoder : FeatureEncoder, optional
        Encodes raw columns (a DataFrame) inside the model; it decides which columns are categorical.
        When None, a DataFrame with non-numeric (string, category) columns gets a default
        ``FeatureEncoder()`` (``encoder_``); numeric input is used standardised with no embeddings.
    class_weight : None, "balanced" or dict, default None
    random_state : int, Generator or None, default None
        Initialisation and the shuffling of every epoch.
    n_threads : int, optional
        Threads (None = all cores). Training splits each mini-batch into fixed chunks of rows that
        the threads share (one BLAS thread each) and sums their gradients in chunk order;
        prediction and evaluation run row blocks in parallel. Results are bit-identical for a seed
        whatever ``n_threads``.
    verbose : bool, default False
        Progress bar with the running loss (and the eval AUC after each epoch).

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    embedding_columns_ : list of str
    n_iter_ : int
        Epochs run.
    loss_curve_ : list of float
        Mean training log-loss of each epoch (computed before each batch's update).
    evals_result_ : list of float
        AUC on the first ``eval_set`` after each epoch.
    best_iteration_ : int or None
    timings_ : dict
        ``"epochs"``: seconds of each epoch.

    Examples
    --------
    >>> from recforge.datasets import adult
    >>> from recforge.features import FeatureEncoder
    >>> from recforge.metrics import roc_auc_score
    >>> from recforge.rank import DNN
    >>> data = adult()
    >>> model = DNN(encoder=FeatureEncoder(), epochs=2, random_state=0).fit(data.X_train, data.y_train)
    >>> proba = model.predict_proba(data.X_test)[:, 1]
    >>> proba.shape
    (16281,)
    >>> bool(roc_auc_score(data.y_test, proba) > 0.89)
    True
    """
