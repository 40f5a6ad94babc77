"""Logging's cost on the prediction path itself, in one process, without HTTP noise.

``plain_predict`` (the JSON predict path behind the front door: parse, route, check, predict,
encode) is called in a loop on one event loop for ``--seconds`` per cell, with the gateway's
recorder off and on (the real recorder and Parquet writer, its flush thread running in the
same process), alternating ``--passes`` times, for 1-row and 100-row bodies. Reported: median
microseconds per request (wall time of the loop, flush thread included, since it competes for
the same interpreter) and the difference.

    python3 bench/logging_inprocess.py [--seconds 3] [--passes 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, make_model


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--passes", type=int, default=5)
    args = p.parse_args()

    import numpy as np
    import orjson
    import skops.io as sio

    import corral
    from corral.api.inference import Incoming, plain_predict
    from corral.config import Settings
    from corral.wiring import open_corral

    work = Path(tempfile.mkdtemp(prefix="corral-logging-inprocess-"))
    (work / "model").mkdir()
    sio.dump(make_model(), work / "model" / "model.skops")
    x = np.round(np.random.default_rng(1).normal(size=(100, 20)), 6)
    example = [{f"f{i}": float(v) for i, v in enumerate(x[0])}]
    with corral.Client(home=work / "home") as client:
        version = client.register("bench-lr", work / "model", flavor="sklearn", example=example)
        client.set_alias("bench-lr", "champion", version.number)
    start = machine()
    results: dict[tuple[int, bool], list[float]] = {}
    for _ in range(args.passes):
        for logging in (False, True):
            wired = open_corral(Settings(home=work / "home", log_predictions=logging))
            gateway = wired.gateway
            for rows in (1, 100):
                raw = orjson.dumps({"inputs": x[:rows].tolist()})

                async def loop(raw: bytes = raw, gateway: Any = gateway) -> float:
                    count = 0
                    deadline = time.perf_counter() + args.seconds
                    began = time.perf_counter()
                    while time.perf_counter() < deadline:
                        incoming = Incoming(raw, {}, {}, f"r{count}")
                        reply = await plain_predict(gateway, "bench-lr", incoming)
                        assert reply.status == 200
                        count += 1
                    return (time.perf_counter() - began) / count * 1e6

                asyncio.run(loop(raw))  # warm-up: loads the model, starts the recorder
                results.setdefault((rows, logging), []).append(asyncio.run(loop(raw)))
            wired.close()
    end = machine()
    print(
        f"In process (`python3 bench/logging_inprocess.py --seconds {args.seconds:g} "
        f"--passes {args.passes}`), {start['nproc']} CPUs, load average {start['loadavg']} "
        f"at the start, {end['loadavg']} at the end.\n"
    )
    print(
        "| rows | µs/request logging off | µs/request logging on | cost | passes off | passes on |"
    )
    print("|---:|---:|---:|---:|---|---|")
    for rows in (1, 100):
        off, on = results[(rows, False)], results[(rows, True)]
        a, b = statistics.median(off), statistics.median(on)
        print(
            f"| {rows} | {a:.1f} | {b:.1f} | {b / a - 1:+.1%} | "
            f"{', '.join(f'{v:.0f}' for v in off)} | {', '.join(f'{v:.0f}' for v in on)} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
