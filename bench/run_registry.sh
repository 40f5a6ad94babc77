#!/usr/bin/env bash
# The registry benchmark, Corral vs MLflow, in one run; results in bench/results/<timestamp>/.
# Knobs (environment): MLFLOW_SERVER_VERSIONS (default 100: ~1-3 s each through mlflow
# server), SCALE_MODELS x SCALE_PER_MODEL (100 x 1000), QUERIES (200 at scale).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
unset CORRAL_SERVER_URL

bash "$here/setup_peers.sh"
mlflow_py="$here/.venvs/mlflow/bin/python"

run="$here/results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run"
echo "results: $run"
{ echo "nproc $(nproc)"; uptime; python --version; "$mlflow_py" -c 'import mlflow; print("mlflow", mlflow.__version__)'; } \
    | tee "$run/machine.txt"

step() { echo; echo "== $* ($(uptime | sed 's/.*load/load/'))"; }

step "MLflow, direct SQLite store"
"$mlflow_py" "$here/registry_mlflow.py" --mode direct --out "$run/mlflow-direct.jsonl" 2>"$run/mlflow-direct.log"
step "Corral, local mode"
python "$here/registry_corral.py" --mode local --out "$run/corral-local.jsonl" 2>"$run/corral-local.log"
step "MLflow, through mlflow server (1 worker)"
"$mlflow_py" "$here/registry_mlflow.py" --mode server --workers 1 \
    --versions "${MLFLOW_SERVER_VERSIONS:-100}" --default-versions 3 --timed-creates 200 \
    --out "$run/mlflow-server.jsonl" 2>"$run/mlflow-server.log"
step "Corral, through corral server"
python "$here/registry_corral.py" --mode server --out "$run/corral-server.jsonl" 2>"$run/corral-server.log"
step "Corral at scale"
python "$here/registry_scale.py" --models "${SCALE_MODELS:-100}" --per-model "${SCALE_PER_MODEL:-1000}" \
    --queries "${QUERIES:-200}" --out "$run/corral-scale.jsonl" 2>"$run/corral-scale.log"
uptime | tee -a "$run/machine.txt"

echo
python "$here/report.py" "$run"
