"""A fixed campaign with 1, 2 and 4 workers, on the local pool and on Ray: trials per second and wall time.

Run: ``.venv/bin/python benchmarks/workers.py`` (a few minutes on 2 cores; ``--no-ray`` without Ray).
Two campaigns: ``short`` (trivial DummyClassifier trials: the executors' own overhead) and ``cpu``
(random forests on digits: CPU-bound trials). Writes ``benchmarks/out/workers-*.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from typing import Any

from _common import LoadSampler, load, machine, table, write_json

import darkfab
from darkfab.spec import FactorySpec, spec_from_dict

TRAINERS = {
    "short": {
        "name": "dummy",
        "estimator": "sklearn.dummy:DummyClassifier",
        "space": {"strategy": {"choices": ["prior", "most_frequent", "stratified", "uniform"]}},
    },
    "cpu": {
        "name": "random_forest",
        "space": {"n_estimators": 120, "max_depth": 12, "max_features": {"low": 0.3, "high": 0.4}},
    },
}
DATA = {"short": "sklearn:iris", "cpu": "sklearn:digits"}


def make_spec(kind: str, trials: int, workers: int, backend: str) -> FactorySpec:
    return spec_from_dict(
        {
            "name": f"bench-workers-{kind}",
            "data": {"source": DATA[kind]},
            "trainers": [TRAINERS[kind]],
            "search": {"proposer": "random", "pruner": "none", "seed": 0},
            "budget": {"trials": trials, "time": "1h"},
            "execution": {"backend": backend, "workers": workers, "memory_mb": 1024, "latency_rows": 0},
            "gate": {"bootstrap": 200},
        },
        "benchmarks/workers.py",
    )


def one_run(kind: str, trials: int, workers: int, backend: str) -> dict[str, Any]:
    load0 = load()
    with tempfile.TemporaryDirectory(prefix="darkfab-bench-") as tmp:
        factory = darkfab.Factory(make_spec(kind, trials, workers, backend), store=f"sqlite:///{tmp}/store.db")
        t0 = time.perf_counter()
        result = factory.run()
        wall = time.perf_counter() - t0
        factory.close()
    search = result.budget["spent"]["seconds"]
    return {
        "campaign": kind,
        "backend": backend,
        "workers": workers,
        "trials": trials,
        "wall_s": round(wall, 2),
        "search_s": round(search, 2),
        "trials_per_s": round(trials / search, 1),
        "completed": result.trials.get("completed", 0),
        "load_before": load0,
        "load_after": load(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short-trials", type=int, default=300)
    ap.add_argument("--cpu-trials", type=int, default=16)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--no-ray", action="store_true", help="the local pool only")
    args = ap.parse_args()
    backends = ["local"] + ([] if args.no_ray or importlib.util.find_spec("ray") is None else ["ray"])
    info = machine()
    print(f"{info['date']}  {info['nproc']} CPUs  {info['cpu']}  load {load()}", flush=True)
    runs = []
    with LoadSampler(every=2.0) as sampler:
        for kind, trials in (("short", args.short_trials), ("cpu", args.cpu_trials)):
            for backend in backends:
                for workers in (int(w) for w in args.workers.split(",")):
                    r = one_run(kind, trials, workers, backend)
                    runs.append(r)
                    print(
                        f"  {kind} {backend} workers={workers}: {r['trials_per_s']} trials/s, "
                        f"search {r['search_s']}s, wall {r['wall_s']}s",
                        flush=True,
                    )
    for r in runs:
        base = next(
            b
            for b in runs
            if b["campaign"] == r["campaign"] and b["backend"] == "local" and b["workers"] == r["workers"]
        )
        r["vs_local"] = round(r["search_s"] / base["search_s"], 2)
    print()
    print(
        table(
            runs,
            [
                "campaign",
                "backend",
                "workers",
                "trials",
                "trials_per_s",
                "search_s",
                "wall_s",
                "vs_local",
                "load_before",
                "load_after",
            ],
        )
    )
    print(f"load during the benchmark: {sampler.summary()}")
    path = write_json("workers", {"machine": info, "load": sampler.summary(), "args": vars(args), "runs": runs})
    print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
