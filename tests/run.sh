#!/usr/bin/env bash
# The README's test command: make (or reuse) a virtual environment, install refnet with its
# test extras, and run the whole suite. Extra arguments go to pytest.
# REFNET_VENV overrides the environment's folder (default: .venv beside this repository).
# The PyTorch cross-checks run when torch is importable in that environment and skip otherwise;
# `pip install -e .[crosscheck]` (or .ci/run) installs the CPU build they are written for.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${REFNET_VENV:-$root/.venv}"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[test]"
cd "$root"
exec "$venv/bin/python" -m pytest "$@"
