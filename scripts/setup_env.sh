#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment in .venv and installs the pinned dependencies.
# torch goes in first, alone, so that the CPU wheel is used and pip never resolves the CUDA builds.
# Re-running is cheap: a stamp file records the pyproject.toml the environment was built from.
# The reference page's onnxruntime-web (web/node_modules) comes with it (scripts/setup_web.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup_web.sh

python=${PYTHON:-python3.11}
venv=.venv
stamp=$venv/.installed-from

if [ -f "$stamp" ] && cmp -s "$stamp" pyproject.toml; then
    exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip setuptools wheel
torch_pin=$(grep -oE '"torch==[^"]+"' pyproject.toml | tr -d '"')
"${pip[@]}" "$torch_pin"
"${pip[@]}" --constraint <(echo "$torch_pin") -e '.[test]'
cp pyproject.toml "$stamp"
echo "environment ready: $venv"
