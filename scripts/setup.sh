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
# System libraries of the Open3D viewer (libGL, libusb) and Xvfb for its headless screenshots and
# tests. Installed when missing, as root with apt-get; otherwise said once (the viewer's tests then
# skip with that reason, and `pointseg view --no-window` still works).
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1" || /sbin/ldconfig -p 2>/dev/null | grep -q "$1"; }
if ! command -v Xvfb >/dev/null || ! have_lib libGL.so.1 || ! have_lib libusb-1.0.so.0; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing the viewer's system packages: libgl1 libusb-1.0-0 xvfb"
    if ! { apt-get update -qq >/dev/null \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgl1 libusb-1.0-0 xvfb >/dev/null; }; then
      echo "[setup] apt-get could not install libgl1 libusb-1.0-0 xvfb: the Open3D viewer and its tests will not work here (use pointseg view --no-window)"
    fi
  else
    echo "[setup] the Open3D viewer needs libgl1 libusb-1.0-0 xvfb, which are missing and cannot be installed here (needs root and apt-get): its tests will skip; pointseg view --no-window works"
  fi
fi
# Headless Chromium + chromedriver for the browser viewer's tests (`pointseg view --web` /
# `--export-html`, tests/viewer/test_web.py, driven by Selenium at /usr/bin/chromedriver: no
# browser download). Same rule: installed as root with apt-get, otherwise said once.
if ! { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; } \
    || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing headless Chromium for the browser viewer's tests: chromium chromium-driver"
    if ! { apt-get update -qq >/dev/null \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }; then
      echo "[setup] apt-get could not install chromium chromium-driver: the browser tests will skip (pointseg view --web / --export-html still work)"
    fi
  else
    echo "[setup] chromium + chromium-driver are missing and cannot be installed here (needs root and apt-get): the browser viewer's tests will skip; pointseg view --web / --export-html still work"
  fi
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -e ".[test,dev,viz]"
echo "[setup] ok: $("$VENV/bin/python" -c 'import torch, pointseg; print("torch", torch.__version__, "pointseg", pointseg.__version__)')"
