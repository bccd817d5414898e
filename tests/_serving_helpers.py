"""Start ``recforge serve`` in a subprocess on a free loopback port, and always stop it."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import recforge
from recforge.data import Interactions

#: Seconds a server may take to load its model and bind (the shared machine is slow at times).
START_TIMEOUT = 60.0
_ADDRESS = re.compile(r"on (http://127\.0\.0\.1:\d+)")


def small_interactions(seed: int = 0) -> Interactions:
    """300 users × 120 items, ~3,000 interactions, external ids offset from the internal ones."""
    rng = np.random.default_rng(seed)
    n = 3000
    users = rng.integers(0, 300, n) + 1000
    items = np.minimum(rng.zipf(1.3, n), 120) + 5000
    frame = pd.DataFrame({"user_id": users, "item_id": items}).drop_duplicates()
    return Interactions.from_dataframe(frame)


@contextlib.contextmanager
def running_server(model_path, tmp_path, *, feedback_db=None, token=None, name="server"):
    """Yield ``(process, base_url)`` of ``recforge serve model_path --port 0``; always stopped."""
    src = str(Path(recforge.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("RECFORGE_ADMIN_TOKEN", None)
    db = feedback_db or (tmp_path / f"{name}-feedback.sqlite3")
    cmd = [
        sys.executable,
        "-m",
        "recforge",
        "serve",
        str(model_path),
        "--port",
        "0",
        "--feedback-db",
        str(db),
    ]
    if token is not None:
        env["RECFORGE_ADMIN_TOKEN"] = token
    out_path, err_path = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        url = None
        while url is None:
            match = _ADDRESS.search(out_path.read_text())
            if match:
                url = match.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"server did not start (exit {proc.poll()}): {err_path.read_text()[-2000:]}"
                )
            else:
                time.sleep(0.05)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
