#!/usr/bin/env bash
# Creates the virtual environment and installs Latent Explorer with its test tools.
# Safe to run again. On Debian/Ubuntu as root it also installs the system libraries Qt needs
# and the offline Fashion-MNIST package.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  want=(libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xkb1 libfontconfig1 libdbus-1-3 dataset-fashion-mnist)
  missing=()
  for p in "${want[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || \
      echo "warning: could not install ${missing[*]}; Qt or Fashion-MNIST may be unavailable" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first so pip resolves the platform's build once, then the project itself.
"$VENV/bin/python" -m pip install -q torch torchvision
"$VENV/bin/python" -m pip install -q -e ".[test]"
