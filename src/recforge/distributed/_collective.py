"""A deterministic all-reduce of float64 arrays among the long-running tasks of one fit.

One task per worker takes part (rank 0 is the *root*). Every rank contributes arrays keyed by a
global index (a partition number); every rank gets back the same total, the arrays added in
index order — bit-identical on every rank whatever worker holds which index, so ranks that take
the same decisions from it stay in step without asking anyone.

The transport is plain TCP between worker processes (the scheduler and the client are not on the
path): the root listens on its worker's host (:func:`open_root`, a task of its own before the
fit, so the port is known up front), every other rank connects to it. Per call a non-root rank
sends its arrays to the root and receives the total; the root receives every rank's arrays, adds
them and sends the total back (a star: the root moves ``(W - 1)`` times the data, which is what
a ring would avoid for many workers). Raw bytes with a small ``int64`` header; no pickle.
A peer that dies closes its socket, and the others raise :class:`CollectiveError` at once; a peer
that stays silent for :data:`TIMEOUT_SECONDS` raises it too.
"""

from __future__ import annotations

import socket
import threading

import numpy as np

__all__ = ["Collective", "CollectiveError", "close_root", "open_root"]

#: seconds a rank waits for a peer (connect, send, receive) before giving up
TIMEOUT_SECONDS = 300.0

_listeners: dict[str, socket.socket] = {}  # token -> the root's listening socket, this process
_lock = threading.Lock()


class CollectiveError(RuntimeError):
    """A peer of the all-reduce left, timed out or sent something else than expected."""


def _host(address: str) -> str:
    """The host of a worker address (``tcp://host:port``); loopback for in-process workers."""
    from distributed.comm import get_address_host, parse_address

    scheme, _ = parse_address(address)
    return get_address_host(address) if scheme in ("tcp", "tls", "ucx") else "127.0.0.1"


def open_root(token: str, n_peers: int) -> tuple[str, int]:
    """Listen on this worker's host for ``n_peers`` ranks of the fit ``token``: ``(host, port)``."""
    from distributed import get_worker

    try:
        host = _host(get_worker().address)
    except ValueError:  # not inside a worker
        host = "127.0.0.1"
    listener = socket.create_server((host, 0), backlog=max(1, n_peers))
    listener.settimeout(TIMEOUT_SECONDS)
    with _lock:
        _listeners[token] = listener
    return host, listener.getsockname()[1]


def close_root(token: str) -> None:
    """Close the listening socket of ``token`` if it is still open (cleanup after a failure)."""
    with _lock:
        listener = _listeners.pop(token, None)
    if listener is not None:
        listener.close()


def _recv_exact(conn: socket.socket, out: memoryview) -> None:
    got = 0
    while got < len(out):
        n = conn.recv_into(out[got:])
        if n == 0:
            raise CollectiveError("a peer of the all-reduce closed its connection (it failed)")
        got += n


def _recv_int64(conn: socket.socket, count: int) -> np.ndarray:
    out = np.empty(count, np.int64)
    _recv_exact(conn, memoryview(out).cast("B"))
    return out


class Collective:
    """This rank's connections for one fit; :meth:`sum_in_order` is the all-reduce.

    ``Collective(token, rank, n_ranks, root)``: rank 0 accepts the ``n_ranks - 1`` others on the
    socket :func:`open_root` opened for ``token``; the others connect to ``root`` (host, port).
    Use as a context manager (closing the sockets tells the peers that this rank is gone).
    """

    def __init__(self, token: str, rank: int, n_ranks: int, root):
        self.rank, self.n_ranks = int(rank), int(n_ranks)
        self.peers: dict[int, socket.socket] = {}
        try:
            if self.n_ranks > 1:
                self._connect(token, root)
        except OSError as exc:  # socket.timeout included
            self.close()
            raise CollectiveError(f"rank {self.rank} could not join the all-reduce: {exc}") from exc
        except BaseException:
            self.close()
            raise

    def _connect(self, token, root):
        if self.rank == 0:
            with _lock:
                listener = _listeners.pop(token)
            try:
                while len(self.peers) < self.n_ranks - 1:
                    conn, _ = listener.accept()
                    self._setup(conn)
                    rank = int(_recv_int64(conn, 1)[0])
                    if not 0 < rank < self.n_ranks or rank in self.peers:
                        conn.close()
                        raise CollectiveError(f"unexpected rank {rank} joined the all-reduce")
                    self.peers[rank] = conn
            finally:
                listener.close()
        else:
            conn = socket.create_connection(tuple(root), timeout=TIMEOUT_SECONDS)
            self._setup(conn)
            self.peers[0] = conn
            conn.sendall(np.array([self.rank], np.int64).tobytes())

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
        """``blocks``: this rank's ``(index, array)`` pairs (float64 arrays of one shape on every
        rank; at least one pair per rank). Returns the sum of every rank's arrays in ascending
        index order, the same float64 array on every rank."""
        blocks = [(int(q), np.ascontiguousarray(a, np.float64)) for q, a in blocks]
        shape = blocks[0][1].shape
        try:
            if self.n_ranks == 1:
                return _sum(blocks)
            if self.rank == 0:
                for rank in range(1, self.n_ranks):
                    blocks += self._receive_blocks(self.peers[rank], shape)
                total = _sum(blocks)
                for rank in range(1, self.n_ranks):
                    self.peers[rank].sendall(memoryview(total).cast("B"))
                return total
            root = self.peers[0]
            header = np.array([len(blocks), len(shape), *shape], np.int64)
            root.sendall(header.tobytes())
            for q, a in blocks:
                root.sendall(np.array([q], np.int64).tobytes())
                root.sendall(memoryview(a).cast("B"))
            total = np.empty(shape, np.float64)
            _recv_exact(root, memoryview(total).cast("B"))
            return total
        except OSError as exc:
            raise CollectiveError(f"the all-reduce failed on rank {self.rank}: {exc}") from exc

    @staticmethod
    def _receive_blocks(conn, shape):
        count, ndim = (int(v) for v in _recv_int64(conn, 2))
        got = tuple(int(v) for v in _recv_int64(conn, ndim))
        if got != shape:
            raise CollectiveError(f"a peer sent arrays of shape {got}, expected {shape}")
        blocks = []
        for _ in range(count):
            q = int(_recv_int64(conn, 1)[0])
            a = np.empty(shape, np.float64)
            _recv_exact(conn, memoryview(a).cast("B"))
            blocks.append((q, a))
        return blocks


def _sum(blocks) -> np.ndarray:
    blocks = sorted(blocks, key=lambda b: b[0])
    total = blocks[0][1].copy()
    for _, a in blocks[1:]:
        total += a
    return total
