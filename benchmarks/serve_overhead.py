"""What darkfab's model server costs over a bare FastAPI endpoint that calls the same model.

Both servers run in their own process (uvicorn, one worker, loopback, access log off) and serve the same
registered model; a bounded pool of client threads sends the same one-row request to each in turn.
darkfab's side does everything it does in production: schema validation, request id, metrics, and
the prediction log (a second darkfab row turns the log off, to show what it costs).

    .venv/bin/python benchmarks/serve_overhead.py [--requests 3000] [--clients 8] [--rows 1]

Prints a table (throughput, p50 and p99 latency) and the ratios to the bare endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import Request  # at module level: FastAPI resolves the endpoint's annotations here
from fastapi.responses import JSONResponse

HERE = Path(__file__).resolve()


# -- the servers (run in child processes) ----------------------------------------------------------


def _bare_app(store_url: str, factory: str) -> Any:
    import numpy as np
    import pandas as pd
    from fastapi import FastAPI

    from darkfab.registry import Registry
    from darkfab.store import Store
    from darkfab.train import load_model

    model = load_model(Registry(Store(store_url)).load_bytes(factory)[1])
    classes = [c.item() if hasattr(c, "item") else c for c in model.classes]
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        frame = pd.DataFrame(json.loads(await request.body()), columns=list(model.features))
        proba = np.asarray(model.predict_raw(frame), dtype=float)
        preds = [classes[i] for i in proba.argmax(axis=1).tolist()]
        return JSONResponse({"predictions": preds, "probabilities": proba.tolist()})

    return app


def _run_server(kind: str, store_url: str, factory: str, port: int) -> None:
    import uvicorn

    if kind == "bare":
        app = _bare_app(store_url, factory)
    else:
        from darkfab.serve import create_app
        from darkfab.store import Store

        app = create_app(store=Store(store_url), factory=factory, log_predictions=kind == "darkfab")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- the driver ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _build_model(folder: Path) -> tuple[str, str]:
    import darkfab
    from darkfab.spec import spec_from_dict

    url = f"sqlite:///{folder / 'bench.db'}"
    spec = spec_from_dict(
        {
            "name": "bench",
            "data": {"source": "sklearn:breast_cancer", "target": "target"},
            "trainers": [{"name": "logistic_regression"}],
            "budget": {"trials": 3},
            "execution": {"workers": 1},
            "gate": {"bootstrap": 200},
        }
    )
    darkfab.Factory(spec, store=url).run()
    return url, "bench"


def _sample_rows(store_url: str, factory: str, n: int) -> list[dict[str, Any]]:
    from sklearn.datasets import load_breast_cancer

    from darkfab.registry import Registry
    from darkfab.store import Store

    with Store(store_url) as st:
        record = Registry(st).get(factory)
    features = record.lineage["features"]
    frame = load_breast_cancer(as_frame=True).frame
    return [{f: float(frame[f].iloc[i]) for f in features} for i in range(n)]


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server at {url} exited with {proc.returncode}")
        try:
            httpx.get(url + "/docs", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"the server at {url} did not start")


def _load(url: str, body: bytes, requests: int, clients: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    per_client = requests // clients

    def client() -> None:
        nonlocal errors
        mine: list[float] = []
        bad = 0
        with httpx.Client(timeout=30, headers={"content-type": "application/json"}) as c:
            for _ in range(per_client):
                t0 = time.perf_counter()
                r = c.post(url, content=body)
                mine.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    bad += 1
                    if bad == 1:
                        print(f"{url}: {r.status_code} {r.text[:200]}", file=sys.stderr)
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "throughput_rps": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=3000, help="measured requests per server")
    ap.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    ap.add_argument("--rows", type=int, default=1, help="rows per request")
    ap.add_argument("--store", help="an existing store (default: build a small breast_cancer model)")
    ap.add_argument("--factory", default="bench")
    ap.add_argument("--_server", choices=["darkfab", "darkfab-nolog", "bare"], help=argparse.SUPPRESS)
    ap.add_argument("--_port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._server:
        _run_server(args._server, args.store, args.factory, args._port)
        return

    with tempfile.TemporaryDirectory() as tmp:
        store_url, factory = (args.store, args.factory) if args.store else _build_model(Path(tmp))
        rows = _sample_rows(store_url, factory, args.rows)
        results: dict[str, dict[str, float]] = {}
        targets = {
            "bare FastAPI + model.predict": ("bare", "/predict"),
            "darkfab /v1 predict (log off)": ("darkfab-nolog", f"/v1/models/{factory}/predict"),
            "darkfab /v1 predict": ("darkfab", f"/v1/models/{factory}/predict"),
        }
        body = json.dumps(rows).encode()
        env = {**os.environ, "PYTHONPATH": str(HERE.parents[1] / "src")}
        for label, (kind, path) in targets.items():
            port = _free_port()
            cmd = [sys.executable, str(HERE), "--_server", kind, "--_port", str(port), "--store", store_url]
            proc = subprocess.Popen([*cmd, "--factory", factory], env=env)
            try:
                base = f"http://127.0.0.1:{port}"
                _wait_ready(base, proc)
                url = base + path
                _load(url, body, max(200, args.requests // 10), args.clients)  # warm-up
                results[label] = _load(url, body, args.requests, args.clients)
            finally:
                proc.terminate()
                proc.wait(30)

    bare = results["bare FastAPI + model.predict"]
    cpus = os.cpu_count()
    print(f"\n{args.requests} requests of {args.rows} row(s), {args.clients} client threads, loopback, {cpus} CPUs")
    print(f"{'server':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'thr. ratio':>10} {'p50 ratio':>9}")
    for label, r in results.items():
        print(
            f"{label:34} {r['throughput_rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['errors']:7d} "
            f"{r['throughput_rps'] / bare['throughput_rps']:10.2f} {r['p50_ms'] / bare['p50_ms']:9.2f}"
        )


if __name__ == "__main__":
    main()
