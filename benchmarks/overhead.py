"""Trivial trials per second end to end through ``Factory.run``, against Optuna in memory and a cold process.

Run: ``.venv/bin/python benchmarks/overhead.py`` (about 4-6 minutes on 2 cores).
Bigger: ``--trials 3000 --repeat 3``. Writes ``benchmarks/out/overhead-*.json``.

(a) A trivial trainer (scikit-learn's DummyClassifier, one categorical parameter) on ``sklearn:iris``:
    darkfab's random and TPE proposers with 1 and 2 workers, with the default ``execution.latency_rows``
    (20 single-row predictions timed per trial) and with ``latency_rows: 0``; Optuna in memory running the
    same objective in-process (random, TPE with Optuna's defaults, TPE configured like darkfab's:
    multivariate + group + constant_liar); and a new Python interpreter per trial (measured on a few
    trials and extrapolated).
(b) Resident memory of the factory process, sampled from the progress callback after every trial.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any

import psutil
from _common import LoadSampler, children_cpu, load, machine, table, write_json

import darkfab
from darkfab.data import load_dataset
from darkfab.results import Progress
from darkfab.spec import FactorySpec, spec_from_dict

STRATEGIES = ["prior", "most_frequent", "stratified", "uniform"]
TARGET_RATE = 300.0  # trivial trials per second end to end (random proposer)
TARGET_TPE_RATIO = 1.10  # darkfab TPE wall / Optuna in-memory TPE wall


def make_spec(dataset: str, proposer: str, workers: int, latency_rows: int | None, trials: int) -> FactorySpec:
    execution: dict[str, Any] = {"workers": workers}
    if latency_rows is not None:
        execution["latency_rows"] = latency_rows
    return spec_from_dict(
        {
            "name": "bench-overhead",
            "data": {"source": f"sklearn:{dataset}"},
            "trainers": [
                {
                    "name": "dummy",
                    "estimator": "sklearn.dummy:DummyClassifier",
                    "space": {"strategy": {"choices": STRATEGIES}},
                }
            ],
            "search": {"proposer": proposer, "pruner": "none", "seed": 0},
            "budget": {"trials": trials, "time": "2h"},
            "execution": execution,
        },
        "benchmarks/overhead.py",
    )


def _children_rss() -> int:
    """Resident memory of the worker processes (every descendant but the idle fork server)."""
    total = 0
    for child in psutil.Process().children(recursive=True):
        try:
            if child.children():  # the fork server: parent of the workers
                continue
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def factory_run(dataset: str, proposer: str, workers: int, latency_rows: int | None, trials: int) -> dict[str, Any]:
    """One ``Factory.run`` with a fresh SQLite store; per-trial timestamps and RSS from ``on_progress``."""
    spec = make_spec(dataset, proposer, workers, latency_rows, trials)
    me = psutil.Process()
    finished_at: list[float] = []
    rss: list[int] = []
    marks: dict[str, float] = {}

    def on_progress(p: Progress) -> None:
        if p.kind == "trial_started" and "first_start" not in marks:
            marks["first_start"] = time.perf_counter()
            marks["workers_cpu0"] = children_cpu()
        elif p.kind == "trial_finished":
            finished_at.append(time.perf_counter())
            rss.append(me.memory_info().rss)
            if p.trials_done == min(100, trials):
                marks["workers_rss_100"] = _children_rss()
            if p.trials_done == trials:
                marks["workers_rss_end"] = _children_rss()
            if p.trials_done >= trials and "workers_cpu1" not in marks:
                marks["workers_cpu1"] = children_cpu()  # before the pool closes

    load0 = load()
    with tempfile.TemporaryDirectory(prefix="darkfab-bench-") as tmp:
        factory = darkfab.Factory(spec, store=f"sqlite:///{tmp}/store.db")
        cpu0, t0 = time.process_time(), time.perf_counter()
        result = factory.run(on_progress=on_progress)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        factory.close()
    done = result.budget["spent"]["trials"]
    assert result.trials.get("completed", 0) == trials, result.trials
    steady = finished_at[-1] - marks["first_start"]
    k = min(100, len(finished_at) // 4)
    first_rate = (k - 1) / (finished_at[k - 1] - finished_at[0]) if k > 1 else float("nan")
    last_rate = (k - 1) / (finished_at[-1] - finished_at[-k]) if k > 1 else float("nan")
    workers_cpu = marks.get("workers_cpu1", float("nan")) - marks.get("workers_cpu0", float("nan"))
    return {
        "tool": "darkfab Factory.run",
        "proposer": proposer,
        "workers": workers,
        "latency_rows": "default (20)" if latency_rows is None else latency_rows,
        "trials": done,
        "wall_s": wall,
        "trials_per_s": done / wall,
        "ms_per_trial": 1000 * wall / done,
        "steady_trials_per_s": (done - 1) / steady if steady > 0 else float("nan"),
        "block": k,
        "first_block_trials_per_s": first_rate,
        "last_block_trials_per_s": last_rate,
        "startup_s": marks["first_start"] - t0,
        "after_last_trial_s": (t0 + wall) - finished_at[-1],
        "parent_cpu_ms_per_trial": 1000 * cpu / done,
        "workers_cpu_ms_per_trial": 1000 * workers_cpu / done,
        "rss_mb_at_100": rss[min(99, len(rss) - 1)] / 2**20,
        "rss_mb_max_first_100": max(rss[:100]) / 2**20,
        "rss_mb_at_end": rss[-1] / 2**20,
        "rss_mb_max": max(rss) / 2**20,
        "rss_kb_per_trial_after_100": (rss[-1] - rss[min(99, len(rss) - 1)]) / 1024 / max(1, len(rss) - 100),
        "workers_rss_mb_at_100": marks.get("workers_rss_100", 0) / 2**20,
        "workers_rss_mb_at_end": marks.get("workers_rss_end", 0) / 2**20,
        "load_before": load0,
        "load_after": load(),
    }


# -- Optuna in memory, the same trivial objective in-process ---------------------------------------------


def _in_process_row(tool: str, proposer: str, trials: int, wall: float, load0: tuple[float, ...]) -> dict[str, Any]:
    """The row of a run in this process, one worker: ``trials`` in ``wall`` seconds."""
    return {
        "tool": tool,
        "proposer": proposer,
        "workers": 1,
        "latency_rows": "-",
        "trials": trials,
        "wall_s": wall,
        "trials_per_s": trials / wall,
        "ms_per_trial": 1000 * wall / trials,
        "load_before": load0,
        "load_after": load(),
    }


def optuna_run(dataset: str, sampler_name: str, trials: int, seed: int = 0) -> dict[str, Any]:
    import numpy as np
    import optuna
    from sklearn.dummy import DummyClassifier

    optuna.logging.set_verbosity(logging.WARNING)
    data = load_dataset(make_spec(dataset, "random", 1, 0, trials))
    X_train, y_train = data.X_train.to_numpy(dtype=float), data.y_train
    X_valid, y_valid = data.X_valid.to_numpy(dtype=float), data.y_valid

    def objective(trial: optuna.Trial) -> float:
        strategy = trial.suggest_categorical("dummy.strategy", STRATEGIES)
        model = DummyClassifier(strategy=strategy, random_state=seed).fit(X_train, y_train)
        proba = model.predict_proba(X_valid)
        return float(np.mean(proba.argmax(axis=1) == y_valid))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning of `group`
        if sampler_name == "random":
            sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=seed)
        elif sampler_name == "tpe (optuna defaults)":
            sampler = optuna.samplers.TPESampler(seed=seed)
        else:  # configured like darkfab's proposer
            sampler = optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=10, multivariate=True, group=True, constant_liar=True
            )
        load0 = load()
        t0 = time.perf_counter()
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective, n_trials=trials)
        wall = time.perf_counter() - t0
    return _in_process_row("optuna in memory", sampler_name, trials, wall, load0)


def objective_only(dataset: str, trials: int) -> dict[str, Any]:
    """The trivial objective alone, no sampler: the floor every tool pays per trial."""
    import numpy as np
    from sklearn.dummy import DummyClassifier

    data = load_dataset(make_spec(dataset, "random", 1, 0, trials))
    X_train, y_train = data.X_train.to_numpy(dtype=float), data.y_train
    X_valid, y_valid = data.X_valid.to_numpy(dtype=float), data.y_valid
    load0 = load()
    t0 = time.perf_counter()
    for i in range(trials):
        model = DummyClassifier(strategy=STRATEGIES[i % 4], random_state=0).fit(X_train, y_train)
        float(np.mean(model.predict_proba(X_valid).argmax(axis=1) == y_valid))
    wall = time.perf_counter() - t0
    return _in_process_row("objective only, in-process loop", "-", trials, wall, load0)


_COLD = """
import sys
import numpy as np
from sklearn.dummy import DummyClassifier
from darkfab.data import load_dataset
from darkfab.spec import spec_from_dict
spec = spec_from_dict({"name": "cold", "data": {"source": "sklearn:" + sys.argv[1]}, "budget": {"trials": 1}}, "cold")
d = load_dataset(spec)
m = DummyClassifier(strategy=sys.argv[2], random_state=0).fit(d.X_train.to_numpy(float), d.y_train)
print(float(np.mean(m.predict_proba(d.X_valid.to_numpy(float)).argmax(axis=1) == d.y_valid)))
"""


def cold_subprocess(dataset: str, measured: int, trials: int) -> dict[str, Any]:
    """A new interpreter per trial (imports, data load, fit, score), timed on ``measured`` trials."""
    load0 = load()
    t0 = time.perf_counter()
    for i in range(measured):
        subprocess.run(
            [sys.executable, "-c", _COLD, dataset, STRATEGIES[i % 4]], check=True, capture_output=True, text=True
        )
    per = (time.perf_counter() - t0) / measured
    return {
        "tool": f"cold subprocess per trial (measured {measured}, extrapolated)",
        "proposer": "-",
        "workers": 1,
        "latency_rows": "-",
        "trials": trials,
        "wall_s": per * trials,
        "trials_per_s": 1 / per,
        "ms_per_trial": 1000 * per,
        "load_before": load0,
        "load_after": load(),
    }


def memory_child(dataset: str, proposer: str, latency_rows: int | None, trials: int) -> dict[str, Any]:
    """One factory run in a new interpreter, so that earlier runs' memory does not hide growth."""
    lat = "default" if latency_rows is None else str(latency_rows)
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", dataset, proposer, lat, str(trials)],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"  {proposer} lat={lat} {trials} trials: RSS {result['rss_mb_at_100']:.1f} MB at trial 100, "
        f"{result['rss_mb_at_end']:.1f} MB at the end",
        flush=True,
    )
    return result


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--memory-child":
        dataset, proposer, lat, trials = sys.argv[2:]
        r = factory_run(dataset, proposer, 1, None if lat == "default" else int(lat), int(trials))
        r["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(r))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=1000, help="trials per run (default 1000)")
    ap.add_argument("--dataset", default="iris", choices=["iris", "breast_cancer"], help="scikit-learn data set")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each configuration; the best is reported")
    ap.add_argument("--cold", type=int, default=20, help="cold-subprocess trials measured (then extrapolated)")
    ap.add_argument("--rss-trials", type=int, default=1000, help="trials of the memory run (b)")
    args = ap.parse_args()
    n = args.trials
    info = machine()
    print(f"{info['date']}  {info['nproc']} CPUs  {info['cpu']}  load {load()}", flush=True)

    rows: list[dict[str, Any]] = []

    def best_of(fn: Any, *a: Any) -> dict[str, Any]:
        runs = [fn(*a) for _ in range(args.repeat)]
        best = max(runs, key=lambda r: r["trials_per_s"])
        best["repeats_trials_per_s"] = [round(r["trials_per_s"], 1) for r in runs]
        print(
            f"  {best['tool']:<34} {best['proposer']:<24} w={best['workers']} lat={best['latency_rows']!s:<12}"
            f" {best['trials_per_s']:8.1f} trials/s  (load {best['load_after'][0]})",
            flush=True,
        )
        rows.append(best)
        return best

    with LoadSampler() as sampler:
        print("warm-up (starts the forkserver; not reported)", flush=True)
        warm = factory_run(args.dataset, "random", 1, 0, 20)
        print(f"  first Factory.run of the process: {warm['wall_s']:.2f}s for 20 trials", flush=True)
        print("(a) darkfab end to end", flush=True)
        d_rand = {}
        for workers in (1, 2):
            d_rand[(workers, None)] = best_of(factory_run, args.dataset, "random", workers, None, n)
            d_rand[(workers, 0)] = best_of(factory_run, args.dataset, "random", workers, 0, n)
        d_tpe = {}
        for workers in (1, 2):
            d_tpe[(workers, 0)] = best_of(factory_run, args.dataset, "tpe", workers, 0, n)
        d_tpe[(1, None)] = best_of(factory_run, args.dataset, "tpe", 1, None, n)
        print("(a) baselines", flush=True)
        floor = best_of(objective_only, args.dataset, n)
        o_rand = best_of(optuna_run, args.dataset, "random", n)
        o_tpe_default = best_of(optuna_run, args.dataset, "tpe (optuna defaults)", n)
        o_tpe = best_of(optuna_run, args.dataset, "tpe (like darkfab)", n)
        cold = cold_subprocess(args.dataset, args.cold, n)
        rows.append(cold)
        print(f"  cold subprocess: {cold['ms_per_trial']:.0f} ms per trial", flush=True)
        print("(b) memory, each run in a fresh interpreter", flush=True)
        mem_small = memory_child(args.dataset, "random", None, 100)
        mem_big = memory_child(args.dataset, "random", None, args.rss_trials)
        mem_tpe = memory_child(args.dataset, "tpe", 0, args.rss_trials)
    ru_maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # -- ratios ------------------------------------------------------------------------------------------
    ratios = []
    for (workers, lat), r in sorted(d_rand.items(), key=lambda kv: (kv[0][0], kv[0][1] is None)):
        lat_name = "default (20)" if lat is None else str(lat)
        ratios.append(
            {
                "comparison": f"darkfab random w={workers} lat={lat_name} vs target {TARGET_RATE:.0f}/s",
                "ratio": r["trials_per_s"] / TARGET_RATE,
                "note": f"{r['trials_per_s']:.1f} trials/s, {r['ms_per_trial']:.2f} ms/trial (target <= 3.33)",
            }
        )
        ratios.append(
            {
                "comparison": f"darkfab random w={workers} lat={lat_name}: wall / optuna random in memory",
                "ratio": r["wall_s"] / o_rand["wall_s"],
                "note": f"{r['ms_per_trial'] - o_rand['ms_per_trial']:.2f} ms/trial more",
            }
        )
    for (workers, lat), r in d_tpe.items():
        lat_name = "default (20)" if lat is None else str(lat)
        ratios.append(
            {
                "comparison": f"darkfab tpe w={workers} lat={lat_name}: wall / optuna tpe (like darkfab)",
                "ratio": r["wall_s"] / o_tpe["wall_s"],
                "note": f"target <= {TARGET_TPE_RATIO:.2f}; {r['ms_per_trial'] - o_tpe['ms_per_trial']:+.2f} ms/trial",
            }
        )
    tpe_cost_darkfab = d_tpe[(1, 0)]["ms_per_trial"] - d_rand[(1, 0)]["ms_per_trial"]
    tpe_cost_optuna = o_tpe["ms_per_trial"] - o_rand["ms_per_trial"]
    ratios.append(
        {
            "comparison": "TPE's own cost per trial: darkfab (tpe - random, w=1, lat=0) vs optuna (tpe - random)",
            "ratio": tpe_cost_darkfab / tpe_cost_optuna if tpe_cost_optuna > 0 else float("nan"),
            "note": f"{tpe_cost_darkfab:.2f} ms vs {tpe_cost_optuna:.2f} ms",
        }
    )
    ratios.append(
        {
            "comparison": "optuna tpe (like darkfab) / optuna tpe (defaults)",
            "ratio": o_tpe["wall_s"] / o_tpe_default["wall_s"],
            "note": "",
        }
    )
    best_rand = d_rand[(2, 0)]
    ratios.append(
        {
            "comparison": "cold subprocess per trial / darkfab random w=2 lat=0",
            "ratio": cold["wall_s"] / best_rand["wall_s"],
            "note": "how much the warm pool saves",
        }
    )
    ratios.append(
        {
            "comparison": "darkfab random w=1 lat=0 / objective-only loop",
            "ratio": d_rand[(1, 0)]["wall_s"] / floor["wall_s"],
            "note": f"factory's own cost {d_rand[(1, 0)]['ms_per_trial'] - floor['ms_per_trial']:.2f} ms/trial",
        }
    )

    memory = [
        {
            "run": f"random w=1 lat=default, {m['trials']} trials",
            "rss_mb_at_100": m["rss_mb_at_100"],
            "rss_mb_at_end": m["rss_mb_at_end"],
            "rss_mb_max": m["rss_mb_max"],
            "kb_per_trial_after_100": m["rss_kb_per_trial_after_100"],
            "workers_rss_mb_at_100": m["workers_rss_mb_at_100"],
            "workers_rss_mb_at_end": m["workers_rss_mb_at_end"],
            "ru_maxrss_mb": m["ru_maxrss_mb"],
        }
        for m in (mem_small, mem_big)
    ] + [
        {
            "run": f"tpe w=1 lat=0, {mem_tpe['trials']} trials",
            "rss_mb_at_100": mem_tpe["rss_mb_at_100"],
            "rss_mb_at_end": mem_tpe["rss_mb_at_end"],
            "rss_mb_max": mem_tpe["rss_mb_max"],
            "kb_per_trial_after_100": mem_tpe["rss_kb_per_trial_after_100"],
            "workers_rss_mb_at_100": mem_tpe["workers_rss_mb_at_100"],
            "workers_rss_mb_at_end": mem_tpe["workers_rss_mb_at_end"],
            "ru_maxrss_mb": mem_tpe["ru_maxrss_mb"],
        }
    ]

    cols = ["tool", "proposer", "workers", "latency_rows", "trials", "wall_s", "trials_per_s", "ms_per_trial"]
    detail_cols = [
        "proposer",
        "workers",
        "latency_rows",
        "steady_trials_per_s",
        "block",
        "first_block_trials_per_s",
        "last_block_trials_per_s",
        "startup_s",
        "after_last_trial_s",
        "parent_cpu_ms_per_trial",
        "workers_cpu_ms_per_trial",
        "load_after",
    ]
    print()
    print(f"## (a) trivial trials, {n} per run, data sklearn:{args.dataset}")
    print(table(rows, cols + ["load_after"]))
    print()
    print("## (a) darkfab runs in detail (steady: first trial started .. last finished; block: trials per rate window)")
    print(table([r for r in rows if r["tool"].startswith("darkfab")], detail_cols))
    print()
    print("## (a) ratios")
    print(table(ratios))
    print()
    print("## (b) resident memory of the factory process (sampled at every trial_finished)")
    print(table(memory))
    print(f"load during the benchmark: {sampler.summary()}")
    path = write_json(
        "overhead",
        {
            "machine": info,
            "load": sampler.summary(),
            "args": vars(args),
            "warmup": warm,
            "runs": rows,
            "ratios": ratios,
            "memory": {"runs": [mem_small, mem_big, mem_tpe], "table": memory, "ru_maxrss_mb": ru_maxrss_mb},
        },
    )
    print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
