#!/usr/bin/env bash
# The test command: install what is missing, make sure Redis answers, lint, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "test: starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
.venv/bin/ruff check .
# the 15 slowest tests at the end: the suite must stay well under 15 min (CI); trim from the top
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 "$@"
