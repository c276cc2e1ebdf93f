"""Sealed-test accuracy and wall time: darkfab's factory against Optuna and FLAML on the same splits.

Run: ``.venv/bin/python benchmarks/search_quality.py`` (``--quick``, the default: 4 data sets, 1 seed,
20 trials, about 7-9 minutes on 2 cores) or ``--full`` (3 seeds, 30 trials, FLAML also against the default
factory; about 30 minutes). Writes ``benchmarks/out/search_quality-*.json``.

Per data set and seed, every tool gets the identical train / validation / sealed-test split
(``darkfab.data.load_dataset`` with ``split.seed`` = the seed), fits on train, selects on validation
accuracy and is scored once on the sealed test:

- ``darkfab lightgbm``: ``Factory.run`` with the single trainer ``lightgbm`` (its default space) and the
  factory's defaults otherwise (TPE proposer, median pruner, 10 startup trials), 1 worker by default.
- ``optuna tpe`` / ``optuna random``: an in-process Optuna study (``TPESampler(seed)`` with Optuna's
  defaults / ``RandomSampler(seed)``, no pruner) over the same space, building the same model: darkfab's
  LightGBM trainer on darkfab's ``native`` preprocessing of the same rows, same trial seeds.
- ``flaml (default estimators)`` / ``flaml ['lgbm']``: ``AutoML.fit`` with ``time_budget`` = darkfab's wall
  seconds, ``X_val``/``y_val`` = the validation split, ``metric="accuracy"``, ``n_jobs`` = darkfab's
  workers, ``retrain_full=False`` (so it, too, never trains on the validation rows).
- ``darkfab default factory`` (digits only, once per seed): ``darkfab.spec.default_spec()`` as shipped
  (svm, logistic regression, random forest, LightGBM; 100 trials or 120 s; 2 workers), seeded like the rest.
  With ``--full``, FLAML (default estimators) gets that run's wall time too.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import tempfile
import time
import warnings
from typing import Any

import numpy as np
from _common import LoadSampler, load, machine, table, write_json

import darkfab
from darkfab.data import Dataset, load_dataset
from darkfab.spec import FactorySpec, ParamSpec, TrainerSpec, default_spec, spec_from_dict
from darkfab.train import FitContext, Preprocessor, resolve_trainer, resolved_space

DATASETS = ("digits", "breast_cancer", "wine", "generated")


def make_source(name: str, seed: int, tmp: str) -> str:
    if name != "generated":
        return f"sklearn:{name}"
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=20000, n_features=20, n_informative=10, random_state=seed)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["target"] = y
    path = os.path.join(tmp, f"generated-{seed}.parquet")
    frame.to_parquet(path, index=False)
    return path


def lightgbm_spec(source: str, seed: int, trials: int, workers: int) -> FactorySpec:
    return spec_from_dict(
        {
            "name": "bench-quality",
            "data": {"source": source, "target": "target", "split": {"valid": 0.2, "test": 0.2, "seed": seed}},
            "objective": {"metric": "accuracy"},
            "trainers": ["lightgbm"],
            "search": {"seed": seed},
            "budget": {"trials": trials, "time": "1h"},
            "execution": {"workers": workers, "trial_timeout": "10m"},
        },
        "benchmarks/search_quality.py",
    )


def _sealed(result: Any) -> float:
    if result.champion is None:  # nothing passed the gate: nothing is registered
        return math.nan
    return float(result.champion.metrics["sealed_test"]["score"])


def run_darkfab(spec: FactorySpec, label: str) -> dict[str, Any]:
    load0 = load()
    with tempfile.TemporaryDirectory(prefix="darkfab-bench-") as tmp:
        factory = darkfab.Factory(spec, store=f"sqlite:///{tmp}/store.db")
        t0 = time.perf_counter()
        result = factory.run()
        wall = time.perf_counter() - t0
        factory.close()
    champ = result.champion
    return {
        "tool": label,
        "test_acc": _sealed(result),
        "valid_acc": float(champ.metrics["valid"]["accuracy"]) if champ else math.nan,
        "wall_s": wall,
        "trials": result.budget["spent"]["trials"],
        "pruned": result.trials.get("pruned", 0),
        "failed": result.trials.get("failed", 0),
        "chosen": champ.trainer if champ else None,
        "gate": (result.gate or {}).get("reason"),
        "load_before": load0,
        "load_after": load(),
    }


def _suggest(trial: Any, name: str, p: ParamSpec) -> Any:
    if p.type == "categorical":
        return trial.suggest_categorical(name, p.choices)
    if p.type == "int":
        step = 1 if p.step is None else int(p.step)
        return trial.suggest_int(name, int(p.low), int(p.high), step=step, log=p.log)
    return trial.suggest_float(name, float(p.low), float(p.high), step=p.step, log=p.log)


def run_optuna(data: Dataset, spec: FactorySpec, sampler_name: str, trials: int, seed: int) -> dict[str, Any]:
    """Same trainer, space, preprocessing, rows and trial seeds as darkfab's; in-process, no pruner."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    tspec = TrainerSpec(name="lightgbm")
    trainer = resolve_trainer(tspec, data.task)
    space = resolved_space(tspec, data.task)
    load0 = load()
    t0 = time.perf_counter()
    prep = Preprocessor(dict(data.feature_types), trainer.flavour).fit(data.X_train)
    X, X_valid, X_test = (prep.transform(f) for f in (data.X_train, data.X_valid, data.X_test))
    best: dict[str, Any] = {"valid": -math.inf, "model": None}

    def objective(trial: optuna.Trial) -> float:
        params = {k: _suggest(trial, k, v) if isinstance(v, ParamSpec) else v for k, v in space.items()}
        ctx = FitContext(
            task=data.task,
            n_classes=data.n_classes,
            X=X,
            y=data.y_train,
            X_valid=X_valid,
            seed=spec.search.seed * 100_003 + trial.number,  # darkfab's trial seeds
            threads=spec.execution.threads,
            report=lambda step, preds: False,
        )
        model = trainer.fit(ctx, params)
        acc = float(np.mean(model.predict_proba(X_valid).argmax(axis=1) == data.y_valid))
        if acc > best["valid"]:
            best.update(valid=acc, model=model)
        return acc

    sampler = (
        optuna.samplers.TPESampler(seed=seed) if sampler_name == "tpe" else optuna.samplers.RandomSampler(seed=seed)
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=trials)
    test_acc = float(np.mean(best["model"].predict_proba(X_test).argmax(axis=1) == data.y_test))
    return {
        "tool": f"optuna {sampler_name}",
        "test_acc": test_acc,
        "valid_acc": best["valid"],
        "wall_s": time.perf_counter() - t0,
        "trials": trials,
        "pruned": 0,
        "failed": 0,
        "chosen": "lightgbm",
        "load_before": load0,
        "load_after": load(),
    }


def run_flaml(data: Dataset, budget_s: float, estimators: list[str] | None, seed: int, n_jobs: int) -> dict[str, Any]:
    from flaml import AutoML

    logging.getLogger("flaml.automl.logger").setLevel(logging.ERROR)
    automl = AutoML()
    load0 = load()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        automl.fit(
            X_train=data.X_train,
            y_train=data.y_train,
            X_val=data.X_valid,
            y_val=data.y_valid,
            task="classification",
            metric="accuracy",
            time_budget=max(1.0, budget_s),
            estimator_list=estimators if estimators else "auto",
            n_jobs=n_jobs,
            seed=seed,
            verbose=0,
            retrain_full=False,
        )
        wall = time.perf_counter() - t0
        pred = automl.predict(data.X_test)
    return {
        "tool": f"flaml {estimators}" if estimators else "flaml (default estimators)",
        "test_acc": float(np.mean(np.asarray(pred) == data.y_test)),
        "valid_acc": 1.0 - float(automl.best_loss),
        "wall_s": wall,
        "budget_s": budget_s,
        "trials": len(automl.config_history),
        "pruned": 0,
        "failed": 0,
        "chosen": automl.best_estimator,
        "load_before": load0,
        "load_after": load(),
    }


def default_factory_spec(seed: int, workers: int | None) -> FactorySpec:
    base = default_spec().model_dump(mode="json")
    base["name"] = "bench-quality-default"
    base["data"]["split"]["seed"] = seed
    base["search"]["seed"] = seed
    if workers is not None:
        base["execution"]["workers"] = workers
    return spec_from_dict(base, "darkfab.spec.default_spec() (seeded)")


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    keys = sorted({(r["dataset"], r["tool"]) for r in rows}, key=lambda k: (DATASETS.index(k[0]), k[1]))
    for dataset, tool in keys:
        mine = [r for r in rows if r["dataset"] == dataset and r["tool"] == tool]
        acc = [r["test_acc"] for r in mine]
        ref = [
            r["test_acc"]
            for r in rows
            if r["dataset"] == dataset and r["tool"] == "darkfab lightgbm" and r["seed"] in {m["seed"] for m in mine}
        ]
        out.append(
            {
                "dataset": dataset,
                "tool": tool,
                "seeds": len(mine),
                "test_acc_mean": statistics.fmean(acc),
                "test_acc_sd": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                "minus_darkfab_lgbm": statistics.fmean(acc) - statistics.fmean(ref) if ref else math.nan,
                "valid_acc_mean": statistics.fmean(r["valid_acc"] for r in mine),
                "wall_s_mean": statistics.fmean(r["wall_s"] for r in mine),
                "trials_mean": statistics.fmean(r["trials"] for r in mine),
                "pruned_mean": statistics.fmean(r["pruned"] for r in mine),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the default: 1 seed, 20 trials")
    mode.add_argument("--full", action="store_true", help="3 seeds, 30 trials, FLAML against the default factory")
    ap.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    ap.add_argument("--seeds", type=int, help="number of seeds (0, 1, ...)")
    ap.add_argument("--trials", type=int, help="trials of darkfab and of each Optuna study")
    ap.add_argument("--workers", type=int, default=1, help="darkfab's workers and FLAML's n_jobs (default 1)")
    ap.add_argument("--no-flaml-lgbm", action="store_true", help="skip FLAML restricted to ['lgbm']")
    ap.add_argument("--no-default-factory", action="store_true", help="skip darkfab's built-in default factory")
    args = ap.parse_args()
    seeds = args.seeds or (3 if args.full else 1)
    trials = args.trials or (30 if args.full else 20)
    info = machine()
    print(f"{info['date']}  {info['nproc']} CPUs  {info['cpu']}  load {load()}", flush=True)
    print(f"mode {'full' if args.full else 'quick'}: {seeds} seed(s), {trials} trials, data {args.datasets}")
    rows: list[dict[str, Any]] = []

    def record(row: dict[str, Any], dataset: str, seed: int) -> None:
        row.update(dataset=dataset, seed=seed)
        rows.append(row)
        print(
            f"  {dataset:<14} seed {seed}  {row['tool']:<28} test {row['test_acc']:.4f}  valid {row['valid_acc']:.4f}"
            f"  {row['wall_s']:6.1f}s  trials {row['trials']}  load {row['load_after'][0]}",
            flush=True,
        )

    with LoadSampler() as sampler, tempfile.TemporaryDirectory(prefix="darkfab-bench-data-") as tmp:
        # the first Factory.run of a process also starts the fork server (about a second): not timed
        run_darkfab(lightgbm_spec("sklearn:wine", 0, 2, args.workers), "warm-up")
        for seed in range(seeds):
            for dataset in args.datasets:
                source = make_source(dataset, seed, tmp)
                spec = lightgbm_spec(source, seed, trials, args.workers)
                data = load_dataset(spec)
                d = run_darkfab(spec, "darkfab lightgbm")
                record(d, dataset, seed)
                record(run_optuna(data, spec, "tpe", trials, seed), dataset, seed)
                record(run_optuna(data, spec, "random", trials, seed), dataset, seed)
                record(run_flaml(data, d["wall_s"], None, seed, args.workers), dataset, seed)
                if not args.no_flaml_lgbm:
                    record(run_flaml(data, d["wall_s"], ["lgbm"], seed, args.workers), dataset, seed)
                if dataset == "digits" and not args.no_default_factory:
                    dspec = default_factory_spec(seed, None)
                    dd = run_darkfab(dspec, "darkfab default factory")
                    record(dd, dataset, seed)
                    if args.full:
                        f = run_flaml(load_dataset(dspec), dd["wall_s"], None, seed, dspec.execution.workers)
                        f["tool"] = "flaml (default est.) @ default factory's wall"
                        record(f, dataset, seed)
    summary = summarise(rows)
    print()
    print(f"## sealed-test accuracy, mean over {seeds} seed(s); {trials} trials for darkfab lightgbm and Optuna")
    print(table(summary))
    print()
    overall = []
    for tool in sorted({r["tool"] for r in summary if r["dataset"] in args.datasets}):
        mine = [r for r in summary if r["tool"] == tool]
        if len(mine) == len(args.datasets):
            overall.append(
                {
                    "tool": tool,
                    "mean_test_acc_over_datasets": statistics.fmean(r["test_acc_mean"] for r in mine),
                    "mean_minus_darkfab_lgbm": statistics.fmean(r["minus_darkfab_lgbm"] for r in mine),
                    "total_wall_s": sum(r["wall_s_mean"] for r in mine),
                }
            )
    print(table(overall))
    print(f"load during the benchmark: {sampler.summary()}")
    path = write_json(
        "search_quality",
        {
            "machine": info,
            "load": sampler.summary(),
            "args": vars(args),
            "seeds": seeds,
            "trials": trials,
            "rows": rows,
            "summary": summary,
            "overall": overall,
        },
    )
    print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
