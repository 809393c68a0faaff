#!/usr/bin/env bash
# The demo: install what is missing, then run the whole system on the built-in demo city.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/camera-hub demo "$@"
