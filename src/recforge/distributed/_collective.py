"""A deterministic all-reduce of float64 arrays among the long-running tasks of one fit.

One task per worker takes part (a *rank*). Every rank contributes arrays keyed by a global index
(a partition number); every rank gets back the same total, the arrays added in index order —
bit-identical on every rank whatever worker holds which index, so ranks that take the same
decisions from it stay in step without asking anyone.

The transport is plain TCP between worker processes (the scheduler and the client are not on the
path): every rank listens on its worker's host (:func:`open_listener`, a task of its own before
the fit, so the addresses are known up front) and connects to the lower-ranked peers it exchanges
with. The reduce is a **chain in index order**: the indices, sorted, fall into runs held by one
rank each; the rank holding the first run adds its arrays and passes the running sum to the rank
of the next run, which adds its arrays to it and passes it on, and so on; the rank of the last
run holds the total and sends it to every other rank. With contiguous runs (rank ``r`` holding the
``r``-th range of partitions, as Dask usually places them) each rank sends one array and receives
one per call, where a star through a root made the root receive every other rank's arrays — one
per partition — and send ``W − 1`` totals. Raw bytes with a small ``int64`` header; no pickle.
A peer that dies closes its sockets, and the others raise :class:`CollectiveError` at once; a peer
that stays silent for :data:`TIMEOUT_SECONDS` raises it too.
"""

from __future__ import annotations

import itertools
import socket
import threading

import numpy as np

__all__ = ["Collective", "CollectiveError", "chain_segments", "close_listener", "open_listener"]

#: seconds a rank waits for a peer (connect, send, receive) before giving up
TIMEOUT_SECONDS = 300.0

_listeners: dict[tuple[str, int], socket.socket] = {}  # (token, rank) -> listening socket
_lock = threading.Lock()
_CLOSED = "a peer of the all-reduce closed its connection (it failed)"


class CollectiveError(RuntimeError):
    """A peer of the all-reduce left, timed out or sent something else than expected."""


def _host(address: str) -> str:
    """The host of a worker address (``tcp://host:port``); loopback for in-process workers."""
    from distributed.comm import get_address_host, parse_address

    scheme, _ = parse_address(address)
    return get_address_host(address) if scheme in ("tcp", "tls", "ucx") else "127.0.0.1"


def open_listener(token: str, rank: int, backlog: int = 64) -> tuple[str, int]:
    """Listen on this worker's host for the peers of ``rank`` in the fit ``token``:
    ``(host, port)``."""
    from distributed import get_worker

    try:
        host = _host(get_worker().address)
    except ValueError:  # not inside a worker
        host = "127.0.0.1"
    listener = socket.create_server((host, 0), backlog=max(1, int(backlog)))
    listener.settimeout(TIMEOUT_SECONDS)
    with _lock:
        _listeners[(token, int(rank))] = listener
    return host, listener.getsockname()[1]


def close_listener(token: str, rank: int | None = None) -> None:
    """Close the listening socket of ``rank`` (default: every rank in this process) in the fit
    ``token`` if it is still open (cleanup after a failure: a rank waiting for a peer that never
    comes is released)."""
    with _lock:
        keys = [key for key in _listeners if key[0] == token and rank in (None, key[1])]
        listeners = [_listeners.pop(key) for key in keys]
    for listener in listeners:
        listener.close()


def chain_segments(placement) -> list[tuple[int, list[int]]]:
    """The reduce chain: ``placement[rank]`` the indices each rank holds → the runs of
    consecutive indices (in ascending order) held by one rank, as ``(rank, indices)``.

    >>> chain_segments([[0, 1], [2, 3]])
    [(0, [0, 1]), (1, [2, 3])]
    >>> chain_segments([[1], [2, 4], [0, 3]])
    [(2, [0]), (0, [1]), (1, [2]), (2, [3]), (1, [4])]
    """
    owner: dict[int, int] = {}
    for rank, indices in enumerate(placement):
        if not len(indices):
            raise ValueError(f"placement: rank {rank} holds no index")
        for q in indices:
            if int(q) in owner:
                raise ValueError(f"placement: index {int(q)} is held by two ranks")
            owner[int(q)] = rank
    segments: list[tuple[int, list[int]]] = []
    for q in sorted(owner):
        if segments and segments[-1][0] == owner[q]:
            segments[-1][1].append(q)
        else:
            segments.append((owner[q], [q]))
    return segments


def _links(segments, n_ranks: int) -> set[frozenset]:
    """The pairs of ranks that exchange: consecutive runs of the chain, and the last run's rank
    with every other rank (it sends the total)."""
    links = {frozenset((a[0], b[0])) for a, b in itertools.pairwise(segments) if a[0] != b[0]}
    last = segments[-1][0]
    links |= {frozenset((last, r)) for r in range(n_ranks) if r != last}
    return links


def _recv_exact(conn: socket.socket, out: memoryview) -> None:
    got = 0
    while got < len(out):
        n = conn.recv_into(out[got:])
        if n == 0:
            raise CollectiveError(_CLOSED)
        got += n


def _recv_int64(conn: socket.socket, count: int) -> np.ndarray:
    out = np.empty(count, np.int64)
    _recv_exact(conn, memoryview(out).cast("B"))
    return out


class Collective:
    """This rank's connections for one fit; :meth:`sum_in_order` is the all-reduce.

    ``Collective(token, rank, addresses, placement)``: ``addresses[r]`` is the ``(host, port)``
    :func:`open_listener` returned on rank ``r``'s worker for ``token``, ``placement[r]`` the
    indices rank ``r`` contributes to every call. A rank connects to its lower-ranked peers and
    accepts the higher-ranked ones on its listener (a connection completes in the listener's
    backlog, so no rank waits for another to accept). Use as a context manager (closing the
    sockets tells the peers that this rank is gone).
    """

    def __init__(self, token: str, rank: int, addresses, placement):
        self.rank, self.n_ranks = int(rank), len(placement)
        if len(addresses) != self.n_ranks or not 0 <= self.rank < self.n_ranks:
            raise ValueError(
                f"rank {rank} of {len(addresses)} addresses and {len(placement)} placements"
            )
        self.segments = chain_segments(placement)
        self.indices = sorted(int(q) for q in placement[self.rank])
        self.peers: dict[int, socket.socket] = {}
        peers = {
            r for link in _links(self.segments, self.n_ranks) if self.rank in link for r in link
        }
        peers.discard(self.rank)
        try:
            self._connect(token, addresses, peers)
        except OSError as exc:  # socket.timeout included
            self.close()
            raise CollectiveError(f"rank {self.rank} could not join the all-reduce: {exc}") from exc
        except BaseException:
            self.close()
            raise
        finally:
            close_listener(token, self.rank)

    def _connect(self, token, addresses, peers):
        for peer in sorted(p for p in peers if p < self.rank):
            conn = socket.create_connection(tuple(addresses[peer]), timeout=TIMEOUT_SECONDS)
            self._setup(conn)
            self.peers[peer] = conn
            conn.sendall(np.array([self.rank], np.int64).tobytes())
        expected = {p for p in peers if p > self.rank}
        if not expected:
            return
        with _lock:
            listener = _listeners.get((token, self.rank))
        if listener is None:
            raise CollectiveError(f"rank {self.rank} has no listener for this all-reduce")
        while expected:
            conn, _ = listener.accept()
            self._setup(conn)
            rank = int(_recv_int64(conn, 1)[0])
            if rank not in expected:
                conn.close()
                raise CollectiveError(f"unexpected rank {rank} joined the all-reduce")
            expected.discard(rank)
            self.peers[rank] = conn

    @staticmethod
    def _setup(conn):
        conn.settimeout(TIMEOUT_SECONDS)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        for conn in self.peers.values():
            conn.close()
        self.peers = {}

    def sum_in_order(self, blocks) -> np.ndarray:
        """``blocks``: this rank's ``(index, array)`` pairs, one per index of its placement
        (float64 arrays of one shape on every rank; they may be used as buffers and overwritten).
        Returns the sum of every rank's arrays in ascending index order, the same float64 array
        on every rank."""
        mine = {int(q): np.ascontiguousarray(a, np.float64) for q, a in blocks}
        if sorted(mine) != self.indices:
            raise ValueError(
                f"blocks: rank {self.rank} holds indices {self.indices}, got {sorted(mine)}"
            )
        shape = mine[self.indices[0]].shape
        try:
            running = None
            for s, (rank, indices) in enumerate(self.segments):
                if rank != self.rank:
                    continue
                if s > 0:
                    running = self._receive(self.segments[s - 1][0], shape)
                for q in indices:
                    if running is None:
                        running = mine[q]
                    else:
                        running += mine[q]
                if s + 1 < len(self.segments):
                    self._send(self.segments[s + 1][0], running)
            last = self.segments[-1][0]
            if self.rank != last:
                return self._receive(last, shape)
            for rank in range(self.n_ranks):
                if rank != last:
                    self._send(rank, running)
            return running
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise CollectiveError(f"{_CLOSED}; rank {self.rank}: {exc}") from exc
        except OSError as exc:
            raise CollectiveError(f"the all-reduce failed on rank {self.rank}: {exc}") from exc

    def _send(self, rank: int, array: np.ndarray) -> None:
        conn = self.peers[rank]
        conn.sendall(np.array([array.ndim, *array.shape], np.int64).tobytes())
        conn.sendall(memoryview(array).cast("B"))

    def _receive(self, rank: int, shape) -> np.ndarray:
        conn = self.peers[rank]
        ndim = int(_recv_int64(conn, 1)[0])
        got = tuple(int(v) for v in _recv_int64(conn, ndim)) if 0 <= ndim <= 8 else (ndim,)
        if got != shape:
            raise CollectiveError(f"rank {rank} sent an array of shape {got}, expected {shape}")
        out = np.empty(shape, np.float64)
        _recv_exact(conn, memoryview(out).cast("B"))
        return out
