"""The feedback store: impressions and clicks appended to an embedded SQLite database."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import sqlite3
import threading

#: The event kinds the store accepts.
EVENTS = ("impression", "click")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id NOT NULL,  -- no declared type: ints stay ints, strings stay strings
    item_id NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('impression', 'click')),
    position INTEGER NOT NULL CHECK (position >= 0),
    timestamp REAL NOT NULL
)
"""


@dataclasses.dataclass(frozen=True)
class FeedbackStats:
    """Aggregates of the feedback log: counts, click-through rate (clicks / impressions, NaN
    without impressions) and the average position of clicks (NaN without clicks)."""

    impressions: int
    clicks: int
    ctr: float
    mean_click_position: float


def _check_id(value, name: str):
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, str)):
        raise TypeError(f"{name} must be an int or a str, got {type(value).__name__}")
    if isinstance(value, numbers.Integral) and not -(2**63) <= int(value) < 2**63:
        raise ValueError(f"{name} must fit in 64 bits, got {value}")
    return int(value) if isinstance(value, numbers.Integral) else value


class FeedbackStore:
    """Append-only log of ``{user_id, item_id, event, position, timestamp}`` in SQLite.

    The database runs in WAL mode with ``synchronous=FULL``: :meth:`add` returns only after the
    event is on disk, so an acknowledged event survives the process being killed (SIGKILL) and
    a power loss. One connection is shared by the threads of a server, serialised by a lock.

    Parameters
    ----------
    path : str or os.PathLike
        The database file (created if missing); ``":memory:"`` for a throw-away store.

    Examples
    --------
    >>> store = FeedbackStore(":memory:")
    >>> store.add(user_id=1, item_id=10, event="impression", position=0, timestamp=0.0)
    1
    >>> _ = store.add(user_id=1, item_id=10, event="click", position=0, timestamp=1.0)
    >>> store.stats().ctr
    1.0
    >>> store.close()
    """

    def __init__(self, path):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(_SCHEMA)

    def add(self, *, user_id, item_id, event: str, position: int, timestamp: float) -> int:
        """Append one event; returns its row id once it is durable on disk."""
        user_id = _check_id(user_id, "user_id")
        item_id = _check_id(item_id, "item_id")
        if event not in EVENTS:
            raise ValueError(f"event must be one of {EVENTS}, got {event!r}")
        if isinstance(position, bool) or not isinstance(position, numbers.Integral) or position < 0:
            raise ValueError(f"position must be an int >= 0, got {position!r}")
        if (
            isinstance(timestamp, bool)
            or not isinstance(timestamp, numbers.Real)
            or not math.isfinite(timestamp)
        ):
            raise ValueError(f"timestamp must be a finite number, got {timestamp!r}")
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO feedback (user_id, item_id, event, position, timestamp) "
                "VALUES (?, ?, ?, ?, ?)",
                (user_id, item_id, event, int(position), float(timestamp)),
            )
            return int(cursor.lastrowid)

    def count(self) -> int:
        """Number of events stored."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    def events(self, limit: int | None = None) -> list[dict]:
        """The stored events in insertion order (the first ``limit``), as dicts with an ``id``."""
        sql = "SELECT id, user_id, item_id, event, position, timestamp FROM feedback ORDER BY id"
        with self._lock:
            rows = self._conn.execute(
                sql + (" LIMIT ?" if limit is not None else ""),
                () if limit is None else (int(limit),),
            ).fetchall()
        keys = ("id", "user_id", "item_id", "event", "position", "timestamp")
        return [dict(zip(keys, row)) for row in rows]

    def stats(self) -> FeedbackStats:
        """Impressions, clicks, click-through rate and average click position over the whole log."""
        with self._lock:
            impressions, clicks, click_positions = self._conn.execute(
                "SELECT COALESCE(SUM(event = 'impression'), 0), COALESCE(SUM(event = 'click'), 0), "
                "COALESCE(SUM(CASE WHEN event = 'click' THEN position END), 0) FROM feedback"
            ).fetchone()
        ctr = clicks / impressions if impressions else float("nan")
        mean_pos = click_positions / clicks if clicks else float("nan")
        return FeedbackStats(int(impressions), int(clicks), float(ctr), float(mean_pos))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
