#!/usr/bin/env bash
# Serving throughput with the security features all on versus all off, in one run
# (bench/security_bench.py): 1 worker, plain JSON, 1-row body, wrk -c64, 3 passes of 10 s per
# mode, interleaved; "on" = anonymous_role none + Bearer token + a token rate limit that never
# triggers + require_signatures; plus the in-process cost of the token check in µs per call.
# Results in bench/results/security-<timestamp>/ (security.jsonl, security-report.md).
# Extra arguments go to security_bench.py (--seconds, --passes, --concurrency, --calls).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
unset CORRAL_SERVER_URL CORRAL_TOKEN
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }

run="$here/results/security-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run"
echo "results: $run"
{ echo "nproc $(nproc)"; uptime; python3 --version; } | tee "$run/machine.txt"
python3 "$here/security_bench.py" --out "$run" "$@"
uptime | tee -a "$run/machine.txt"
