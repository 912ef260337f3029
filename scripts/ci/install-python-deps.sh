#!/usr/bin/env bash
# Installs the Python packages that magnet-bitnet's cross-checks use (idempotent):
#   numpy — the reference forward pass of an exported HF folder (scripts/bitnet_reference_forward.py)
#   gguf  — llama.cpp's own GGUF reader, an independent check of our GGUF writer
#   openai — the official OpenAI client, run against `magnet-worker serve` (node/worker/tests/serve_openai.rs)
# Versions are pinned so that a CI run is reproducible.
set -euo pipefail
PY="${PYTHON:-python3}"
want_numpy="2.2.6"
want_gguf="0.17.1"
want_openai="3.63.0"
have() { "$PY" -c "import $1, sys; sys.exit(0 if $1.__version__ == '$2' else 1)" 2>/dev/null; }
have_gguf() { "$PY" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('gguf') == '$want_gguf' else 1)" 2>/dev/null; }
if have numpy "$want_numpy" && have_gguf && have openai "$want_openai"; then
  echo "python deps already present (numpy $want_numpy, gguf $want_gguf, openai $want_openai)"
  exit 0
fi
"$PY" -m pip install --quiet --disable-pip-version-check --user \
  "numpy==$want_numpy" "gguf==$want_gguf" "openai==$want_openai" 2>/dev/null \
  || "$PY" -m pip install --quiet --disable-pip-version-check --break-system-packages --user \
       "numpy==$want_numpy" "gguf==$want_gguf" "openai==$want_openai"
"$PY" -c "import numpy, gguf, openai; print('numpy', numpy.__version__, 'gguf ok', 'openai', openai.__version__)"
