"""Scale-out on Dask (extra ``pip install "recforge[dask]"``): the same results as one machine.

* :func:`from_dask_dataframe` / :func:`from_parquet` → :class:`DaskInteractions`: global id maps,
  partitions of whole users on the workers, per-partition temporal / leave-last-k splits.
* :func:`batch_recommend`: any fitted recall model, shipped once to every worker as its ``.npz``
  bytes, scores a Dask collection of users → a Dask DataFrame (user, rank, item, score).
* :func:`evaluate_recall`: the single-machine report, computed partition by partition.
* :func:`fit_itemcf` / :func:`fit_usercf`: the co-occurrence similarity as a tree-reduced sum over
  partitions → an ordinary fitted ``ItemCF`` / ``UserCF``.
* :func:`fit_gbdt`: GBDT trees grown level by level by one task per worker, the rows on the
  workers, the histograms all-reduced between them and the same splits chosen on each → an
  ordinary fitted ``GBDTClassifier`` / ``GBDTRegressor``.
* :func:`build_training_frame` / :func:`fit_two_stage` / :func:`candidate_frame`: the two-stage
  pipeline's candidates, as-of features and labels built per user partition on the workers.

See ``docs/scale-out.md`` for what each step sends over the network. Example (a local cluster)::

    from distributed import Client, LocalCluster
    from recforge.distributed import from_parquet, batch_recommend, fit_itemcf
    client = Client(LocalCluster(n_workers=2, threads_per_worker=1))
    data = from_parquet("interactions/", client, user_col="user", item_col="item",
                        timestamp_col="ts")
    train, test = data.temporal_split(0.2)
    model = fit_itemcf(train, client, n_neighbors=50)
    batch_recommend(model, client, k=20).to_parquet("recs/")
"""

from ._compat import require_dask

require_dask()

from .evaluate import evaluate_recall  # noqa: E402
from .gbdt import fit_gbdt  # noqa: E402
from .interactions import DaskInteractions, from_dask_dataframe, from_parquet  # noqa: E402
from .neighbors import fit_itemcf, fit_usercf  # noqa: E402
from .pipeline import build_training_frame, candidate_frame, fit_two_stage  # noqa: E402
from .recommend import batch_recommend  # noqa: E402

__all__ = [
    "DaskInteractions",
    "batch_recommend",
    "build_training_frame",
    "candidate_frame",
    "evaluate_recall",
    "fit_gbdt",
    "fit_itemcf",
    "fit_two_stage",
    "fit_usercf",
    "from_dask_dataframe",
    "from_parquet",
]
