#!/usr/bin/env bash
# The drift benchmark (issue 4): Corral's drift report vs a numpy/scipy floor vs Evidently, on
# generated Parquet at 10k, 100k and 1M rows; results in bench/results/drift-<timestamp>/ and
# the markdown in its drift-report.md (printed at the end).
# Knobs (environment): DRIFT_SIZES ("10000 100000 1000000"), DRIFT_RUNS (3),
# DRIFT_EVIDENTLY_RUNS_1M (3; Evidently takes ~2 min a run at 1M rows here),
# DRIFT_SYSTEMS ("corral floor floor-tests evidently"), DRIFT_DATA (a folder to keep the
# generated files in; default a temporary folder removed at the end);
# DRIFT_INSERT_DOCS=1 also puts the report into docs/benchmarks.md ("## Drift").
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
export DO_NOT_TRACK=true
unset CORRAL_SERVER_URL

sizes=(${DRIFT_SIZES:-10000 100000 1000000})
systems=(${DRIFT_SYSTEMS:-corral floor floor-tests evidently})
if [[ " ${systems[*]} " == *" evidently "* ]]; then
    bash "$here/setup_peers.sh" evidently
fi

data="${DRIFT_DATA:-}"
if [[ -z "$data" ]]; then
    data="$(mktemp -d "${TMPDIR:-/tmp}/corral-drift.XXXXXX")"
    trap 'rm -rf "$data"' EXIT
fi

run="$here/results/drift-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run"
echo "results: $run"
{ echo "nproc $(nproc)"; uptime; python3 --version; } | tee "$run/machine.txt"

python3 "$here/drift_data.py" "$data" --rows "${sizes[@]}"
status=0
python3 "$here/drift_bench.py" "$data" "$run" --sizes "${sizes[@]}" \
    --runs "${DRIFT_RUNS:-3}" --evidently-runs-1m "${DRIFT_EVIDENTLY_RUNS_1M:-3}" \
    --systems "${systems[@]}" 2> >(tee "$run/drift.log" >&2) || status=$?
uptime | tee -a "$run/machine.txt"

echo
insert=()
[[ "${DRIFT_INSERT_DOCS:-0}" == 1 ]] && insert=(--insert docs/benchmarks.md)
command="bash bench/run_drift.sh"
[[ -n "${DRIFT_RUNS:-}${DRIFT_EVIDENTLY_RUNS_1M:-}${DRIFT_SIZES:-}" ]] \
    && command="DRIFT_RUNS=${DRIFT_RUNS:-3} DRIFT_EVIDENTLY_RUNS_1M=${DRIFT_EVIDENTLY_RUNS_1M:-3} $command"
python3 "$here/drift_report.py" "$run" --command "$command" "${insert[@]}"
exit "$status"
