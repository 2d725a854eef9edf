#!/usr/bin/env bash
# Set up everything llmcore needs in ./.venv. Idempotent: a second run takes seconds.
#   bash scripts/setup.sh          library + dashboard + notebooks + test tools
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.llmcore-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing packages (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  # This machine keeps a CPU build of torch 2.13.0 on disk; an unpinned torch would pull
  # a multi-GB CUDA build. pyproject.toml keeps a range that users elsewhere can satisfy.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi
# Headless Chromium for the browser test (Debian's package; Playwright's own download fails offline).
if [ "${LLMCORE_BROWSER:-1}" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium for the browser test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "setup: could not install chromium; the browser test will be skipped"
  fi
fi
