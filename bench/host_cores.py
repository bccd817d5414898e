"""Where the host put this machine's first two CPUs: the round trip of a cache line between them.

A VM's vCPUs run wherever the host schedules them. On this project's 2-vCPU VM the round trip
of a cache line between the two measured ~55 ns (near: one L3) or ~330 ns (far), switching
within minutes; far apart, work whose threads write the same data gets slower: a 2-thread
word2vec CBOW epoch took 0.75-0.93 s instead of 0.29-0.31 s (1 thread: 0.52 s), a 2-thread Adult
GBDT fit 0.41 and 0.46 s in a far round (1 thread: 0.36 s), 0.22-0.41 s near. The paired benches
(``busy_paired.py``, ``threads_paired.py``) measure it between rounds with
:func:`round_trip_ns` and report the rounds that ran far apart separately.

``round_trip_ns`` compiles ``cache_line_ping_pong.cpp`` once (``c++``, into the temporary
directory) and runs it; ``None`` where that is not possible (no compiler, not Linux, one CPU).

    python -m bench.host_cores          # one reading, e.g. "57 ns: near"
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

#: round trips above this are "far" (the two states measured here: ~55 and ~330 ns)
FAR_NS = 150.0

_SOURCE = Path(__file__).with_name("cache_line_ping_pong.cpp")
_tool: list = []  # [path or None], built once per process


def _build():
    if not _tool:
        compiler = shutil.which("c++") or shutil.which("g++")
        target = Path(tempfile.gettempdir()) / f"recforge_ping_pong_{os.getuid()}"
        ok = sys.platform.startswith("linux") and compiler is not None
        if ok and not target.exists():
            cmd = [compiler, "-O2", "-pthread", str(_SOURCE), "-o", str(target)]
            ok = subprocess.run(cmd, capture_output=True).returncode == 0
        _tool.append(target if ok else None)
    return _tool[0]


def round_trip_ns(seconds: float = 0.1, paused_pid: int | None = None) -> float | None:
    """Median round trip of a cache line between the first two CPUs (ns), or None.

    ``paused_pid``: a process (a busy loop) stopped for the reading, whose spinning would stretch
    the round trips; it is resumed afterwards."""
    tool = _build()
    if tool is None:
        return None
    if paused_pid is not None:
        os.kill(paused_pid, signal.SIGSTOP)
    try:
        run = subprocess.run([str(tool), str(seconds)], capture_output=True, text=True)
    finally:
        if paused_pid is not None:
            os.kill(paused_pid, signal.SIGCONT)
    return float(run.stdout) if run.returncode == 0 else None


def any_far(readings) -> bool:
    """Whether any of the readings (``round_trip_ns``; None: not measured) says far apart."""
    return any(r is not None and r > FAR_NS for r in readings)


def split_rounds(ratios, readings) -> tuple[int, float | None]:
    """Rounds' ratios split by where the CPUs were: round r ran between ``readings[r]`` and
    ``readings[r + 1]`` (``round_trip_ns``), far apart if either says so. Returns the number of far
    rounds and the median ratio of the near ones (None: none, or a reading was not measurable)."""
    if None in readings:
        return 0, None
    far = [any_far(pair) for pair in itertools.pairwise(readings)]
    near = [x for x, f in zip(ratios, far, strict=True) if not f]
    return sum(far), statistics.median(near) if near else None


def main() -> None:
    ns = round_trip_ns(0.25)
    if ns is None:
        print("round trip not measurable here (needs Linux, 2 CPUs and a C++ compiler)")
    else:
        print(f"{ns:.0f} ns: {'far' if ns > FAR_NS else 'near'}")


if __name__ == "__main__":
    main()
