#!/usr/bin/env bash
# Set up (if needed) and open the dashboard on the shipped pretrained model.
set -euo pipefail
cd "$(dirname "$0")/.."
LLMCORE_BROWSER=0 bash scripts/setup.sh
exec .venv/bin/streamlit run dashboard/streamlit_app.py "$@"
