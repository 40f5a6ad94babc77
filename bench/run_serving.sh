#!/usr/bin/env bash
# The serving benchmark, Corral vs `mlflow models serve` vs BentoML, in one run; results in
# bench/results/serving-<timestamp>/ and the markdown in its serving-report.md.
# Knobs (environment): SERVING_SECONDS (20 per cell), SERVING_WARMUP (2), SERVING_SYSTEMS,
# SERVING_WORKERS (1,2), SERVING_CONCURRENCY (1,8,64), SERVING_ROWS (1,100),
# SERVING_COLD_RUNS (5); SERVING_INSERT_DOCS=1 also puts the report into docs/benchmarks.md.
# See bench/serving_bench.py for what is measured. The full matrix takes ~22 min.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true BENTOML_DO_NOT_TRACK=true
unset CORRAL_SERVER_URL

for tool in wrk hyperfine; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install -y wrk hyperfine" >&2; exit 2; }
done
bash "$here/setup_peers.sh"

run="$here/results/serving-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run"
echo "results: $run"
{ echo "nproc $(nproc)"; uptime; python3 --version; } | tee "$run/machine.txt"

status=0
python3 "$here/serving_bench.py" --out "$run" 2> >(tee "$run/serving.log" >&2) || status=$?
uptime | tee -a "$run/machine.txt"

echo
insert=()
[[ "${SERVING_INSERT_DOCS:-0}" == 1 ]] && insert=(--insert docs/benchmarks.md)
python3 "$here/report.py" serving "$run" "${insert[@]}"
exit "$status"
