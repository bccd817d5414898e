"""Approximate nearest-neighbour recall for embedding sources (LFM, Item2Vec): extra ``[ann]``.

An embedding source scores ``query . item + bias``. :func:`mips_vectors` turns that maximum inner
product search into a Euclidean nearest-neighbour search (Bachrach et al. 2014: each item row
gets its bias and ``sqrt(M^2 - |row|^2)``, each query a ``1`` and a ``0``), which an HNSW graph
answers well. :class:`AnnIndex` asks the graph for a few more items than needed, rescores them
exactly, drops the excluded ones and keeps the best: the scores are the model's, only the
misses are approximate. The graph is built on one thread, so the same model gives the same
index (60k items x 64 dims: ~1-2 min); :meth:`AnnIndex.to_arrays` turns it into arrays a model
file holds (faiss' own serialisation as a uint8 array, no pickle) and ``AnnIndex(model,
saved=...)`` reads them back instead of building (see ``Recommender.save``).

The backend is faiss-cpu (``IndexHNSWFlat``), chosen by ``bench/bench_ann.py`` on the 20M set's
60k items: recall@10 1.0 for all three, build 142 s (usearch 251 s, hnswlib 124 s) and query p50
0.022 ms (usearch 0.036, hnswlib 0.012) on a loaded machine; hnswlib ships no wheels (it needs a
C++ compiler at install), so faiss-cpu is the fastest that installs from wheels everywhere.
"""

from __future__ import annotations

import zlib

import numpy as np

from ._fastpath import topk_excluding

#: M and ef_construction of the HNSW graph; ef_search is :data:`EF_SEARCH` or twice the depth.
CONNECTIVITY = 16
EF_CONSTRUCTION = 200
EF_SEARCH = 64
_INSTALL = 'the ANN index needs faiss-cpu: pip install "recforge[ann]"'


def mips_vectors(targets, bias=None) -> np.ndarray:
    """Item rows for a Euclidean search equivalent to max ``q . t + b``: float32 (n, d + 1 [+ 1])."""
    rows = np.asarray(targets, np.float64)
    if bias is not None:
        rows = np.hstack([rows, np.asarray(bias, np.float64)[:, None]])
    norms = np.einsum("ij,ij->i", rows, rows)
    extra = np.sqrt(np.maximum(norms.max(initial=0.0) - norms, 0.0))
    return np.ascontiguousarray(np.hstack([rows, extra[:, None]]), np.float32)


def mips_queries(queries, with_bias: bool) -> np.ndarray:
    """Query rows matching :func:`mips_vectors`: float32 (n, d + 1 [+ 1])."""
    q = np.atleast_2d(np.asarray(queries, np.float64))
    cols = [q, np.ones((len(q), 1))] if with_bias else [q]
    cols.append(np.zeros((len(q), 1)))
    return np.ascontiguousarray(np.hstack(cols), np.float32)


class _USearch:
    @staticmethod
    def build(data):
        from usearch.index import Index

        index = Index(
            ndim=data.shape[1],
            metric="l2sq",
            dtype="f32",
            connectivity=CONNECTIVITY,
            expansion_add=EF_CONSTRUCTION,
            expansion_search=EF_SEARCH,
        )
        index.add(np.arange(len(data), dtype=np.uint64), data, threads=1)
        return index

    @staticmethod
    def search(index, query, k, ef):
        index.expansion_search = ef
        return np.asarray(index.search(query, k, threads=1).keys, np.int64)


class _Faiss:
    @staticmethod
    def build(data):
        try:
            import faiss
        except ImportError as exc:
            raise ImportError(_INSTALL) from exc

        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # one thread: the graph does not depend on scheduling
        try:
            index = faiss.IndexHNSWFlat(data.shape[1], CONNECTIVITY)
            index.hnsw.efConstruction = EF_CONSTRUCTION
            index.add(data)
        finally:
            faiss.omp_set_num_threads(threads)
        return index

    @staticmethod
    def dump(index) -> np.ndarray:
        import faiss

        return np.asarray(faiss.serialize_index(index), np.uint8)

    @staticmethod
    def restore(graph: np.ndarray):
        try:
            import faiss
        except ImportError as exc:
            raise ImportError(_INSTALL) from exc

        return faiss.deserialize_index(np.ascontiguousarray(graph, np.uint8))

    @staticmethod
    def search(index, query, k, ef):
        import faiss

        # ef per call, not set on the shared index: many request threads search one index
        params = faiss.SearchParametersHNSW()
        params.efSearch = int(ef)
        _, ids = index.search(query[None, :], k, params=params)
        return ids[0][ids[0] >= 0].astype(np.int64)


class _Hnswlib:
    @staticmethod
    def build(data):
        import hnswlib

        index = hnswlib.Index(space="l2", dim=data.shape[1])
        index.init_index(
            max_elements=len(data), ef_construction=EF_CONSTRUCTION, M=CONNECTIVITY, random_seed=0
        )
        index.add_items(data, np.arange(len(data)), num_threads=1)
        return index

    @staticmethod
    def search(index, query, k, ef):
        index.set_ef(max(ef, k))
        labels, _ = index.knn_query(query[None, :], k=k, num_threads=1)
        return labels[0].astype(np.int64)


#: The backends ``bench/bench_ann.py`` compares; :class:`AnnIndex` uses ``faiss``.
BACKENDS = {"usearch": _USearch, "faiss": _Faiss, "hnswlib": _Hnswlib}


#: A saved index's arrays in a model file: ``<prefix><source>.graph`` (uint8: the serialised
#: graph) and ``<prefix><source>.check`` (int64 (4,): :func:`_check_values`).
ARRAY_PREFIX = "serving_ann."


def _vectors_key(vectors: np.ndarray) -> tuple:
    """(items, dimensions, CRC-32 of the bytes) of the search vectors."""
    return (vectors.shape[0], vectors.shape[1], zlib.crc32(vectors))


def _check_values(vectors_key: tuple, graph: np.ndarray) -> np.ndarray:
    """int64 (4,): :func:`_vectors_key` and the CRC-32 of the graph's bytes — a saved graph is
    used only for the vectors it was built on, and only uncorrupted."""
    return np.array([*vectors_key, zlib.crc32(graph)], np.int64)


class AnnIndex:
    """An HNSW index over one embedding source's items, answering like its exact top-k.

    Parameters
    ----------
    model : fitted LFM or Item2Vec (an ``EmbeddingRecall``), read-only
    ef_search : int, default :data:`EF_SEARCH` — raised to twice the requested depth
    saved : dict, optional
        ``{"graph": uint8 (n_bytes,), "check": int64 (4,)}`` from :meth:`to_arrays` of the index
        of the same model: restored instead of built. ``ValueError`` when they do not belong to
        this model's vectors or are corrupt.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from recforge.recall import LFM
    >>> m = sp.random(40, 30, density=0.3, format="csr", random_state=0)
    >>> lfm = LFM(n_factors=8, epochs=5, random_state=0).fit(m)
    >>> idx, scores = AnnIndex(lfm).user(0, 5, seen=lfm.user_items_[0].indices)
    >>> idx.shape, bool(scores[0] >= scores[-1])
    ((5,), True)
    """

    def __init__(self, model, *, ef_search: int = EF_SEARCH, backend: str = "faiss", saved=None):
        self._model = model
        self._targets = np.asarray(model._target_vectors(), np.float64)
        self._bias = model._target_bias()
        self._backend = BACKENDS[backend]
        vectors = mips_vectors(self._targets, self._bias)
        self._vectors_key = _vectors_key(vectors)
        if saved is None:
            self._index = self._backend.build(vectors)
            self._graph = None
        else:
            self._graph = self._checked_graph(saved)
            self._index = self._backend.restore(self._graph)
            if (self._index.ntotal, self._index.d) != vectors.shape:
                raise ValueError(
                    f"the saved ANN graph holds {self._index.ntotal} x {self._index.d} vectors, "
                    f"the model {vectors.shape[0]} x {vectors.shape[1]}"
                )
        self._ef = int(ef_search)
        self.n_items = len(self._targets)

    def _checked_graph(self, saved) -> np.ndarray:
        if not hasattr(self._backend, "restore"):
            raise ValueError("only the faiss backend restores a saved graph")
        graph = np.ascontiguousarray(saved["graph"], np.uint8)
        check = np.asarray(saved["check"])
        if check.shape != (4,) or not np.array_equal(
            check, _check_values(self._vectors_key, graph)
        ):
            raise ValueError(
                "the saved ANN graph is corrupt or was built for other item vectors "
                "(items, dimensions or checksums differ)"
            )
        return graph

    def to_arrays(self) -> dict:
        """``{"graph": uint8 (n_bytes,), "check": int64 (4,)}``: the graph in faiss' own
        serialisation (no pickle) and what ``AnnIndex(model, saved=...)`` checks it against."""
        if not hasattr(self._backend, "dump"):
            raise ValueError("only the faiss backend saves its graph")
        graph = self._graph if self._graph is not None else self._backend.dump(self._index)
        return {"graph": graph, "check": _check_values(self._vectors_key, graph)}

    def query_vector(self, u: int) -> np.ndarray:
        return np.asarray(self._model._user_queries(np.array([u], np.int64)), np.float64)[0]

    def user(self, u: int, depth: int, seen=None, mask=None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``depth`` internal items of internal user ``u`` (``seen`` and ``mask`` excluded):
        int64 (depth,) with -1 pads, float32 (depth,) with -inf pads."""
        return self.search(self.query_vector(u), depth, seen, mask)

    def search(self, query, depth: int, seen=None, mask=None):
        """Top ``depth`` items for a query vector (d,), float64."""
        n_excluded = (0 if seen is None else len(seen)) + (0 if mask is None else int(mask.sum()))
        want = min(self.n_items, depth + n_excluded + 8)
        q = mips_queries(query, self._bias is not None)[0]
        while True:
            found = np.unique(self._backend.search(self._index, q, want, max(self._ef, 2 * want)))
            found = found[(found >= 0) & (found < self.n_items)]
            scores = (query[None, :] @ self._targets[found].T).astype(np.float32)[0]
            if self._bias is not None:
                scores = scores + self._bias[found]
            excluded = np.zeros(len(found), np.uint8)
            if seen is not None and len(seen):
                excluded[np.isin(found, seen)] = 1
            if mask is not None:
                excluded |= mask[found].astype(np.uint8)
            n_ok = len(found) - int(excluded.sum())
            if n_ok >= depth or want >= self.n_items:
                break
            want = min(self.n_items, 2 * want)
        pos, val = topk_excluding(np.ascontiguousarray(scores), depth, excluded)
        idx = np.where(pos >= 0, found[np.maximum(pos, 0)], -1)
        return idx.astype(np.int64), val


def index_arrays(indexes: dict) -> dict:
    """The arrays a model file holds for ``indexes`` (source name → :class:`AnnIndex`), named
    ``<ARRAY_PREFIX><source>.graph`` / ``.check``."""
    out = {}
    for name, index in indexes.items():
        for part, arr in index.to_arrays().items():
            out[f"{ARRAY_PREFIX}{name}.{part}"] = arr
    return out


def saved_indexes(arrays, names) -> dict | None:
    """``{source: {"graph", "check"}}`` for each of ``names`` from a model file's
    :class:`~recforge.io.ModelArrays`, or None when the file holds no saved index. A file holding
    some but not all of them, or arrays of the wrong kind, raises ``ModelFileError`` naming the
    file and the array."""
    if not any(key.startswith(ARRAY_PREFIX) for key in arrays):
        return None
    return {
        name: {
            "graph": arrays.take(f"{ARRAY_PREFIX}{name}.graph", kinds="u", dtype=np.uint8),
            "check": arrays.take(f"{ARRAY_PREFIX}{name}.check", kinds="i", shape=(4,)),
        }
        for name in names
    }
