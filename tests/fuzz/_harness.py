"""What the fuzz tests share: the accepted outcomes, input counting, and a crash-isolating worker.

Outcome of every call: a result that passes the caller's sanity checks, or a clear exception
(``TypeError``/``ValueError``/``KeyError``; ``ModelFileError`` and ``NotFittedError`` are
``ValueError`` subclasses). Anything else fails the test with the input that caused it. Calls that
may crash the interpreter run in :class:`Worker`, a child process: a crash or a hang there fails
the test (with the input) instead of killing or blocking the run.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, settings

#: examples per Hypothesis test: small in the default suite, RECFORGE_FUZZ_EXAMPLES=N for a long run
EXAMPLES = int(os.environ.get("RECFORGE_FUZZ_EXAMPLES", "0")) or None
DEFAULT_EXAMPLES = 3
CLEAR_ERRORS = (TypeError, ValueError, KeyError)
CALL_TIMEOUT_S = (
    120  # one call (in process: faulthandler ends the run; in the worker: the worker is killed)
)

settings.register_profile(
    "recforge-fuzz",
    max_examples=EXAMPLES or DEFAULT_EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES is None,  # the default suite tries the same inputs on every run
    database=None,
    # the default suite reports a failing input as found (shrinking can take minutes);
    # a long run shrinks it
    phases=list(Phase) if EXAMPLES else [Phase.explicit, Phase.generate],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)

INPUTS_TRIED = {"in process": 0, "in a worker process": 0}


class Garbage(AssertionError):
    """A call returned without error, but its result is wrong (shape, NaN, out-of-range ids)."""


def attempt(call, *args, **kwargs):
    """``(result, None)``, or ``(None, exception)`` for a clear exception; others propagate.

    Warnings are outcomes too (a fit that warns about convergence is fine): ignored here.
    """
    INPUTS_TRIED["in process"] += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return call(*args, **kwargs), None
        except CLEAR_ERRORS as exc:
            _check_message(exc)
            return None, exc


def _check_message(exc: BaseException) -> None:
    if not str(exc).strip():
        raise AssertionError(f"{type(exc).__name__} without a message") from exc


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Garbage(message)


def check_recommendation(ids, scores, k: int, n_rows: int | None, known_ids) -> None:
    """``k`` columns (``n_rows`` rows, or 1-D), float32 scores, no NaN, catalogue ids or padding."""
    ids, scores = np.asarray(ids), np.asarray(scores)
    shape = (k,) if n_rows is None else (n_rows, k)
    check(
        ids.shape == shape and scores.shape == shape,
        f"shape {ids.shape}/{scores.shape}, expected {shape}",
    )
    check(scores.dtype == np.float32, f"scores dtype {scores.dtype}")
    check(not np.isnan(scores).any(), "NaN scores")
    pad = np.isneginf(scores)
    valid = ids[~pad]
    known = set(np.asarray(known_ids).tolist())
    check(
        all(v in known for v in valid.tolist()), f"ids outside the catalogue: {valid.tolist()[:5]}"
    )


class Worker:
    """A child Python running one task per request (``tests/fuzz/_worker.py``), restarted on crash.

    ``run(task)`` returns the worker's JSON answer: ``{"status": "ok" | "error" | "garbage", ...}``;
    a crash returns ``{"status": "crash", "returncode": ...}`` and a hang ``{"status": "hang"}``.
    """

    def __init__(self):
        self.process = None
        self.stderr = None

    def _start(self):
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), root) if p)
        self.stderr = (
            tempfile.TemporaryFile()
        )  # a file, not a pipe: a chatty worker never blocks on it
        self.process = subprocess.Popen(
            [sys.executable, "-X", "faulthandler", "-m", "tests.fuzz._worker"],
            cwd=root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            bufsize=0,
        )

    def _discard(self) -> str:
        """End the worker process (killed if still running); return the tail of its stderr."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            self.process.stdin.close()
            self.process.stdout.close()
        tail = ""
        if self.stderr is not None:
            self.stderr.seek(0)
            tail = self.stderr.read().decode(errors="replace")[-2000:]
            self.stderr.close()
        self.process = self.stderr = None
        return tail

    def run(self, task: dict, timeout: float = CALL_TIMEOUT_S) -> dict:
        INPUTS_TRIED["in a worker process"] += 1
        if self.process is None or self.process.poll() is not None:
            self._start()
        self.process.stdin.write((json.dumps(task) + "\n").encode())
        self.process.stdin.flush()
        line = b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self.process.stdout], [], [], timeout)
            if not ready:
                return {"status": "hang", "timeout_s": timeout, "stderr": self._discard()}
            chunk = self.process.stdout.readline()
            if not chunk:
                returncode = self.process.wait()
                return {"status": "crash", "returncode": returncode, "stderr": self._discard()}
            line += chunk
        return json.loads(line)

    def close(self):
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()  # the worker's loop ends at end of input
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self._discard()


def assert_handled(answer: dict, what: str) -> None:
    """A result or a clear exception passes; a crash, hang or garbage fails, naming ``what``."""
    status = answer["status"]
    if status in ("ok", "error"):
        return
    raise AssertionError(f"{status} on {what}: {json.dumps(answer)[:3000]}")
