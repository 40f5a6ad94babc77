#!/usr/bin/env bash
# Create the peers' virtualenvs for the benchmarks (MLflow; BentoML for serving). Idempotent:
# a venv whose packages already import is left alone. Peers are never dependencies of Corral.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venvs="$here/.venvs"
mkdir -p "$venvs"

mlflow_venv="$venvs/mlflow"
if [[ -x "$mlflow_venv/bin/python" ]] \
    && "$mlflow_venv/bin/python" -c "import mlflow, sklearn, skops" 2>/dev/null \
    && [[ -x "$mlflow_venv/bin/mlflow" ]]; then
    echo "mlflow venv ready: $("$mlflow_venv/bin/python" -c 'import mlflow; print(mlflow.__version__)')"
else
    echo "creating $mlflow_venv"
    python3 -m venv "$mlflow_venv"
    "$mlflow_venv/bin/python" -m pip install --quiet --upgrade pip
    "$mlflow_venv/bin/python" -m pip install --quiet mlflow scikit-learn skops
    echo "mlflow venv ready: $("$mlflow_venv/bin/python" -c 'import mlflow; print(mlflow.__version__)')"
fi

bentoml_venv="$venvs/bentoml"
if [[ -x "$bentoml_venv/bin/python" ]] \
    && "$bentoml_venv/bin/python" -c "import bentoml, sklearn, skops" 2>/dev/null \
    && [[ -x "$bentoml_venv/bin/bentoml" ]]; then
    echo "bentoml venv ready: $("$bentoml_venv/bin/python" -c 'import bentoml; print(bentoml.__version__)')"
else
    echo "creating $bentoml_venv"
    python3 -m venv "$bentoml_venv"
    "$bentoml_venv/bin/python" -m pip install --quiet --upgrade pip
    "$bentoml_venv/bin/python" -m pip install --quiet bentoml scikit-learn skops
    echo "bentoml venv ready: $("$bentoml_venv/bin/python" -c 'import bentoml; print(bentoml.__version__)')"
fi
