#!/usr/bin/env bash
# Run recforge's kernel, contract and oracle tests against an AddressSanitizer + UndefinedBehavior-
# Sanitizer build of the C++ core, recforge._core.
#
#   tools/sanitize.sh                 # build (cached in $RECFORGE_SANITIZE_DIR) and run the default tests
#   tools/sanitize.sh --quick         # only the tests that drive the C++ and Cython code (CI's subset)
#   tools/sanitize.sh tests/test_x.py # build and run these pytest arguments instead
#
# How it works
# * `RECFORGE_SANITIZE=1 python setup.py build_ext` compiles _core with
#   -fsanitize=address,undefined -fno-omit-frame-pointer -O1 -g (see setup.py; the default build is
#   unchanged). The same variable works with `pip install -e . --no-build-isolation`. This script
#   builds into its own directory, so the worktree's ordinary _core stays as it is: it copies
#   src/recforge there and puts the sanitized _core beside the copy, then runs pytest from the repo
#   root with PYTHONPATH pointing at the copy.
# * The Python interpreter is not built with ASan, so libasan (and libubsan) are loaded first with
#   LD_PRELOAD (the paths come from `$CXX -print-file-name`).
# * ASAN_OPTIONS=detect_leaks=0: LeakSanitizer would report the interpreter's own never-freed
#   objects (interned strings, module state, Numba/LLVM, TensorFlow) at exit, not recforge's;
#   every other ASan check (out-of-bounds, use-after-free, double free, ...) stays on and aborts the
#   run. UBSan prints a stack and halts on the first report (halt_on_error=1).
# * pytest runs with --capture=sys: its default fd capture would hold a sanitizer report in a
#   temporary file that dies with the process (UBSan's halt exits with status 1 mid-test: no report,
#   no pytest summary); the C++ side's stderr goes straight to the log instead.
# * A run is clean when pytest passes and the log holds no "ERROR: AddressSanitizer" and no
#   "runtime error:" line; the script greps for both and reports, and exits non-zero otherwise.
#
# Measured (2 cores shared with six other builds and test runs, load ~10): build 1043 s, the
# default tests 1417 s (671 passed, 0 ASan / 0 UBSan reports), 41 min wall, 7.5 min of CPU. On an
# otherwise idle 2-core CI machine that is roughly 15 min; on a busy machine run it alone.
# --quick (load ~18): build 2525 s wall / 286 s CPU, tests 531 s wall / 115 s CPU (373 passed,
# 0 ASan / 0 UBSan reports), i.e. about 4-5 min on an idle 2-core machine: .ci/run runs it when
# RECFORGE_CI_SANITIZE=1.
# Idle machine, 2026-12-06: --quick build 185 s wall / 326 s CPU, tests 464 + 47 (the two files
# added to the list since) passed, 0 ASan / 0 UBSan reports.
# 2026-12-06 08:06 (load ~8): tests/test_gbdt_subsample.py, test_linear_kernels.py,
# test_encoder_kernels.py and test_neighbors_kernels.py (now in --quick): 535 passed in 28 s,
# 0 ASan / 0 UBSan reports. Before, the run died at test 30 with exit 1 and no report: UBSan's
# "load of misaligned address" in top-k (bind_topk took plain array_t, not arrays.hpp's CArray),
# its report lost in pytest's fd capture.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="${RECFORGE_SANITIZE_DIR:-$ROOT/build/sanitize}"
CXX="${CXX:-g++}"
mkdir -p "$OUT"

# CPU=the CPU seconds (user + sys) of the children this script has waited for so far. `times` must
# run in this shell (not in a pipe or $(...), whose subshell has no children yet).
cpu_seconds() {
    times >"$OUT/times"
    CPU=$(tail -1 "$OUT/times" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, t, /m|s/)
                                                                            s += 60 * t[1] + t[2] }
                                         printf "%.0f", s }')
}

echo "== building recforge._core with ASan+UBSan into $OUT"
start=$(date +%s)
RECFORGE_SANITIZE=1 python setup.py -q build_ext --build-lib "$OUT/lib" --build-temp "$OUT/temp" \
    >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; echo "sanitize: BUILD FAILED"; exit 2; }
cpu_seconds
build_cpu=$CPU
rm -rf "$OUT/src" && mkdir -p "$OUT/src"
cp -r src/recforge "$OUT/src/recforge"
# every compiled extension (the C++ core and the Cython serving path) from the sanitized build,
# none from an in-place build of the working tree
find "$OUT/src/recforge" \( -name "*.so" -o -name "*.pyd" \) -delete
(cd "$OUT/lib" && find recforge -name "*.so" -exec cp {} "$OUT/src/{}" \;)
echo "   build: $(( $(date +%s) - start )) s wall, ${build_cpu} s CPU"

if [ "${1:-}" = "--quick" ]; then
    # the C++ kernels (top-k, histograms, splits, thread pool, LFM, SGNS) against their references,
    # the recall contract through the C++ top-k, GBDT end to end, the Cython serving path
    TESTS=(tests/kernels/test_topk.py tests/kernels/test_histogram.py tests/kernels/test_split.py
           tests/kernels/test_parallel.py tests/kernels/test_lfm_kernel.py
           tests/kernels/test_sgns_kernel.py tests/test_popularity.py tests/test_itemcf.py
           tests/test_lfm.py tests/test_lfm_sampler.py tests/test_item2vec.py tests/test_gbdt.py
           tests/test_gbdt_leafwise.py tests/test_gbdt_predict.py tests/test_gbdt_categorical.py
           tests/test_gbdt_histogram_common.py tests/test_serving_fastpath.py
           tests/test_gbdt_subsample.py tests/test_linear_kernels.py tests/test_encoder_kernels.py
           tests/test_neighbors_kernels.py)
elif [ "$#" -gt 0 ]; then
    TESTS=("$@")
else
    TESTS=(tests/kernels tests/oracle
           tests/test_popularity.py tests/test_itemcf.py tests/test_usercf.py tests/test_personal_rank.py
           tests/test_content_based.py tests/test_lfm.py tests/test_item2vec.py tests/test_gbdt.py
           tests/test_gbdt_leafwise.py tests/test_gbdt_predict.py tests/test_gbdt_categorical.py
           tests/test_gbdt_histogram_common.py tests/test_lfm_sampler.py
           tests/test_bad_input.py tests/test_thread_safety.py)
fi

LIBASAN="$("$CXX" -print-file-name=libasan.so)"
LIBUBSAN="$("$CXX" -print-file-name=libubsan.so)"
LOG="$OUT/pytest.log"
echo "== pytest ${TESTS[*]} (log: $LOG)"
start=$(date +%s)
set +e
LD_PRELOAD="$LIBASAN $LIBUBSAN" \
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:print_summary=1" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
NUMBA_CACHE_DIR="$OUT/numba_cache" \
PYTHONPATH="$OUT/src" \
    python -m pytest -q -p no:cacheprovider --capture=sys "${TESTS[@]}" >"$LOG" 2>&1
status=$?
set -e
cpu_seconds
echo "   tests: $(( $(date +%s) - start )) s wall, $(( CPU - build_cpu )) s CPU, pytest exit code $status"
tail -3 "$LOG"
asan=$(grep -c "ERROR: AddressSanitizer" "$LOG" || true)
ubsan=$(grep -c "runtime error:" "$LOG" || true)
echo "== AddressSanitizer reports: $asan; UndefinedBehaviorSanitizer reports: $ubsan"
if [ "$status" -ne 0 ] || [ "$asan" -ne 0 ] || [ "$ubsan" -ne 0 ]; then
    grep -n -A25 "ERROR: AddressSanitizer\|runtime error:" "$LOG" | head -80 || true
    echo "sanitize: FAILED"
    exit 1
fi
echo "sanitize: clean"
