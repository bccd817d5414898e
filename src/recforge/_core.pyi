"""Type stubs of the pybind11 module ``recforge._core`` (private: use the recforge Python API).

Generated with ``pybind11-stubgen recforge._core`` and cleaned by hand: integer and float
parameters as ``int`` / ``float``, arrays as ``NDArray[dtype]`` in the dtype the kernel works in.
Regenerate (and clean) after changing a binding in ``csrc/bindings``.
"""

from __future__ import annotations

from types import ModuleType
from typing import NamedTuple, overload

import numpy as np
from numpy.typing import NDArray

def _parallel_for_check(n_tasks: int, n_threads: int, fail_at: int = -1) -> tuple[int, int]:
    """Run parallel_for(n_tasks, n_threads) writing 2*t per task; returns (sum, largest thread id
    used).
    Task `fail_at` throws (→ ValueError). Private: for tests.
    """

def reset_team_health() -> None:
    """Forget parallel_team's crowded calls (a GBDT fit calls it first): no call pending solo, the
    next crowded call sends one call solo."""

def _team_size_for_load(loadavg: str, size: int, cpus: int) -> tuple[int, int]:
    """(runnable threads read from a /proc/loadavg text or -1, the size a team of `size` gets then
    on `cpus` cores: 1 runs solo). Private: for tests."""

def _team_load_check(on: bool) -> bool:
    """Switch parallel_team's reading of the machine's load on or off; returns the previous
    setting. Private: for tests."""

def _team_load_override(runnable: int) -> int:
    """Make parallel_team read `runnable` runnable threads instead of /proc/loadavg's (-1: read
    the machine's again); returns the previous setting. Private: for tests."""

def _takeover_helper_delay(ns: int) -> int:
    """Make run_chunks_with_takeover's helpers sleep `ns` nanoseconds after claiming each chunk
    (0: not at all), as a helper preempted on a busy core; returns the previous setting. Private:
    for tests."""

def _chunks_taken_over() -> int:
    """Chunks that run_chunks_with_takeover's callers have taken over from helpers so far.
    Private: for tests."""

def _team_health(record_crowded: int = 0) -> tuple[int, int]:
    """Record `record_crowded` crowded parallel_team calls, then return (calls left to run solo,
    the next solo window). Private: for tests."""

def _parallel_for_affine_check(
    n_steps: int, n_tasks: int, n_threads: int, fail_step: int = -1
) -> tuple[list[int], int, int]:
    """Run n_steps parallel_for_affine(n_tasks, n_threads) steps inside parallel_team(n_threads);
    returns (runs of each task, tasks run on a thread id outside [0, n_threads), tasks run by the
    thread that prefers them). Step `fail_step`'s last task throws (→ ValueError). Private: for
    tests."""

def _parallel_for_affine_groups_check(
    n_steps: int, n_groups: int, group_size: int, n_threads: int, fail_step: int = -1
) -> tuple[list[int], int, int, int]:
    """Run n_steps parallel_for_affine_groups(n_groups, group_size, n_threads) steps inside
    parallel_team(n_threads); returns (runs of each task (group-major), tasks run on a thread id
    outside [0, n_threads), tasks run by their group's owner, tasks a thread took out of order:
    own groups' ascending first, then the others' descending). Step `fail_step`'s last task
    throws (→ ValueError). Private: for tests."""

def _lingering_workers() -> int:
    """Pool workers spinning for the next job after a parallel_team call. Private: for tests."""

def _adaptive_schedule(on: bool) -> bool:
    """Switch the measured choice of the Hogwild trainers (word2vec, LFM) between their threads
    and the calling thread alone on or off (off: always their threads); returns the previous
    setting. Private: for benchmarks and tests."""

def _parallel_for_adaptive_check(
    n_tasks: int, n_threads: int, task_us: int, contended: bool, fail_at: int = -1
) -> tuple[list[int], int, int, int, int]:
    """Run parallel_for_adaptive(n_tasks, n_threads) on tasks of task_us microseconds of CPU
    time (if contended, 5x that for a task that follows one of another thread); returns (runs of
    each task, tasks run on a thread id outside [0, n_threads), tasks run while the caller ran
    alone, tasks run while the team did, switches). Task `fail_at` throws (→ ValueError).
    Private: for tests."""

def encoder_bucketize(
    x: NDArray[np.number], edges: NDArray[np.float64], out: NDArray[np.int64]
) -> None:
    """out[i] = 0 if x[i] is NaN else 1 + #{edges <= x[i]}; x (n,) any native int/float dtype and
    stride, edges (m,) float64 sorted, out (n,) int64 (in place)."""

def encoder_numeric_blocks(
    x: NDArray[np.number],
    edges: NDArray[np.float64],
    mean: float,
    scale: float,
    with_scaled: bool,
    off_scaled: int,
    cols_scaled: NDArray[np.int32] | NDArray[np.int64],
    vals_scaled: NDArray[np.float32],
    off_bins: int,
    cols_bins: NDArray[np.int32] | NDArray[np.int64],
) -> int:
    """A numeric column's scaled and bucket blocks in one pass (in place); returns the number of
    infinite values."""

def encoder_numeric_blocks_2d(
    X: NDArray[np.number],
    col_idx: NDArray[np.int64],
    edges: NDArray[np.float64],
    edge_ptr: NDArray[np.int64],
    mean: NDArray[np.float64],
    scale: NDArray[np.float64],
    scaled_row: NDArray[np.int64],
    val_row: NDArray[np.int64],
    off_scaled: NDArray[np.int64],
    bins_row: NDArray[np.int64],
    off_bins: NDArray[np.int64],
    cols: NDArray[np.int32] | NDArray[np.int64],
    vals: NDArray[np.float32],
    n_inf: NDArray[np.int64],
) -> None:
    """encoder_numeric_blocks for k columns of a 2-D array in one pass over its rows (in place;
    n_inf (k,) counts infinite values)."""

def encoder_assemble_csr(
    cols: NDArray[np.int32] | NDArray[np.int64],
    vals: NDArray[np.float32],
    val_row: NDArray[np.int64],
    indptr: NDArray[np.int32] | NDArray[np.int64],
    indices: NDArray[np.int32] | NDArray[np.int64],
    data: NDArray[np.float32],
) -> int:
    """Row-major CSR from per-block columns, dropping zero values (in place); returns nnz."""

def gbdt_add_leaf_values(
    rows: NDArray[np.int32],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    values: NDArray[np.float64],
    raw: NDArray[np.float64],
    n_threads: int = 1,
) -> None:
    """raw[rows[start:end]] += value for each leaf (in place)."""

def gbdt_add_split_leaf_values(
    Xn: NDArray[np.uint8],
    rows: NDArray[np.int32],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    feature: NDArray[np.int32],
    threshold: NDArray[np.int32],
    default_left: NDArray[np.uint8],
    is_categorical: NDArray[np.uint8],
    left_value: NDArray[np.float64],
    right_value: NDArray[np.float64],
    raw: NDArray[np.float64],
    n_threads: int = 1,
    cat_sets: NDArray[np.uint64] | None = None,
) -> None:
    """raw[rows[p]] += left or right leaf value of node k's split, p in [start_k, end_k) (in
    place).
    """

def gbdt_add_tree_values_binned(
    Xb: NDArray[np.uint8],
    rows: NDArray[np.int32],
    feature: NDArray[np.int32],
    threshold_bin: NDArray[np.int32],
    default_left: NDArray[np.uint8],
    is_categorical: NDArray[np.uint8],
    cat_set: NDArray[np.uint64],
    left: NDArray[np.int32],
    right: NDArray[np.int32],
    value: NDArray[np.float64],
    raw: NDArray[np.float64],
    n_threads: int = 1,
) -> None:
    """raw[r] += the leaf value one tree gives binned row Xb[r], r in rows (in place)."""

def gbdt_apply(
    X: NDArray[np.float32],
    feature: NDArray[np.int32],
    threshold: NDArray[np.float32],
    left: NDArray[np.int32],
    right: NDArray[np.int32],
    default_left: NDArray[np.uint8],
    categorical: NDArray[np.uint8],
    value: NDArray[np.float64],
    roots: NDArray[np.int64],
    t0: int,
    t1: int,
    n_threads: int = 1,
    cat_count: NDArray[np.int32] | None = None,
    cat_codes: NDArray[np.float32] | None = None,
) -> NDArray[np.int32]:
    """Leaf node index (within its tree) per row and tree -> int32 (n, t1 - t0)."""

def gbdt_bin_features(
    X: NDArray[np.float32],
    edges: NDArray[np.float32],
    offsets: NDArray[np.int64],
    is_categorical: NDArray[np.uint8],
    n_threads: int = 1,
) -> NDArray[np.uint8]:
    """Bin float32 X (n, F) by per-feature sorted edges -> uint8 (n, F); NaN -> 255."""

def gbdt_bundle_columns(
    X: NDArray[np.uint8],
    plain: NDArray[np.int32],
    member: NDArray[np.int32],
    common_bin: NDArray[np.uint8],
    bundle_of: NDArray[np.int32],
    code_of: NDArray[np.int32],
    n_bundles: int,
    n_threads: int = 1,
) -> NDArray[np.uint8]:
    """The bundled matrix of binned X: its plain columns, then one column per bundle -> uint8
    (n, n_plain + n_bundles)."""

def gbdt_bundle_exclusive(
    X: NDArray[np.uint8],
    candidates: NDArray[np.int32],
    max_members: int,
    n_threads: int = 1,
) -> tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.uint8], NDArray[np.uint8], int]:
    """Exclusive bundles of the columns candidates (at most two value bins) of binned X ->
    (bundle_of (-1: not bundled), code_of, common_bin, constant, n_bundles)."""

def gbdt_sort_values(values: NDArray[np.float32]) -> NDArray[np.float32]:
    """float32 values (n,), no NaN, sorted ascending (a radix sort; -0.0 before 0.0)."""

def gbdt_two_valued_columns(
    X: NDArray[np.float32],
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """Per column of float32 X: (upper, two_valued): whether it holds at most two values besides
    NaN, and the larger of two (NaN: fewer)."""

def gbdt_build_child_histograms(
    Xn: NDArray[np.uint8],
    ghn: NDArray[np.float32],
    parent_hist: NDArray[np.float64],
    c_starts: NDArray[np.int64],
    c_ends: NDArray[np.int64],
    feature_mask: NDArray[np.uint8] | None = None,
    n_threads: int = 1,
) -> NDArray[np.float64]:
    """Children (2 per parent, node-ordered rows) histograms: smaller built, larger = parent -
    smaller.
    """

def gbdt_build_histograms(
    X_binned: NDArray[np.uint8],
    gh: NDArray[np.float32],
    rows: NDArray[np.int32] | None,
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    feature_mask: NDArray[np.uint8] | None = None,
    n_threads: int = 1,
) -> NDArray[np.float64]:
    """(g, h) sums per node, feature and bin -> float64 (n_nodes, F, 256, 2)."""

def gbdt_find_splits(
    hist: NDArray[np.float64],
    sum_g: NDArray[np.float64],
    sum_h: NDArray[np.float64],
    n_bins: NDArray[np.int32],
    is_categorical: NDArray[np.uint8],
    feature_mask: NDArray[np.uint8] | None = None,
    reg_lambda: float = 1.0,
    gamma: float = 0.0,
    min_child_weight: float = 1.0,
    n_threads: int = 1,
    max_cat_to_onehot: int = 256,
    max_cat_threshold: int = 32,
    cat_smooth: float = 10.0,
    cat_l2: float = 0.0,
    min_group_weight: float = 0.0,
    min_category_weight: float = 0.0,
    split_rank: NDArray[np.int32] | None = None,
) -> GBDTSplits:
    """Best split per node -> GBDTSplits; categorical features with more than max_cat_to_onehot
    bins by a sorted partition."""

def gbdt_gradients(
    objective: int,
    raw: NDArray[np.float64],
    y: NDArray[np.float32],
    weight: NDArray[np.float32] | None,
    gh: NDArray[np.float32],
    n_threads: int = 1,
) -> None:
    """Fill gh (n, 2) float32 with gradient/hessian of the objective at raw margins."""

def gbdt_gradients_at(
    objective: int,
    raw: NDArray[np.float64],
    y: NDArray[np.float32],
    weight: NDArray[np.float32] | None,
    rows: NDArray[np.int32],
    ghn: NDArray[np.float32],
    n_threads: int = 1,
) -> None:
    """Fill ghn (m, 2) float32 with gradient/hessian of rows[p] (gathered gradients, node order)."""

def gbdt_partition_ordered(
    Xn: NDArray[np.uint8],
    ghn: NDArray[np.float32],
    rows: NDArray[np.int32],
    scratch_X: NDArray[np.uint8],
    scratch_gh: NDArray[np.float32],
    scratch_rows: NDArray[np.int32],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    feature: NDArray[np.int32],
    threshold: NDArray[np.int32],
    default_left: NDArray[np.uint8],
    is_categorical: NDArray[np.uint8],
    n_threads: int = 1,
    into_scratch: bool = False,
    cat_sets: NDArray[np.uint64] | None = None,
) -> NDArray[np.int64]:
    """Stable partition of node-ordered data (binned rows, gradients, row ids), in place or
    (into_scratch)
    into the scratch buffers -> n_left.
    """

def gbdt_predict_raw(
    X: NDArray[np.float32],
    feature: NDArray[np.int32],
    threshold: NDArray[np.float32],
    left: NDArray[np.int32],
    right: NDArray[np.int32],
    default_left: NDArray[np.uint8],
    categorical: NDArray[np.uint8],
    value: NDArray[np.float64],
    roots: NDArray[np.int64],
    t0: int,
    t1: int,
    out: NDArray[np.float64],
    n_threads: int = 1,
    cat_count: NDArray[np.int32] | None = None,
    cat_codes: NDArray[np.float32] | None = None,
) -> None:
    """out += sum of leaf values of trees [t0, t1) (in place); cat_count (n_nodes,) and cat_codes:
    the partition splits' left category codes."""

def hardware_concurrency() -> int:
    """Number of hardware threads std::thread reports (0 if unknown)."""

def lfm_step(
    user_factors: NDArray[np.float32],
    item_factors: NDArray[np.float32],
    item_bias: NDArray[np.float32],
    u: int,
    i: int,
    j: int,
    label: float,
    loss: int,
    lr: float,
    reg_user: float,
    reg_item: float,
    reg_bias: float,
    fit_bias: bool,
) -> float:
    """One SGD step (pointwise on (u, i, label), or BPR on (u, i, j)); returns the loss before
    it.
    """

def lfm_initial_factors(
    out: NDArray[np.float32], half_width: float, seed: int, n_threads: int
) -> None:
    """Fill out (n_rows, k) float32 uniform on [-half_width, half_width) in place; the same values
    for any n_threads.
    """

class LfmEpochResult(NamedTuple):
    """One LFM epoch: the loss sum (before each step, regularisation excluded) over n_terms loss
    terms; n_skipped negatives given up on."""

    loss_sum: float
    n_terms: int
    n_skipped: int

class LfmSampler:
    """What the LFM epochs of one fit sample from: positives, touched rows, negative weights.
    Holds the arrays; they must not change while it lives."""

    def __init__(
        self,
        pos_users: NDArray[np.int32],
        pos_items: NDArray[np.int32],
        touched_indptr: NDArray[np.int64],
        touched_indices: NDArray[np.int32],
        neg_weights: NDArray[np.float64],
        n_users: int,
        touched_check: int = -1,
    ) -> None:
        """touched_check: -1 automatic, 0 binary search of the touched rows, 1 bit matrix."""

    def epoch(
        self,
        user_factors: NDArray[np.float32],
        item_factors: NDArray[np.float32],
        item_bias: NDArray[np.float32],
        n_steps: int,
        loss: int,
        lr: float,
        reg_user: float,
        reg_item: float,
        reg_bias: float,
        fit_bias: bool,
        n_negatives: int,
        seed: int,
        n_threads: int,
    ) -> LfmEpochResult:
        """One Hogwild SGD epoch of the latent factor model; factors updated in place."""

    @property
    def uses_touched_bits(self) -> bool:
        """Whether the touched check is a bit matrix (else binary search)."""

def neighbors_cooccurrence_counts(
    a_indptr: NDArray[np.int64],
    a_indices: NDArray[np.int32],
    b_indptr: NDArray[np.int64],
    b_indices: NDArray[np.int32],
    row_start: int,
    row_stop: int,
    n_threads: int,
    counts: NDArray[np.int64],
) -> None:
    """Distinct co-occurring rows b != a of rows [row_start, row_stop)."""

def neighbors_cooccurrence_fill(
    a_indptr: NDArray[np.int64],
    a_indices: NDArray[np.int32],
    b_indptr: NDArray[np.int64],
    b_indices: NDArray[np.int32],
    penalty: NDArray[np.float64],
    row_start: int,
    row_stop: int,
    n_threads: int,
    indptr: NDArray[np.int64],
    out_indices: NDArray[np.int32],
    out_data: NDArray[np.float64],
) -> None:
    """Un-normalised co-occurrence numerators of rows [row_start, row_stop) into CSR arrays."""

def neighbors_cooccurrence_pairs(
    a_indptr: NDArray[np.int64],
    a_indices: NDArray[np.int32],
    b_indptr: NDArray[np.int64],
    b_indices: NDArray[np.int32],
    penalty: NDArray[np.float64],
    norm: NDArray[np.float64],
    k: int,
    row_start: int,
    row_stop: int,
    n_threads: int,
    heap_val: NDArray[np.float32],
    heap_idx: NDArray[np.int32],
    heap_cnt: NDArray[np.int64],
    heap_min: NDArray[np.float32],
) -> None:
    """Pairs (a, b < a) of rows [row_start, row_stop) offered to each row's bounded heap (one per
    row, shared by the threads)."""

def neighbors_cooccurrence_rows(
    a_indptr: NDArray[np.int64],
    a_indices: NDArray[np.int32],
    b_indptr: NDArray[np.int64],
    b_indices: NDArray[np.int32],
    penalty: NDArray[np.float64],
    norm: NDArray[np.float64],
    k: int,
    row_start: int,
    row_stop: int,
    n_threads: int,
    out_idx: NDArray[np.int32],
    out_val: NDArray[np.float32],
    counts: NDArray[np.int64],
) -> None:
    """Rows [row_start, row_stop) of the penalised co-occurrence cosine top-k, row by row, into
    out_idx int32 / out_val float32 (n_rows * k) and counts int64 (n_rows,).
    """

def neighbors_merge_heaps(
    heap_val: NDArray[np.float32],
    heap_idx: NDArray[np.int32],
    heap_cnt: NDArray[np.int64],
    n_rows: int,
    k: int,
    n_threads: int,
    out_idx: NDArray[np.int32],
    out_val: NDArray[np.float32],
    counts: NDArray[np.int64],
) -> None:
    """Write each row's heap (one per row, shared by the pair kernel's threads) best first."""

def neighbors_topk_csr_rows(
    indptr: NDArray[np.int64],
    indices: NDArray[np.int32],
    data: NDArray[np.float64],
    row_start: int,
    norm: NDArray[np.float64],
    k: int,
    n_threads: int,
    out_idx: NDArray[np.int32],
    out_val: NDArray[np.float32],
    counts: NDArray[np.int64],
) -> None:
    """Top-k similarities of each row of summed numerators."""

def neighbors_two_hop_scores(
    rows: NDArray[np.int64],
    q_indptr: NDArray[np.int64],
    q_indices: NDArray[np.int32],
    q_data: NDArray[np.float32],
    n_indptr: NDArray[np.int64],
    n_indices: NDArray[np.int32],
    n_data: NDArray[np.float32],
    n_items: int,
    n_threads: int,
) -> NDArray[np.float32]:
    """Dense float32 scores (Q @ N)[rows] (len(rows), n_items)."""

def neighbors_two_hop_topk(
    rows: NDArray[np.int64],
    q_indptr: NDArray[np.int64],
    q_indices: NDArray[np.int32],
    q_data: NDArray[np.float32],
    n_indptr: NDArray[np.int64],
    n_indices: NDArray[np.int32],
    n_data: NDArray[np.float32],
    n_items: int,
    ex_indptr: NDArray[np.int64],
    ex_indices: NDArray[np.int32],
    mask: NDArray[np.uint8],
    k: int,
    n_threads: int,
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Top-k of (Q @ N)[rows] with exclusions and a mask, without a dense block: (indices int64
    (len(rows), k), scores float32 (len(rows), k)).
    """

def sgns_sigmoid(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """The trainer's table sigmoid, for tests."""

def sgns_step(
    in_vecs: NDArray[np.float32],
    out_vecs: NDArray[np.float32],
    center: int,
    contexts: NDArray[np.int32],
    negatives: NDArray[np.int32],
    lr: float,
    cbow: bool,
    shared_negatives: bool,
) -> None:
    """One negative-sampling update on fixed negatives (skip-gram: one pair per context, in
    order, or with shared_negatives the window's contexts as one block).
    """

def sgns_train_epoch(
    offsets: NDArray[np.int64],
    items: NDArray[np.int32],
    keep_prob: NDArray[np.float32] | None,
    neg_weights: NDArray[np.float64],
    in_vecs: NDArray[np.float32],
    out_vecs: NDArray[np.float32],
    window: int,
    negative: int,
    cbow: bool,
    basket: bool,
    shared_negatives: bool,
    alpha_start: float,
    alpha_end: float,
    seed: int,
    n_threads: int,
) -> int:
    """One word2vec negative-sampling epoch (skip-gram or CBOW) over sequences, updating
    in_vecs/out_vecs in place. Returns the number of words trained on after subsampling.
    """

@overload
def topk_rows(  # type: ignore[overload-overlap]
    scores: NDArray[np.float32],
    k: int,
    exclude_indptr: NDArray[np.int64] | None = None,
    exclude_indices: NDArray[np.int32] | None = None,
    global_mask: NDArray[np.uint8] | None = None,
    n_threads: int = 1,
) -> tuple[NDArray[np.int64], NDArray[np.float32], int]:
    """Best k items per row of scores (n_rows, n_items), higher first, ties by lower index.
    Excluded, NaN and -inf items are skipped; rows are padded with -1 / -inf.
    Returns (indices int64 (n_rows, k), scores (n_rows, k), number of NaN scores).
    """

@overload
def topk_rows(
    scores: NDArray[np.float64],
    k: int,
    exclude_indptr: NDArray[np.int64] | None = None,
    exclude_indices: NDArray[np.int32] | None = None,
    global_mask: NDArray[np.uint8] | None = None,
    n_threads: int = 1,
) -> tuple[NDArray[np.int64], NDArray[np.float64], int]:
    """Best k items per row of scores (n_rows, n_items), higher first, ties by lower index.
    Excluded, NaN and -inf items are skipped; rows are padded with -1 / -inf.
    Returns (indices int64 (n_rows, k), scores (n_rows, k), number of NaN scores).
    """

constants: ModuleType
"""Constants shared by the C++ kernels and Python (missing bin, bin count, objective codes)."""

class GBDTSplits(NamedTuple):
    """Best split per node (each field (n_nodes,), cat_set (n_nodes, 4)); feature -1: no split;
    threshold -1 and cat_set the left bins for a categorical partition split."""

    feature: NDArray[np.int32]
    threshold: NDArray[np.int32]
    default_left: NDArray[np.uint8]
    loss_chg: NDArray[np.float64]
    left_g: NDArray[np.float64]
    left_h: NDArray[np.float64]
    cat_set: NDArray[np.uint64]

class GBDTLeafwiseTree(NamedTuple):
    """One best-first tree: node arrays, each leaf's node and positions in the node-ordered data."""

    nodes: dict[str, NDArray]
    leaf_node: NDArray[np.int32]
    leaf_start: NDArray[np.int64]
    leaf_end: NDArray[np.int64]
    swapped: bool

def gbdt_grow_depthwise(
    Xn: NDArray[np.uint8],
    ghn: NDArray[np.float32],
    rows: NDArray[np.int32],
    other_X: NDArray[np.uint8],
    other_gh: NDArray[np.float32],
    other_rows: NDArray[np.int32],
    n_bins: NDArray[np.int32],
    is_categorical: NDArray[np.uint8],
    feature_mask: NDArray[np.uint8] | None,
    max_depth: int,
    min_child_weight: float,
    reg_lambda: float,
    gamma: float,
    learning_rate: float,
    swap_rows: int,
    hist_ws: NDArray[np.float64],
    raw: NDArray[np.float64],
    n_threads: int = 1,
    max_cat_to_onehot: int = 256,
    max_cat_threshold: int = 32,
    cat_smooth: float = 10.0,
    cat_l2: float = 0.0,
    min_group_weight: float = 0.0,
    min_category_weight: float = 0.0,
    split_rank: NDArray[np.int32] | None = None,
    next_objective: int = -1,
    y: NDArray[np.float32] | None = None,
    weight: NDArray[np.float32] | None = None,
    threshold_table: NDArray[np.float32] | None = None,
) -> tuple[dict[str, NDArray], bool]:
    """Grow one depth-wise tree on node-ordered data and add its leaf values to raw (with
    next_objective >= 0, y and weight by row id as raw: then replace each row's (g, h) by its
    gradient pair at the new margin) -> (node arrays, swapped: the data ended in the other
    buffers). With threshold_table (a bin mapper's (F, 257) float32), the node arrays also hold
    each split's raw threshold and categorical flag (0 on leaves)."""

def gbdt_grow_leafwise(
    Xn: NDArray[np.uint8],
    ghn: NDArray[np.float32],
    rows: NDArray[np.int32],
    other_X: NDArray[np.uint8],
    other_gh: NDArray[np.float32],
    other_rows: NDArray[np.int32],
    n_bins: NDArray[np.int32],
    is_categorical: NDArray[np.uint8],
    feature_mask: NDArray[np.uint8] | None,
    max_leaves: int,
    max_depth: int,
    min_child_weight: float,
    reg_lambda: float,
    gamma: float,
    learning_rate: float,
    swap_rows: int,
    index_bytes: int,
    n_threads: int = 1,
    max_cat_to_onehot: int = 256,
    max_cat_threshold: int = 32,
    cat_smooth: float = 10.0,
    cat_l2: float = 0.0,
    min_group_weight: float = 0.0,
    min_category_weight: float = 0.0,
    split_rank: NDArray[np.int32] | None = None,
    raw: NDArray[np.float64] | None = None,
    next_objective: int = -1,
    y: NDArray[np.float32] | None = None,
    weight: NDArray[np.float32] | None = None,
    threshold_table: NDArray[np.float32] | None = None,
) -> GBDTLeafwiseTree:
    """Grow one best-first tree (max_depth < 0: no depth limit; data below index_bytes moves once,
    at the end) on node-ordered data; with raw, add its leaf values to raw[rows], and with
    next_objective >= 0 (y, weight: by row id as raw), replace each row's (g, h) by its gradient
    pair at the new margin. With threshold_table (a bin mapper's (F, 257) float32), the node
    arrays also hold each split's raw threshold and categorical flag (0 on leaves)."""

def gbdt_rank_gradients(
    objective: int,
    raw: NDArray[np.float64],
    y: NDArray[np.float32],
    group_ptr: NDArray[np.int64],
    group_weight: NDArray[np.float32] | None,
    gh: NDArray[np.float32],
    top_k: int = 32,
    normalize: bool = True,
    score_normalize: bool = True,
    exp_gain: bool = True,
    n_threads: int = 1,
) -> None:
    """Fill gh (n, 2) float32 with the LambdaMART gradient/hessian of rank:pairwise or rank:ndcg
    per query group (rows group_ptr[g]:group_ptr[g+1]); see rank_objective.hpp."""

LINEAR_MAX_ABS_MARGIN: float
LINEAR_CHUNK_ROWS: int

def linear_loss_grad_dense(
    X: NDArray[np.float32] | NDArray[np.float64],
    y: NDArray[np.float64],
    sw: NDArray[np.float64],
    w: NDArray[np.float64],
    b: float,
    lo: int,
    hi: int,
    g: NDArray[np.float64],
) -> float:
    """Weighted logistic loss of rows lo:hi of dense X (n, d), float32/float64, C order; g (d + 1,)
    float64 overwritten with the gradient sums (intercept last). Returns the loss sum."""

def linear_loss_grad_csr(
    indptr: NDArray[np.int32] | NDArray[np.int64],
    indices: NDArray[np.uint16] | NDArray[np.int32] | NDArray[np.int64],
    data: NDArray[np.float32] | NDArray[np.float64],
    y: NDArray[np.float64],
    sw: NDArray[np.float64],
    w: NDArray[np.float64],
    b: float,
    lo: int,
    hi: int,
    g: NDArray[np.float64],
) -> float:
    """linear_loss_grad_dense for a CSR matrix; d = len(g) - 1."""

def linear_loss_grad_pattern(
    indptr: NDArray[np.int32] | NDArray[np.int64],
    indices: NDArray[np.uint16] | NDArray[np.int32] | NDArray[np.int64],
    y: NDArray[np.float64],
    sw: NDArray[np.float64],
    w: NDArray[np.float64],
    b: float,
    lo: int,
    hi: int,
    g: NDArray[np.float64],
) -> float:
    """linear_loss_grad_csr for a CSR matrix whose stored values are all 1 (reads the pattern
    only)."""

def linear_release_pass_inputs() -> None:
    """Wait until no helper thread of an earlier linear_loss_grad_*_chunks call reads its inputs,
    and release them (call it when a run of passes, an L-BFGS fit, ends)."""

def linear_loss_grad_dense_chunks(
    X: NDArray[np.float32] | NDArray[np.float64],
    y: NDArray[np.float64],
    sw: NDArray[np.float64],
    w: NDArray[np.float64],
    b: float,
    bounds: NDArray[np.int64],
    partial: NDArray[np.float64],
    losses: NDArray[np.float64],
    n_threads: int,
) -> None:
    """linear_loss_grad_dense of every row chunk c = bounds[c]:bounds[c + 1] (bounds int64,
    n_chunks + 1 non-decreasing): partial[c] (n_chunks, d + 1) float64 its gradient sums,
    losses[c] (n_chunks,) float64 its loss sum; the chunks on the caller and up to n_threads - 1
    helper threads, a helper's chunk redone by the caller rather than waited for, the results
    independent of them (see linear_release_pass_inputs)."""

def linear_loss_grad_csr_chunks(
    indptr: NDArray[np.int32] | NDArray[np.int64],
    indices: NDArray[np.uint16] | NDArray[np.int32] | NDArray[np.int64],
    data: NDArray[np.float32] | NDArray[np.float64],
    y: NDArray[np.float64],
    sw: NDArray[np.float64],
    w: NDArray[np.float64],
    b: float,
    bounds: NDArray[np.int64],
    partial: NDArray[np.float64],
    losses: NDArray[np.float64],
    n_threads: int,
) -> None:
    """linear_loss_grad_dense_chunks for a CSR matrix; d = len(w)."""

def linear_loss_grad_pattern_chunks(
    indptr: NDArray[np.int32] | NDArray[np.int64],
    indices: NDArray[np.uint16] | NDArray[np.int32] | NDArray[np.int64],
    y: NDArray[np.float64],
    sw: NDArray[np.float64],
    w: NDArray[np.float64],
    b: float,
    bounds: NDArray[np.int64],
    partial: NDArray[np.float64],
    losses: NDArray[np.float64],
    n_threads: int,
) -> None:
    """linear_loss_grad_csr_chunks for a CSR matrix whose stored values are all 1 (reads the
    pattern only)."""

def linear_margins_dense(
    X: NDArray[np.float32] | NDArray[np.float64],
    w: NDArray[np.float64],
    b: float,
    lo: int,
    hi: int,
    out: NDArray[np.float64],
    n_threads: int = 1,
) -> None:
    """out[lo:hi] = X[lo:hi] @ w + b (float64) for dense X, in row chunks on up to n_threads
    threads (fewer on a loaded machine; the same values on any)."""

def linear_margins_csr(
    indptr: NDArray[np.int32] | NDArray[np.int64],
    indices: NDArray[np.uint16] | NDArray[np.int32] | NDArray[np.int64],
    data: NDArray[np.float32] | NDArray[np.float64],
    w: NDArray[np.float64],
    b: float,
    lo: int,
    hi: int,
    out: NDArray[np.float64],
    n_threads: int = 1,
) -> None:
    """out[lo:hi] = X[lo:hi] @ w + b (float64) for a CSR matrix, in row chunks on up to n_threads
    threads (fewer on a loaded machine; the same values on any)."""

def linear_all_ones(data: NDArray[np.float32] | NDArray[np.float64]) -> bool:
    """True when every value of the 1-D float32/float64 array is 1."""

def _linear_exp_neg(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """exp(-a) of each value by the kernels' own polynomial (0 <= a <= LINEAR_MAX_ABS_MARGIN).
    Private: for tests."""

def _linear_log1p_unit(e: NDArray[np.float64]) -> NDArray[np.float64]:
    """log(1 + e) of each value by the kernels' own series (0 <= e <= 1). Private: for tests."""

# -- neural rankers (csrc/bindings/bind_nn.cpp) -----------------------------------------------------

NN_TRAIN_CHUNK_ROWS: int
NN_UPDATE_BLOCK: int
NN_LATE_CHUNK_FACTOR: int
NN_FIRST_LATE_NS: int

def nn_predict_logits(
    codes: NDArray[np.int32],
    dense: NDArray[np.float32],
    lo: int,
    hi: int,
    col_flat_off: NDArray[np.int64],
    col_row_off: NDArray[np.int64],
    col_dim: NDArray[np.int64],
    col_in_off: NDArray[np.int64],
    emb: NDArray[np.float32],
    sizes: NDArray[np.int64],
    params: NDArray[np.float32],
    has_wide: bool,
    w_indptr: NDArray[np.int32] | NDArray[np.int64],
    w_indices: NDArray[np.int32],
    w_data: NDArray[np.float32],
    wide_w: NDArray[np.float32],
    chunk: int,
    out: NDArray[np.float64],
    n_threads: int = 1,
) -> None:
    """out[lo:hi] = the logits (float64) of rows lo..hi-1 of a DNN / Wide&Deep model, in blocks
    of `chunk` rows on up to n_threads threads (the same values on any; BLAS must run one thread
    per call: see recforge._threads.limit_blas_threads)."""

def nn_train_batches(
    codes: NDArray[np.int32],
    dense: NDArray[np.float32],
    y: NDArray[np.float64],
    sw: NDArray[np.float64],
    order: NDArray[np.int64],
    start: int,
    stop: int,
    batch_size: int,
    col_flat_off: NDArray[np.int64],
    col_row_off: NDArray[np.int64],
    col_dim: NDArray[np.int64],
    col_in_off: NDArray[np.int64],
    emb: NDArray[np.float32],
    emb_m: NDArray[np.float32],
    emb_v: NDArray[np.float32],
    sizes: NDArray[np.int64],
    params: NDArray[np.float32],
    p_m: NDArray[np.float32],
    p_v: NDArray[np.float32],
    has_wide: bool,
    w_indptr: NDArray[np.int32] | NDArray[np.int64],
    w_indices: NDArray[np.int32],
    w_data: NDArray[np.float32],
    wide_w: NDArray[np.float32],
    wide_m: NDArray[np.float32],
    wide_v: NDArray[np.float32],
    opt: int,
    lr: float,
    b1: float,
    b2: float,
    eps: float,
    l2: float,
    wide_opt: int,
    wide_lr: float,
    wide_l1: float,
    wide_l2: float,
    step: NDArray[np.int64],
    dropout: float = 0.0,
    dropout_seed: int = 0,
    n_workers: int = 1,
) -> float:
    """Train on the rows order[start:stop] in mini-batches of batch_size (in place); returns the
    summed weighted log-loss (float64) of those rows before each batch's update. See
    recforge.kernels.nn.train_batches."""

def nn_loss_grad(
    codes: NDArray[np.int32],
    dense: NDArray[np.float32],
    y: NDArray[np.float64],
    sw: NDArray[np.float64],
    rows: NDArray[np.int64],
    col_flat_off: NDArray[np.int64],
    col_row_off: NDArray[np.int64],
    col_dim: NDArray[np.int64],
    col_in_off: NDArray[np.int64],
    emb: NDArray[np.float32],
    sizes: NDArray[np.int64],
    params: NDArray[np.float32],
    has_wide: bool,
    w_indptr: NDArray[np.int32] | NDArray[np.int64],
    w_indices: NDArray[np.int32],
    w_data: NDArray[np.float32],
    wide_w: NDArray[np.float32],
    l2: float,
    grads: NDArray[np.float32],
    emb_grad: NDArray[np.float32],
    wide_grad: NDArray[np.float32],
) -> float:
    """Loss of one batch (rows) and its gradients in grads, emb_grad and wide_grad, without
    updating anything. See recforge.kernels.nn.loss_grad."""

def _nn_update(
    p: NDArray[np.float32],
    g: NDArray[np.float32],
    m: NDArray[np.float32],
    v: NDArray[np.float32],
    opt: int,
    lr: float,
    alpha: float,
    b1: float,
    b2: float,
    eps: float,
    l1: float,
    l2: float,
) -> None:
    """One optimiser step in place. Private: for tests."""

def _nn_gather_inputs(
    codes: NDArray[np.int32],
    dense: NDArray[np.float32],
    rows: NDArray[np.int64],
    col_flat_off: NDArray[np.int64],
    col_row_off: NDArray[np.int64],
    col_dim: NDArray[np.int64],
    col_in_off: NDArray[np.int64],
    emb: NDArray[np.float32],
    sizes: NDArray[np.int64],
    params: NDArray[np.float32],
    x0: NDArray[np.float32],
) -> None:
    """x0 = the dense layers' inputs of rows. Private: for tests."""

def _nn_mlp_forward(
    x0: NDArray[np.float32],
    params: NDArray[np.float32],
    sizes: NDArray[np.int64],
    acts: NDArray[np.float32],
    dropout: float,
    seed: int,
) -> None:
    """The dense layers' outputs into acts (dropout masks from seed). Private: for tests."""

def _nn_mlp_backward(
    x0: NDArray[np.float32],
    params: NDArray[np.float32],
    sizes: NDArray[np.int64],
    acts: NDArray[np.float32],
    dz: NDArray[np.float32],
    l2: float,
    grads: NDArray[np.float32],
    dropout: float,
) -> NDArray[np.float32]:
    """grads = d loss / d params; returns d loss / d x0. Private: for tests."""

def _nn_late_chunk(
    owner: NDArray[np.int64],
    started: NDArray[np.int64],
    o0: int,
    n_chunks: int,
    fastest: NDArray[np.int64],
) -> int:
    """The first late chunk of a batch. Private: for tests."""

def _nn_record_fastest(fastest: NDArray[np.int64], elapsed: int) -> None:
    """fastest[0] = min(fastest[0], elapsed). Private: for tests."""
