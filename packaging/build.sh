#!/usr/bin/env bash
# Builds the one-folder desktop bundle: DIST/latent-explorer/latent-explorer (plus latent-explorer-linux-x86_64.tar.gz).
#
#   bash packaging/build.sh                     # -> dist/latent-explorer/
#   BUILD=/tmp/pyi DIST=/tmp/pyi-dist bash packaging/build.sh
#
# It builds in a virtual environment of its own (BUILD/venv) with the CPU build of torch, so that the bundle
# takes no CUDA libraries: 1.3 GB instead of several. TORCH names that build ("torch==2.13.0+cpu"; pip must be
# able to find it, e.g. with PIP_EXTRA_INDEX_URL pointing at PyTorch's CPU wheel index); TORCH=torch builds
# with whatever torch pip picks, CUDA included. BUILD_VENV=.venv uses an existing environment as it is.
# Then check the result with packaging/smoke.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build/pyinstaller}
DIST=${DIST:-$ROOT/dist}
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-torch==2.13.0+cpu}
mkdir -p "$BUILD" "$DIST"
BUILD=$(cd "$BUILD" && pwd)
DIST=$(cd "$DIST" && pwd)
start=$(date +%s)

if [ -n "${BUILD_VENV:-}" ]; then
  VENV=$BUILD_VENV
else
  VENV=$BUILD/venv
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first, then the project with the same torch held by a constraint: otherwise pip would replace it with
  # the newest (CUDA) build to satisfy the newest torchvision.
  "$VENV/bin/python" -m pip install -q "$TORCH"
  echo "$("$VENV/bin/python" -m pip list --format=freeze 2>/dev/null | grep -i '^torch==')" > "$BUILD/constraints.txt"
  "$VENV/bin/python" -m pip install -q -c "$BUILD/constraints.txt" "$ROOT[packaging]"
fi
"$VENV/bin/python" -c 'import torch; print("building with torch", torch.__version__, "CUDA", torch.version.cuda)'

cd "$ROOT"
"$VENV/bin/python" -m PyInstaller --noconfirm --clean --log-level WARN \
  --workpath "$BUILD/work" --distpath "$DIST" packaging/latent-explorer.spec
tar -C "$DIST" -czf "$DIST/latent-explorer-linux-x86_64.tar.gz" latent-explorer
end=$(date +%s)
echo "built $DIST/latent-explorer in $((end - start)) s"
du -sh "$DIST/latent-explorer" "$DIST/latent-explorer-linux-x86_64.tar.gz"
