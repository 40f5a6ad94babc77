#!/usr/bin/env bash
# Serving throughput with prediction logging on versus off, in one run (bench/logging_bench.py):
# 1 worker, plain JSON, wrk -c64, 1-row and 100-row bodies, 3 passes of 10 s per cell.
# Results in bench/results/logging-<timestamp>/ (logging.jsonl, logging-report.md).
# Extra arguments go to logging_bench.py (--seconds, --passes, --concurrency, --rows).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
unset CORRAL_SERVER_URL
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }

run="$here/results/logging-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run"
echo "results: $run"
{ echo "nproc $(nproc)"; uptime; python3 --version; } | tee "$run/machine.txt"
python3 "$here/logging_bench.py" --out "$run" "$@"
uptime | tee -a "$run/machine.txt"
