#!/usr/bin/env bash
# Checks a built bundle (packaging/build.sh) without a display: the CLI answers, t-SNE and UMAP run in the
# projection child process (the frozen executable started again), and the window opens, draws the demo map
# and saves a screenshot.
#
#   bash packaging/smoke.sh [dist/latent-explorer/latent-explorer]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EXE=${1:-$ROOT/dist/latent-explorer/latent-explorer}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export QT_QPA_PLATFORM=offscreen XDG_CONFIG_HOME=$TMP/config NUMBA_CACHE_DIR=$TMP/numba

"$EXE" --version
"$EXE" info "$(dirname "$EXE")/_internal/resources/demo/mnist-vae.safetensors" > "$TMP/info.json"
grep -q '"family": "vae"' "$TMP/info.json"
echo "info: ok"
timeout 600 "$EXE" --bundle-check | tail -n 1 | tee "$TMP/check.json"
grep -q '"ok": true' "$TMP/check.json"

start=$(date +%s)
LATENT_EXPLORER_SCREENSHOT=$TMP/window.png LATENT_EXPLORER_QUIT_AFTER_MS=240000 timeout 300 "$EXE" \
  > "$TMP/gui.log" 2>&1 || { cat "$TMP/gui.log"; echo "smoke: the window did not close cleanly" >&2; exit 1; }
[ -s "$TMP/window.png" ] || { cat "$TMP/gui.log"; echo "smoke: no screenshot: the demo map never appeared" >&2; exit 1; }
if [ -n "${SMOKE_SCREENSHOT:-}" ]; then cp "$TMP/window.png" "$SMOKE_SCREENSHOT"; fi
echo "window: demo map drawn and saved in $(( $(date +%s) - start )) s"
echo "smoke: ok"
