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
# Two runs. The short tests mostly wait on sockets and child processes: on two processes
# (pytest-xdist, a file's tests kept together for its module fixtures) they took 4.3 min instead of
# ~7.3 and 0.8 of a core between them. Then, one at a time on their own: the slow ones
# (@pytest.mark.slow: whole systems whose latencies are asserted) and those marked `alone` (a server
# shedding a burst within a time: beside another test process one missed its 3 s once). The 15
# slowest of each run are printed: the suite must stay well under 15 min (CI); trim from the top.
# Exit status 5 is "nothing selected" (a path given).
py() { .venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 "$@"; }
status=0
py -n 2 --dist loadfile -m "not slow and not alone" "$@" || status=$?
[ "$status" -eq 5 ] && status=0
slow=0
py -m "slow or alone" "$@" || slow=$?
[ "$slow" -eq 5 ] && slow=0
[ "$status" -ne 0 ] && exit "$status"
exit "$slow"
