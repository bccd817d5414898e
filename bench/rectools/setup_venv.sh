#!/usr/bin/env bash
# Creates the virtual environment that bench/rectools/run_rectools.py runs in.
#
# RecTools pins numpy 1.26, pandas < 3 and its own fork of implicit (pm-implicit), so it cannot share
# recforge's bench environment. Usage:
#   bash bench/rectools/setup_venv.sh                      # -> /tmp/rectools-venv
#   RECTOOLS_VENV=/path/to/venv bash bench/rectools/setup_venv.sh
# Needs python3.11 (RecTools 0.19 supports 3.9-3.12) and the package index.
set -euo pipefail

VENV="${RECTOOLS_VENV:-/tmp/rectools-venv}"
PYTHON="${PYTHON:-python3.11}"
RECTOOLS_VERSION="${RECTOOLS_VERSION:-0.19.0}"

if ! command -v "$PYTHON" >/dev/null; then
    echo "setup_venv.sh: $PYTHON not found (set PYTHON=... to another python 3.9-3.12)" >&2
    exit 1
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# CandidateRankingModel's rerankers: CatBoost (CatBoostReranker) and LightGBM (a plain Reranker;
# its sklearn API needs scikit-learn).
"$VENV/bin/python" -m pip install --quiet "rectools==$RECTOOLS_VERSION" catboost lightgbm scikit-learn
"$VENV/bin/python" - <<'PY'
import catboost, implicit, lightgbm, numpy, pandas, rectools
print(
    f"rectools {rectools.__version__} · implicit {implicit.__version__} · catboost {catboost.__version__}"
    f" · lightgbm {lightgbm.__version__} · numpy {numpy.__version__} · pandas {pandas.__version__}"
)
PY
echo "RecTools venv ready: $VENV"
