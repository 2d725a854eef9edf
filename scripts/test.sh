#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: library, CLI, notebooks (nbval),
# dashboard (AppTest) and the browser test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LLMCORE_SMOKE=1 PYTHONHASHSEED=0 OMP_NUM_THREADS=1  # two test processes, one thread each
exec .venv/bin/python -m pytest -p no:cacheprovider -n 2 --dist loadfile tests notebooks \
  --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg "$@"
