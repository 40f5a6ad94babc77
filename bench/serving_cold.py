"""One cold process: import the library, load ``bench-lr@champion``, predict one row.

Usage (timed from outside with hyperfine by serving_bench.py):
  python3 serving_cold.py corral <corral home>                      (Corral's python)
  .venvs/mlflow/bin/python serving_cold.py mlflow <tracking uri>    (MLflow's venv)

Prints one JSON line with its own breakdown (seconds): import, load by alias, predict.
Corral: ``Client(home=...).predict("bench-lr", rows, alias="champion")``, the SDK's local
mode (resolve the alias, fetch the verified files, load, predict: one "load" step here); with
an SDK that has no ``predict``, ``Client.fetch`` + ``corral.serving.load_predictor``.
MLflow: ``mlflow.pyfunc.load_model("models:/bench-lr@champion")``, then ``predict``.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402

N_FEATURES = 20


def corral_cold(home: str) -> dict[str, object]:
    import corral

    t1 = time.perf_counter()
    client = corral.Client(home=home)
    if hasattr(client, "predict"):
        answer = client.predict("bench-lr", [[0.1] * N_FEATURES], alias="champion")
        t2 = time.perf_counter()
        return {
            "import_s": t1 - T0,
            "load_s": t2 - t1,
            "predict_s": 0.0,
            "route": "Client.predict (local mode)",
            "out": str(answer.outputs),
        }
    from corral.serving import load_predictor

    version = client.get_version("bench-lr", "champion")
    folder = client.fetch("bench-lr", version.number)
    predictor = load_predictor(
        folder, version.flavor, trusted=version.trusted, signature=version.signature
    )
    t2 = time.perf_counter()
    out = predictor.predict([[0.1] * N_FEATURES])
    t3 = time.perf_counter()
    return {
        "import_s": t1 - T0,
        "load_s": t2 - t1,
        "predict_s": t3 - t2,
        "route": "Client.fetch + load_predictor",
        "out": str(out),
    }


def mlflow_cold(tracking_uri: str) -> dict[str, object]:
    import mlflow
    import mlflow.pyfunc
    import numpy as np

    t1 = time.perf_counter()
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model("models:/bench-lr@champion")
    t2 = time.perf_counter()
    out = model.predict(np.full((1, N_FEATURES), 0.1))
    t3 = time.perf_counter()
    return {
        "import_s": t1 - T0,
        "load_s": t2 - t1,
        "predict_s": t3 - t2,
        "route": "mlflow.pyfunc.load_model + predict",
        "out": str(out),
    }


if __name__ == "__main__":
    system, target = sys.argv[1], sys.argv[2]
    result = corral_cold(target) if system == "corral" else mlflow_cold(target)
    print(json.dumps({"system": system, **result}))
