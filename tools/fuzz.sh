#!/usr/bin/env bash
# Long fuzzing run: the Hypothesis harness of tests/fuzz with N examples per test (default 500),
# random (not derandomized) inputs and shrinking of failures to a minimal input.
#
#   tools/fuzz.sh            # 500 examples per test
#   tools/fuzz.sh 5000 -x    # 5000 examples, stop at the first failure (extra args go to pytest)
#
# The default suite runs the same harness with a few fixed examples per test (tests/fuzz/_harness.py).
# The last line pytest prints counts the inputs tried ("fuzz: N inputs tried ..."). Calls that may
# crash the interpreter run in a worker process with a 6 GiB address-space limit; the pytest process
# itself is capped at 12 GiB here so that an unbounded allocation cannot exhaust a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-500}"
shift || true
ulimit -v 12000000
RECFORGE_FUZZ_EXAMPLES="$N" exec python -m pytest -q -p no:cacheprovider tests/fuzz "$@"
