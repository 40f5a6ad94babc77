#!/usr/bin/env bash
# Scenario (a) alternated MLflow/Corral in rounds (ABAB…), so that load drifting on a shared
# machine hits both alike. Usage: bench/registry_ab.sh <run dir> [rounds] [versions per round]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
unset CORRAL_SERVER_URL
run="${1:?run dir}"
rounds="${2:-5}"
versions="${3:-40}"
mkdir -p "$run/ab"
mlflow_py="$here/.venvs/mlflow/bin/python"
for round in $(seq "$rounds"); do
    echo "round $round ($(uptime | sed 's/.*load/load/'))"
    "$mlflow_py" "$here/registry_mlflow.py" --mode direct --only-a --versions "$versions" \
        --default-versions 0 --out "$run/ab/mlflow-direct-$round.jsonl" >/dev/null 2>>"$run/ab/log"
    python "$here/registry_corral.py" --mode local --only-a --versions "$versions" \
        --out "$run/ab/corral-local-$round.jsonl" >/dev/null 2>>"$run/ab/log"
done
