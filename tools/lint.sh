#!/usr/bin/env bash
# The style checks that .ci/run and the pre-commit hooks enforce, with the tool versions pinned here
# (and in .pre-commit-config.yaml). Usage: tools/lint.sh          check only (CI)
#                                           tools/lint.sh --fix    apply ruff's fixes and both formatters
set -euo pipefail
cd "$(dirname "$0")/.."

RUFF_VERSION=0.17.6
CLANG_FORMAT_VERSION=23.1.5
if ! ruff --version 2>/dev/null | grep -qx "ruff $RUFF_VERSION" \
    || ! clang-format --version 2>/dev/null | grep -q "version $CLANG_FORMAT_VERSION"; then
    python -m pip install --quiet "ruff==$RUFF_VERSION" "clang-format==$CLANG_FORMAT_VERSION"
fi

mapfile -t cxx < <(git ls-files 'csrc/*.hpp' 'csrc/*.cpp')
if [[ "${1:-}" == "--fix" ]]; then
    ruff check --fix .
    ruff format .
    clang-format -i "${cxx[@]}"
else
    ruff check .
    ruff format --check .
    clang-format --dry-run --Werror "${cxx[@]}"
fi
echo "lint: ruff $RUFF_VERSION and clang-format $CLANG_FORMAT_VERSION clean"
