"""What darkfab's model server costs over a bare FastAPI endpoint, and how it compares to `mlflow models serve`.

Every server runs in its own process (uvicorn, one worker, loopback, access log off) and serves the same
registered model. darkfab's side does everything it does in production: schema validation, request id,
Prometheus metrics, live figures and the prediction log; two more darkfab rows turn the log off, then the
log and the metrics off, to show what each costs. With `--mlflow PATH` (the `mlflow` command of an
environment where mlflow and darkfab are installed) the same model, wrapped as an MLflow pyfunc, is served
by `mlflow models serve --env-manager local` too.

Two load profiles, each in interleaved rounds (every server once per round, the median over rounds
reported), so that a change of machine load hits every server alike:
  latency: one client sending requests back to back (p50 here is the added latency per request);
  load:    `--clients` concurrent clients (throughput).

    .venv/bin/python benchmarks/serve_overhead.py [--requests 2000] [--clients 8] [--rounds 3] [--mlflow PATH]
        [--baseline SRC] [--wal-off]

``--baseline SRC`` adds darkfab (all on) as another source tree has it (e.g. `git archive <commit> src`
unpacked; the same model, trained and stored by that tree's own code), interleaved with the rest, and prints
the throughput ratio of this tree to it: what a change costs.
``--wal-off`` adds darkfab with the prediction log on but its write-ahead segment files off (the log batched
in memory only, as before the write-ahead log): the difference to "all on" is what the write-ahead costs.

Each row also gives the server process's CPU time per request (user + system, from psutil): on a machine
busy with other work the throughput ratios move by 10% or more from run to run, the CPU per request much less.

Prints the tables with the ratios to the bare endpoint and writes JSON to benchmarks/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import LoadSampler, machine, table, write_json  # noqa: E402

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


class _NoGauge:
    def inc(self, *a: Any) -> None: ...
    def dec(self, *a: Any) -> None: ...


def _run_server(kind: str, store_url: str, factory: str, port: int) -> None:
    import uvicorn

    if kind == "bare":
        app = _bare_app(store_url, factory)
    else:
        from darkfab.serve import ServeMetrics, create_app
        from darkfab.store import Store

        if kind == "darkfab-plain":  # what the server costs without its log and its Prometheus metrics
            ServeMetrics.request = lambda self, *a, **k: None  # type: ignore[method-assign]
            ServeMetrics.predicted = lambda self, *a, **k: None  # type: ignore[method-assign]
        app = create_app(store=Store(store_url), factory=factory, log_predictions=kind in ("darkfab", "darkfab-nowal"))
        if kind == "darkfab-nowal":  # the log batched in memory only: what its write-ahead segment files cost
            app.state.service.logger.wal_dir = None
        if kind == "darkfab-plain":
            app.state.metrics.in_flight = _NoGauge()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- the same model as an MLflow pyfunc (built in the mlflow environment) ------------------------


def _save_mlflow(store_url: str, factory: str, folder: str) -> None:
    """Wrap the registered darkfab model as an MLflow pyfunc at ``folder`` (run with mlflow's Python)."""
    import mlflow.pyfunc

    from darkfab.registry import Registry
    from darkfab.store import Store

    raw = Path(folder).with_suffix(".darkfab")
    raw.write_bytes(Registry(Store(store_url)).load_bytes(factory)[1])

    class DarkfabPyfunc(mlflow.pyfunc.PythonModel):  # pickled by value: defined in __main__
        def load_context(self, context: Any) -> None:
            from darkfab.train import load_model

            self.model = load_model(Path(context.artifacts["model"]).read_bytes())
            self.classes = [c.item() if hasattr(c, "item") else c for c in self.model.classes]

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]  # mlflow reads hints
            import numpy as np
            import pandas as pd

            frame = pd.DataFrame(model_input, columns=list(self.model.features))
            proba = np.asarray(self.model.predict_raw(frame), dtype=float)
            return pd.DataFrame(proba, columns=[str(c) for c in self.classes]).assign(
                prediction=[self.classes[i] for i in proba.argmax(axis=1).tolist()]
            )

    mlflow.pyfunc.save_model(folder, python_model=DarkfabPyfunc(), artifacts={"model": str(raw)})


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
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server at {url} did not start")


def _cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) of a server process and its children so far: 0 when unknown."""
    if pid is None:
        return 0.0
    import psutil

    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
        return sum(t.user + t.system for t in (p.cpu_times() for p in procs))
    except psutil.Error:
        return 0.0


def _load(url: str, body: bytes, requests: int, clients: int, pid: int | None = None) -> dict[str, float]:
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
    cpu = _cpu_s(pid)
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    cpu = _cpu_s(pid) - cpu
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "throughput_rps": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "server_cpu_ms": 1000 * cpu / max(1, len(latencies)),  # per request: what machine load hardly changes
    }


def _start(label: str, cmd: list[str], env: dict[str, str], ready: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    try:
        _wait_ready(ready, proc)
    except Exception:
        proc.kill()
        raise
    print(f"started {label}", file=sys.stderr)
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="measured requests per server, round and profile")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients of the load profile")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the median is reported)")
    ap.add_argument("--rows", type=int, default=1, help="rows per request")
    ap.add_argument("--mlflow", help="the mlflow command of an environment with mlflow and darkfab installed")
    ap.add_argument("--store", help="an existing store (default: build a small breast_cancer model)")
    ap.add_argument("--factory", default="bench")
    ap.add_argument("--baseline", help="a darkfab src folder to compare with (e.g. an older commit's src)")
    ap.add_argument("--wal-off", action="store_true", help="add darkfab with the log on but its write-ahead files off")
    ap.add_argument(
        "--_server",
        choices=["darkfab", "darkfab-nowal", "darkfab-nolog", "darkfab-plain", "bare"],
        help=argparse.SUPPRESS,
    )
    ap.add_argument("--_save_mlflow", help=argparse.SUPPRESS)
    ap.add_argument("--_build", help=argparse.SUPPRESS)
    ap.add_argument("--_port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._server:
        _run_server(args._server, args.store, args.factory, args._port)
        return
    if args._build:
        _build_model(Path(args._build))
        return
    if args._save_mlflow:
        _save_mlflow(args.store, args.factory, args._save_mlflow)
        return
    mlflow_cmd = shutil.which(args.mlflow) if args.mlflow else None
    if args.mlflow and mlflow_cmd is None:
        sys.exit(f"--mlflow {args.mlflow}: no such command; fix: give the path of mlflow in its environment")

    with tempfile.TemporaryDirectory() as tmp:
        store_url, factory = (args.store, args.factory) if args.store else _build_model(Path(tmp))
        rows = _sample_rows(store_url, factory, args.rows)
        env = {**os.environ, "PYTHONPATH": str(HERE.parents[1] / "src")}
        body = json.dumps(rows).encode()
        targets: dict[str, tuple[list[str], str, bytes]] = {}  # label -> command, predict path, body
        for label, kind, path in (
            ("bare FastAPI + model.predict", "bare", "/predict"),
            ("darkfab, log and metrics off", "darkfab-plain", f"/v1/models/{factory}/predict"),
            ("darkfab, log off", "darkfab-nolog", f"/v1/models/{factory}/predict"),
            ("darkfab /v1 predict (all on)", "darkfab", f"/v1/models/{factory}/predict"),
        ):
            cmd = [sys.executable, str(HERE), "--_server", kind, "--store", store_url, "--factory", factory]
            targets[label] = (cmd, path, body)
        if args.wal_off:
            label = "darkfab, write-ahead off"
            cmd = [sys.executable, str(HERE), "--_server", "darkfab-nowal", "--store", store_url, "--factory", factory]
            targets[label] = (cmd, f"/v1/models/{factory}/predict", body)
        envs: dict[str, dict[str, str]] = {}
        if args.baseline:  # its own store, built by the baseline's code (an older darkfab refuses a newer schema)
            label = "baseline /v1 predict (all on)"
            base_env = {**env, "PYTHONPATH": str(Path(args.baseline).resolve())}
            folder = Path(tmp) / "baseline"
            folder.mkdir()
            subprocess.run([sys.executable, str(HERE), "--_build", str(folder)], env=base_env, check=True)
            base_url = f"sqlite:///{folder / 'bench.db'}"
            cmd = [sys.executable, str(HERE), "--_server", "darkfab", "--store", base_url, "--factory", factory]
            targets[label] = (cmd, f"/v1/models/{factory}/predict", body)
            envs[label] = base_env
        if mlflow_cmd:
            folder = str(Path(tmp) / "mlflow-model")
            python = str(Path(mlflow_cmd).parent / "python")
            save = [python, str(HERE), "--_save_mlflow", folder, "--store", store_url, "--factory", factory]
            subprocess.run(save, env=env, check=True)
            cmd = [mlflow_cmd, "models", "serve", "-m", folder, "--env-manager", "local", "-w", "1"]
            targets["mlflow models serve"] = (cmd, "/invocations", json.dumps({"dataframe_records": rows}).encode())

        procs: list[subprocess.Popen[bytes]] = []
        urls: dict[str, str] = {}
        pids: dict[str, int] = {}
        runs: dict[str, dict[str, list[dict[str, float]]]] = {p: {} for p in ("latency", "load")}
        try:
            for label, (cmd, path, _) in targets.items():
                port = _free_port()
                full = [*cmd, "-p", str(port)] if "mlflow" in label else [*cmd, "--_port", str(port)]
                ready = {"bare": "/docs", "mlflow": "/ping"}.get(label.split()[0], "/v2/health/ready")
                here = env if "mlflow" not in label else {**env, "PATH": f"{Path(full[0]).parent}:{env['PATH']}"}
                here = envs.get(label, here)
                proc = _start(label, full, here, f"http://127.0.0.1:{port}{ready}")  # mlflow runs its uvicorn
                procs.append(proc)
                urls[label] = f"http://127.0.0.1:{port}{path}"
                pids[label] = proc.pid
                _load(urls[label], targets[label][2], max(200, args.requests // 5), args.clients)  # warm-up
            with LoadSampler() as sampler:
                for r in range(args.rounds):
                    for profile, clients in (("latency", 1), ("load", args.clients)):
                        n = args.requests // 2 if profile == "latency" else args.requests
                        order = list(targets) if r % 2 == 0 else list(reversed(targets))
                        for label in order:
                            got = _load(urls[label], targets[label][2], n, clients, pids[label])
                            runs[profile].setdefault(label, []).append(got)
                    print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    report: dict[str, list[dict[str, Any]]] = {}
    for profile in ("latency", "load"):
        med = {
            label: {
                k: statistics.median(x[k] for x in got) for k in ("throughput_rps", "p50_ms", "p99_ms", "server_cpu_ms")
            }
            | {"errors": sum(x["errors"] for x in got)}
            for label, got in runs[profile].items()
        }
        bare = med["bare FastAPI + model.predict"]
        report[profile] = [
            {
                "server": label,
                "req/s": round(m["throughput_rps"], 1),
                "p50 ms": m["p50_ms"],
                "p99 ms": m["p99_ms"],
                "errors": m["errors"],
                "throughput ratio": m["throughput_rps"] / bare["throughput_rps"],
                "p50 added ms": m["p50_ms"] - bare["p50_ms"],
                "server CPU ms/req": m["server_cpu_ms"],
                "CPU ratio": m["server_cpu_ms"] / bare["server_cpu_ms"] if bare["server_cpu_ms"] else float("nan"),
            }
            for label, m in med.items()
        ]
    full = next(r for r in report["load"] if r["server"].startswith("darkfab /v1"))
    plain = next(r for r in report["load"] if r["server"].startswith("darkfab, log and metrics off"))
    cost = 1 - full["req/s"] / plain["req/s"]
    print(
        f"\n{args.rounds} interleaved rounds; {args.rows} row(s) a request; loopback; {os.cpu_count()} CPUs; "
        f"load average {sampler.summary()}"
    )
    print(f"\nlatency profile: 1 client, {args.requests // 2} requests a round (median of rounds)")
    print(table(report["latency"]))
    print(f"\nload profile: {args.clients} clients, {args.requests} requests a round (median of rounds)")
    print(table(report["load"]))
    print(f"\nlogging and metrics cost {100 * cost:.1f}% of darkfab's throughput under load")
    if args.baseline:
        base = next(r for r in report["load"] if r["server"].startswith("baseline"))
        print(
            f"this tree / baseline ({args.baseline}): {full['req/s'] / base['req/s']:.3f} of its throughput under load"
        )
    write_json(
        "serve_overhead",
        {"machine": machine(), "load": sampler.summary(), "args": vars(args), "report": report, "runs": runs},
    )


if __name__ == "__main__":
    main()
