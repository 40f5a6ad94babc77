"""The serving benchmark's BentoML service (run by ``bentoml serve`` in bench/.venvs/bentoml).

``bentoml serve serving_bentoml_service:LogReg`` from bench/, with ``BENCH_MODEL_FILE`` (the
skops file every server loads) and ``BENCH_WORKERS`` (worker processes) in the environment.
``POST /predict`` takes ``{"inputs": [[20 floats], ...]}`` (a NumPy array) and answers the
predicted classes as a JSON list. Access logs are off (Corral and MLflow write none either);
everything else is BentoML's default.
"""

from __future__ import annotations

import os

import bentoml
import numpy as np
import skops.io as sio


@bentoml.service(
    workers=int(os.environ.get("BENCH_WORKERS", "1")),
    logging={"access": {"enabled": False}},
)
class LogReg:
    def __init__(self) -> None:
        path = os.environ["BENCH_MODEL_FILE"]
        self.model = sio.load(path, trusted=sio.get_untrusted_types(file=path))

    @bentoml.api
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return self.model.predict(inputs)  # type: ignore[no-any-return]
