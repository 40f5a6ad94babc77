#!/usr/bin/env bash
# Create the peers' virtualenvs for the benchmarks (MLflow; BentoML for serving; Evidently for
# drift). Idempotent: a venv whose packages already import is left alone. Peers are never
# dependencies of Corral.
# Usage: setup_peers.sh [mlflow] [bentoml] [evidently]   (no argument: mlflow and bentoml)
set -euo pipefail

wanted=("$@")
[[ ${#wanted[@]} -eq 0 ]] && wanted=(mlflow bentoml)
want() {
    local name
    for name in "${wanted[@]}"; do [[ "$name" == "$1" ]] && return 0; done
    return 1
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venvs="$here/.venvs"
mkdir -p "$venvs"

mlflow_venv="$venvs/mlflow"
if ! want mlflow; then
    :
elif [[ -x "$mlflow_venv/bin/python" ]] \
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
if ! want bentoml; then
    :
elif [[ -x "$bentoml_venv/bin/python" ]] \
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

# Evidently 0.7 breaks with pandas 3 (see shared/FIELD-NOTES.md): pin pandas<3.
evidently_venv="$venvs/evidently"
if ! want evidently; then
    :
elif [[ -x "$evidently_venv/bin/python" ]] \
    && "$evidently_venv/bin/python" -c "import evidently, pandas, pyarrow, psutil" 2>/dev/null; then
    echo "evidently venv ready: $("$evidently_venv/bin/python" -c 'import evidently; print(evidently.__version__)')"
else
    echo "creating $evidently_venv"
    python3 -m venv "$evidently_venv"
    "$evidently_venv/bin/python" -m pip install --quiet --upgrade pip
    "$evidently_venv/bin/python" -m pip install --quiet evidently 'pandas<3' pyarrow psutil
    echo "evidently venv ready: $("$evidently_venv/bin/python" -c 'import evidently; print(evidently.__version__)')"
fi
