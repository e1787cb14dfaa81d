#!/usr/bin/env bash
# Create .venv (if missing) and install pointseg with pinned dependencies.
# torch is installed first and pinned to the CPU build 2.13.0 so nothing can pull a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -e ".[test,dev]"
echo "[setup] ok: $("$VENV/bin/python" -c 'import torch, pointseg; print("torch", torch.__version__, "pointseg", pointseg.__version__)')"
