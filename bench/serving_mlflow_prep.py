"""Put the serving benchmark's model in an MLflow registry (run in bench/.venvs/mlflow).

Usage: serving_mlflow_prep.py <model.skops> <store folder>

Loads the skops file the driver wrote (the very model Corral and BentoML serve), logs it with
``mlflow.sklearn.log_model`` and explicit ``pip_requirements`` (the defaults infer them by
loading the model in a subprocess, ~3 s, which changes nothing for serving), registers it as
``bench-lr`` with a tensor signature and points the alias ``champion`` at it, on a SQLite store
in the given folder. Prints one JSON line: the tracking URI and the model URI to serve.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> None:
    model_file, store = Path(sys.argv[1]), Path(sys.argv[2]).resolve()
    start = time.perf_counter()
    import mlflow
    import mlflow.sklearn
    import numpy as np
    import skops.io as sio
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    model = sio.load(model_file, trusted=sio.get_untrusted_types(file=model_file))
    store.mkdir(parents=True, exist_ok=True)
    tracking_uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    # The experiment's artifacts go under the store folder, not the working directory.
    if mlflow.get_experiment_by_name("serving-bench") is None:
        mlflow.create_experiment("serving-bench", artifact_location=(store / "artifacts").as_uri())
    mlflow.set_experiment("serving-bench")
    x = np.zeros((1, model.n_features_in_))
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name="bench-lr",
            signature=infer_signature(x, model.predict(x)),
            pip_requirements=["scikit-learn", "numpy"],
        )
    version = info.registered_model_version
    MlflowClient().set_registered_model_alias("bench-lr", "champion", version)
    print(
        json.dumps(
            {
                "tracking_uri": tracking_uri,
                "model_uri": "models:/bench-lr@champion",
                "version": version,
                "mlflow": mlflow.__version__,
                "seconds": round(time.perf_counter() - start, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
