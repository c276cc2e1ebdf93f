"""Wall time of one fixed campaign of CPU-bound trials with 1 and 2 workers, and the speed-up.

Run: ``.venv/bin/python benchmarks/parallel.py`` (about 2 minutes on 2 cores).
Bigger: ``--trials 48 --repeat 5``. Writes ``benchmarks/out/parallel-*.json``.

The campaign: random forests (``n_estimators`` and ``max_depth`` fixed, a narrow random search over
``max_features`` and ``min_samples_leaf``) on ``sklearn:digits``, random proposer with a fixed seed, so
both worker counts run the same trials. Runs alternate 1, 2, 1, 2, ... so that a change in the machine's
load hits both; the median of each is reported, with the load average around every run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

from _common import LoadSampler, children_cpu, load, machine, table, write_json

import darkfab
from darkfab.results import Progress
from darkfab.spec import FactorySpec, spec_from_dict

TARGET = 1.8


def make_spec(trials: int, workers: int, estimators: int, depth: int) -> FactorySpec:
    return spec_from_dict(
        {
            "name": "bench-parallel",
            "data": {"source": "sklearn:digits"},
            "trainers": [
                {
                    "name": "random_forest",
                    "space": {
                        "n_estimators": estimators,
                        "max_depth": depth,
                        "max_features": {"low": 0.3, "high": 0.4},
                        "min_samples_leaf": {"low": 1, "high": 2},
                    },
                }
            ],
            "search": {"proposer": "random", "pruner": "none", "seed": 0},
            "budget": {"trials": trials, "time": "1h"},
            "execution": {"workers": workers, "trial_timeout": "10m"},
        },
        "benchmarks/parallel.py",
    )


def one_run(trials: int, workers: int, estimators: int, depth: int) -> dict[str, Any]:
    spec = make_spec(trials, workers, estimators, depth)
    marks: dict[str, float] = {}

    def on_progress(p: Progress) -> None:
        now = time.perf_counter()
        if p.kind == "trial_started" and "first_start" not in marks:
            marks["first_start"] = now
            marks["cpu0"] = children_cpu()
        elif p.kind == "trial_finished":
            marks["last_finish"] = now
            if p.trials_done >= trials:
                marks["cpu1"] = children_cpu()

    load0 = load()
    with tempfile.TemporaryDirectory(prefix="darkfab-bench-") as tmp:
        factory = darkfab.Factory(spec, store=f"sqlite:///{tmp}/store.db")
        t0 = time.perf_counter()
        result = factory.run(on_progress=on_progress)
        wall = time.perf_counter() - t0
        factory.close()
    assert result.trials.get("completed", 0) == trials, result.trials
    campaign = marks["last_finish"] - marks["first_start"]
    cpu = marks.get("cpu1", float("nan")) - marks.get("cpu0", float("nan"))
    return {
        "workers": workers,
        "trials": trials,
        "wall_s": wall,
        "campaign_s": campaign,
        "startup_s": marks["first_start"] - t0,
        "gate_and_close_s": t0 + wall - marks["last_finish"],
        "workers_cpu_s": cpu,
        "cpu_per_trial_s": cpu / trials,
        "cores_busy": cpu / campaign,
        "best_valid": result.leaderboard[0]["value"] if result.leaderboard else None,
        "load_before": load0,
        "load_after": load(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=24, help="trials of the campaign (default 24)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per worker count, alternating (default 3)")
    ap.add_argument("--estimators", type=int, default=150, help="n_estimators of every forest (default 150)")
    ap.add_argument("--depth", type=int, default=12, help="max_depth of every forest (default 12)")
    args = ap.parse_args()
    info = machine()
    print(f"{info['date']}  {info['nproc']} CPUs  {info['cpu']}  load {load()}", flush=True)
    runs: list[dict[str, Any]] = []
    with LoadSampler(every=2.0) as sampler:
        one_run(4, 2, args.estimators, args.depth)  # warm-up: starts the fork server, fills the page cache
        for i in range(args.repeat):
            for workers in (1, 2):
                r = one_run(args.trials, workers, args.estimators, args.depth)
                r["repeat"] = i
                runs.append(r)
                print(
                    f"  run {i} workers={workers}: {r['wall_s']:.2f}s (campaign {r['campaign_s']:.2f}s, "
                    f"{r['cores_busy']:.2f} cores busy) load {r['load_after']}",
                    flush=True,
                )
    summary = []
    med: dict[int, dict[str, float]] = {}
    for workers in (1, 2):
        mine = [r for r in runs if r["workers"] == workers]
        med[workers] = {k: statistics.median(r[k] for r in mine) for k in ("wall_s", "campaign_s", "cores_busy")}
        summary.append(
            {
                "workers": workers,
                "runs": len(mine),
                "median_wall_s": med[workers]["wall_s"],
                "min_wall_s": min(r["wall_s"] for r in mine),
                "median_campaign_s": med[workers]["campaign_s"],
                "median_cores_busy": med[workers]["cores_busy"],
                "cpu_per_trial_s": statistics.median(r["cpu_per_trial_s"] for r in mine),
            }
        )
    pairs = [(a, b) for a, b in zip(runs[::2], runs[1::2], strict=True)]
    speedups = {
        "end_to_end_median": med[1]["wall_s"] / med[2]["wall_s"],
        "campaign_phase_median": med[1]["campaign_s"] / med[2]["campaign_s"],
        "end_to_end_best": min(r["wall_s"] for r in runs if r["workers"] == 1)
        / min(r["wall_s"] for r in runs if r["workers"] == 2),
        "per_pair_end_to_end": [round(a["wall_s"] / b["wall_s"], 3) for a, b in pairs],
    }
    print()
    print(f"## {args.trials} random forests (n_estimators={args.estimators}, max_depth={args.depth}) on digits")
    cols = ["repeat", "workers", "wall_s", "campaign_s", "startup_s", "gate_and_close_s", "workers_cpu_s"]
    print(table(runs, cols + ["cores_busy", "load_before", "load_after"]))
    print()
    print(table(summary))
    print()
    print(
        f"speed-up 1 -> 2 workers: end to end {speedups['end_to_end_median']:.2f}x (median), "
        f"{speedups['end_to_end_best']:.2f}x (best of each), campaign phase {speedups['campaign_phase_median']:.2f}x; "
        f"per pair {speedups['per_pair_end_to_end']}; target >= {TARGET}x: "
        f"{'met' if speedups['end_to_end_median'] >= TARGET else 'MISSED'}"
    )
    print(f"load during the benchmark: {sampler.summary()}")
    path = write_json(
        "parallel",
        {
            "machine": info,
            "load": sampler.summary(),
            "args": vars(args),
            "runs": runs,
            "summary": summary,
            "speedups": speedups,
            "target": TARGET,
        },
    )
    print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
