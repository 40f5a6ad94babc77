"""`corral quickstart`: the README's first command fills a demo and serves it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.corral import free_port


@pytest.mark.slow
def test_quickstart_fills_a_demo_and_serves_it(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "CORRAL_HOME": str(tmp_path / "home")}
    env.pop("CORRAL_SERVER_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "corral", "quickstart", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "quickstart did not start serving"
            time.sleep(0.5)
        models = httpx.get(f"{base}/api/v1/models").json()
        assert models["total"] == 4
        name = "iris-classifier"
        versions = httpx.get(f"{base}/api/v1/models/{name}/versions").json()
        assert [v["number"] for v in versions["items"]] == [3, 2, 1]
        assert all(v["metrics"]["accuracy"] > 0.5 for v in versions["items"])
        champion = httpx.get(f"{base}/api/v1/models/{name}/resolve/champion").json()
        assert champion["version"] == 2  # moved to 3, then rolled back
        history = httpx.get(f"{base}/api/v1/models/{name}/alias-history?alias=champion").json()
        assert history["items"][0]["action"] == "rollback"
        pinned = httpx.get(f"{base}/api/v1/models/{name}/consumers/reporting/resolve").json()
        assert (pinned["version"], pinned["pinned"]) == (1, True)
        assert pinned["deprecation"] is not None
        flower = {
            "sepal length (cm)": 5.1,
            "sepal width (cm)": 3.5,
            "petal length (cm)": 1.4,
            "petal width (cm)": 0.2,
        }
        answer = httpx.post(
            f"{base}/api/v1/models/{name}/predict", json={"inputs": [flower]}, timeout=60
        )
        assert answer.status_code == 200, answer.text
        assert (answer.json()["version"], answer.json()["predictions"]) == (2, [0])
        page = httpx.get(f"{base}/models/{name}")
        assert page.status_code == 200
        assert "champion" in page.text
        # The demo is monitored: objectives, logged traffic with its ground truth.
        status: dict = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = httpx.get(f"{base}/api/v1/models/{name}/monitoring/status").json()
            if status["labelled_24h"] > 0:
                break
            time.sleep(0.5)
        assert status["requests_24h"] >= 5
        assert status["labelled_24h"] >= 40
        assert status["accuracy_24h"] > 0.8
        assert len(status["objectives"]) == 4
        assert httpx.get(f"{base}/models/{name}/monitoring").status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        try:
            out, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
    assert f"{base}/models" in out
