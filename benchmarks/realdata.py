"""Real data sets: darkfab (a factory file with only source and target) against FLAML and an Optuna-TPE
LightGBM loop, each given the same wall time, scored on held-back test rows none of them ever sees.

Run: ``.venv/bin/python benchmarks/realdata.py`` (the full scale of issue 12: 60 s per data set and method,
3 seeds: about 3.5 hours on 2 cores) or reduced, e.g. ``--time 15 --seeds 1`` (about 25 minutes);
``--only iris,tips`` for a subset. Seeds may be run apart and put together: ``--seeds 1`` now,
``--first-seed 1 --seeds 2`` later, then ``--merge A.json B.json`` (each file records the commit it ran at).
Needs ``pip install flaml statsmodels`` (the ``bench`` extra has FLAML).
Writes ``benchmarks/out/realdata-*.json`` and prints the Markdown tables for RESULTS.md.

Data sets ship inside installed packages (nothing is downloaded): scikit-learn's bundled sets, plotly's
``plotly.data`` (CSV files inside the plotly wheel) and statsmodels' ``statsmodels.datasets``. Per data set and
seed the rows are split once: 80% go to a train CSV, 20% are held back. Every method sees the train rows only:

- ``darkfab``: ``darkfab run factory.yaml --time T --json`` (a subprocess, as a user runs it) with a factory
  file holding only ``name`` and ``data: {source: train.csv, target: ...}``; held-back rows scored with
  ``darkfab predict``. Its wall ``W`` includes start-up, the gate and the refit after the search's ``T``;
  the others get ``W`` (``--others-get time``: they get ``T``).
- ``flaml``: ``AutoML.fit(X, y, task, time_budget=W, metric, n_jobs=2, seed)``, FLAML's defaults otherwise
  (its own holdout/CV choice and its refit on all rows).
- ``optuna-lgbm``: what a user writes in twenty lines: a TPE study (seeded) over LightGBM's usual space on a
  75/25 split of the train rows until ``W`` seconds have passed, then the best parameters refit on all of them.

Scores: accuracy (classification), RMSE (regression). The normalized score of a method on a data set is
(score - worst) / (best - worst) over the three methods (RMSE negated), 1 for the best. Over seeds: the winner
has the best mean score (equal means are ties, and count as firsts); "within 1 SE" lists the methods whose mean is
behind the winner's by at most the standard error of that gap, sqrt(SE_winner^2 + SE_method^2), the SEs over seeds.
``HELD_OUT`` data sets were never looked at while darkfab's defaults were chosen; they are reported apart.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import load, machine, table, write_json

Loader = Callable[[], tuple[pd.DataFrame, str, str]]  # frame, target, task


def _sk(name: str) -> Loader:
    def go() -> tuple[pd.DataFrame, str, str]:
        import sklearn.datasets as d

        frame = getattr(d, f"load_{name}")(as_frame=True).frame
        return frame, "target", "regression" if name == "diabetes" else "classification"

    return go


def _plotly(name: str, target: str, task: str, drop: tuple[str, ...] = ()) -> Loader:
    def go() -> tuple[pd.DataFrame, str, str]:
        import plotly.data as d

        return getattr(d, name)().drop(columns=list(drop)), target, task

    return go


def _sm(name: str, target: str, task: str, drop: tuple[str, ...] = (), derive: Any = None) -> Loader:
    def go() -> tuple[pd.DataFrame, str, str]:
        import statsmodels.api as sm

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = getattr(sm.datasets, name).load_pandas().data
        frame = frame.drop(columns=list(drop))
        if derive is not None:
            frame = derive(frame)
        return frame, target, task

    return go


def _fair(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["had_affair"] = np.where(frame.pop("affairs") > 0, "yes", "no")
    return frame


DATASETS: dict[str, Loader] = {
    # scikit-learn (bundled in the wheel)
    "iris": _sk("iris"),
    "wine": _sk("wine"),
    "breast_cancer": _sk("breast_cancer"),
    "digits": _sk("digits"),
    "diabetes": _sk("diabetes"),
    # plotly.data (CSV files inside the plotly wheel)
    "tips": _plotly("tips", "tip", "regression"),
    "tips_time": _plotly("tips", "time", "classification"),
    "gapminder": _plotly("gapminder", "lifeExp", "regression", drop=("iso_alpha", "iso_num")),
    "carshare": _plotly("carshare", "car_hours", "regression"),
    "experiment": _plotly("experiment", "group", "classification"),
    "wind": _plotly("wind", "frequency", "regression"),
    # statsmodels.datasets (bundled in the wheel)
    "anes96": _sm("anes96", "vote", "classification"),
    "fair": _sm("fair", "had_affair", "classification", derive=_fair),
    "randhie": _sm("randhie", "mdvis", "regression"),
    "star98": _sm("star98", "NABOVE", "regression", drop=("NBELOW",)),
    "modechoice": _sm("modechoice", "choice", "classification", drop=("individual",)),
    "grunfeld": _sm("grunfeld", "invest", "regression"),
    "macrodata": _sm("macrodata", "realinv", "regression"),
    "engel": _sm("engel", "foodexp", "regression"),
    "cancer": _sm("cancer", "cancer", "regression"),
    "ccard": _sm("ccard", "AVGEXP", "regression"),
    "statecrime": _sm("statecrime", "violent", "regression"),
}
HELD_OUT = ("carshare", "wind", "modechoice", "macrodata", "star98")
"""Never looked at while darkfab's defaults were chosen; reported apart."""

METHODS = ("darkfab", "flaml", "optuna-lgbm")
REPO = Path(__file__).resolve().parents[1]


def split(frame: pd.DataFrame, target: str, task: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    y = frame[target]
    stratify = y if task == "classification" and y.value_counts().min() >= 2 else None
    train, test = train_test_split(frame, test_size=0.2, random_state=seed, stratify=stratify)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def score(task: str, y_true: pd.Series, y_pred: Any) -> float:
    if task == "classification":
        return float(np.mean(np.asarray(y_true).astype(str) == np.asarray(y_pred).astype(str)))
    return float(np.sqrt(np.mean((np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float)) ** 2)))


# -- the methods --------------------------------------------------------------------------------------


def run_darkfab(
    train: pd.DataFrame, test: pd.DataFrame, target: str, task: str, seed: int, t: float, extra: str = ""
) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        train.to_csv(d / "train.csv", index=False)
        test.drop(columns=[target]).to_csv(d / "rows.csv", index=False)
        (d / "factory.yaml").write_text(f"name: bench\ndata: {{source: train.csv, target: {target}}}\n{extra}\n")
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "DARKFAB_ARTIFACTS": str(d / "artifacts")}
        env.pop("DARKFAB_STORE", None)
        store = f"sqlite:///{d / 'store.db'}"
        base = [sys.executable, "-m", "darkfab"]
        run = [*base, "run", "factory.yaml", "--time", f"{t}s", "--seed", str(seed), "--store", store, "--json"]
        proc = subprocess.run(run, cwd=d, env=env, capture_output=True, text=True, timeout=t * 4 + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"darkfab run failed: {proc.stderr[-800:]}")
        result = json.loads(proc.stdout)
        if result.get("champion") is None:  # darkfab's failure on this data set, with the gate's reason
            raise RuntimeError(f"darkfab registered no model: {(result.get('gate') or {}).get('reason', '?')}")
        pred = [*base, "predict", "factory.yaml", "rows.csv", "-o", "out.csv", "--store", store]
        proc = subprocess.run(pred, cwd=d, env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"darkfab predict failed: {proc.stderr[-800:]}")
        out = pd.read_csv(d / "out.csv")
        champion = result.get("champion") or {}
        gate = result.get("gate") or {}
        info = {
            "trainer": champion.get("trainer"),
            "trials": result["budget"]["spent"]["trials"],
            "weak_evidence": bool(gate.get("weak_evidence")),  # the first champion passed on weaker evidence
        }
        return out[target].to_numpy(), info


def _frame_for_trees(X: pd.DataFrame) -> pd.DataFrame:
    X = X.copy()
    for c in X.columns:
        if not pd.api.types.is_numeric_dtype(X[c]):
            X[c] = X[c].astype("category")
    return X


def run_flaml(train: pd.DataFrame, test: pd.DataFrame, target: str, task: str, seed: int, t: float) -> Any:
    from flaml import AutoML

    automl = AutoML()
    X, y = _frame_for_trees(train.drop(columns=[target])), train[target]
    if task == "classification":
        y = y.astype(str)
    automl.fit(
        X,
        y,
        task=task,
        time_budget=t,
        metric="accuracy" if task == "classification" else "rmse",
        n_jobs=2,
        seed=seed,
        verbose=0,
    )
    Xt = _frame_for_trees(test.drop(columns=[target]))
    return automl.predict(Xt), {"trainer": automl.best_estimator}


def run_optuna(train: pd.DataFrame, test: pd.DataFrame, target: str, task: str, seed: int, t: float) -> Any:
    import lightgbm as lgb
    import optuna
    from sklearn.model_selection import train_test_split

    optuna.logging.set_verbosity(logging.WARNING)
    X, y = _frame_for_trees(train.drop(columns=[target])), train[target]
    if task == "classification":
        y = y.astype(str)
    Model = lgb.LGBMClassifier if task == "classification" else lgb.LGBMRegressor
    strat = y if task == "classification" and y.value_counts().min() >= 2 else None
    Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=strat)

    def objective(trial: optuna.Trial) -> float:
        params = {
            "n_estimators": trial.suggest_int("n_estimators", 50, 500, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 60, log=True),
            "subsample": trial.suggest_float("subsample", 0.6, 1.0),
            "subsample_freq": 1,
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-8, 10.0, log=True),
        }
        model = Model(**params, random_state=seed, n_jobs=2, verbose=-1).fit(Xa, ya)
        s = score(task, yb, model.predict(Xb))
        return s if task == "classification" else -s

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, timeout=t)
    best = {**study.best_params, "subsample_freq": 1}
    model = Model(**best, random_state=seed, n_jobs=2, verbose=-1).fit(X, y)
    Xt = _frame_for_trees(test.drop(columns=[target]))
    return model.predict(Xt), {"trainer": "lightgbm", "trials": len(study.trials)}


RUNNERS = {"darkfab": run_darkfab, "flaml": run_flaml, "optuna-lgbm": run_optuna}


# -- the report ---------------------------------------------------------------------------------------


def summarise(results: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    norm: dict[str, list[float]] = {m: [] for m in METHODS}
    for name in dict.fromkeys(r["dataset"] for r in results):
        mine = [r for r in results if r["dataset"] == name]
        task = mine[0]["task"]
        sign = 1.0 if task == "classification" else -1.0
        stats: dict[str, tuple[float, float]] = {}
        for m in METHODS:
            vals = [r["score"] for r in mine if r["method"] == m and r["score"] is not None]
            if vals:
                se = statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else 0.0
                stats[m] = (statistics.fmean(vals), se)
        if not stats:
            continue
        best = max(stats, key=lambda m: sign * stats[m][0])
        firsts = [m for m in stats if math.isclose(stats[m][0], stats[best][0], rel_tol=1e-9)]
        # within one standard error of the best: the gap of the means at most the standard error of that gap
        close = [m for m in stats if sign * (stats[best][0] - stats[m][0]) <= math.hypot(stats[best][1], stats[m][1])]
        hi = max(sign * v for v, _ in stats.values())
        lo = min(sign * v for v, _ in stats.values())
        row: dict[str, Any] = {"data set": name, "task": task[:5], "metric": "accuracy" if sign > 0 else "rmse"}
        for m in METHODS:
            if m in stats:
                row[m] = stats[m][0]
                n = 1.0 if hi == lo else (sign * stats[m][0] - lo) / (hi - lo)
                norm[m].append(n)
            else:
                row[m] = None
        row["winner"] = "+".join(firsts)
        row["within 1 SE"] = "+".join(close)
        row["held out"] = "yes" if name in HELD_OUT else ""
        rows.append(row)
    firsts_of = {m: sum(1 for r in rows if m in r["winner"].split("+")) for m in METHODS}
    close_of = {m: sum(1 for r in rows if m in r["within 1 SE"].split("+")) for m in METHODS}
    summary = {
        "mean normalized score": {m: round(statistics.fmean(v), 4) if v else None for m, v in norm.items()},
        "first or tied first": {m: f"{firsts_of[m]} of {len(rows)}" for m in METHODS},
        "within one SE of the first": {m: f"{close_of[m]} of {len(rows)}" for m in METHODS},
        "more than one SE behind": {m: f"{len(rows) - close_of[m]} of {len(rows)}" for m in METHODS},
    }
    return rows, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time", type=float, default=60.0, help="seconds per data set and method (issue 12: 60)")
    ap.add_argument("--seeds", type=int, default=3, help="splits and method seeds per data set (issue 12: 3)")
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed .. first-seed+seeds-1")
    ap.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="no run: one table from earlier runs' JSON files (e.g. seed 0 and seeds 1-2 run apart; every file "
        "must have the same --time and --others-get; the commits each ran at are listed)",
    )
    ap.add_argument(
        "--replace",
        action="store_true",
        help="with --merge: a later file's result for a data set, seed and method replaces the earlier files' (a "
        "rerun, e.g. of darkfab alone after a change; the others keep the time the earlier darkfab run gave them; "
        "listed in the merged file under 'replaced')",
    )
    ap.add_argument("--only", default="", help="comma-separated data sets (default: all)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument(
        "--factory-extra",
        default="",
        help="YAML lines added to darkfab's factory file, e.g. 'search: {pruner: none}' (an ablation; recorded)",
    )
    ap.add_argument(
        "--others-get",
        choices=("wall", "time"),
        default="wall",
        help="wall: FLAML and the Optuna loop get the wall time darkfab's run took (start-up, gate and refit "
        "included; the issue's 'same wall time'); time: they get --time, as darkfab's search does",
    )
    args = ap.parse_args()
    if args.merge:
        merge(args)
        return
    names = [n for n in args.only.split(",") if n] or list(DATASETS)
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise SystemExit(f"unknown data set(s) {unknown}; choose from {', '.join(DATASETS)}")
    methods = [m for m in args.methods.split(",") if m]
    runners = {**RUNNERS, "darkfab": functools.partial(run_darkfab, extra=args.factory_extra)}
    results: list[dict[str, Any]] = []
    started = time.time()
    args.commit = commit()  # at the start: darkfab's runs import this checkout's src as it is when they start
    for name in names:
        frame, target, task = DATASETS[name]()
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            train, test = split(frame, target, task, seed)
            given = args.time
            for m in methods:
                t0 = time.perf_counter()
                try:
                    pred, info = runners[m](train, test, target, task, seed, given)
                    s, error = score(task, test[target], pred), None
                except Exception as err:  # a method failing on a data set is a result, not a crash
                    s, info, error = None, {}, f"{type(err).__name__}: {str(err)[-300:]}"
                wall = time.perf_counter() - t0
                if m == "darkfab" and args.others_get == "wall" and error is None:
                    given = wall
                results.append(
                    {"dataset": name, "task": task, "rows": len(frame), "seed": seed, "method": m, "score": s, "given_s": round(given, 1),
                     "wall_s": round(wall, 1), "error": error, "load": load(), **info}
                )  # fmt: skip
                shown = "failed: " + error if error else f"{s:.4f}"
                print(f"{name:14s} seed {seed} {m:12s} {shown}  ({wall:.0f}s)", flush=True)
        report(results, args, started)  # after every data set, so a stopped run still leaves its figures
    payload, path = report(results, args, started)
    print_tables(payload, path)
    walls = {m: round(statistics.fmean(r["wall_s"] for r in results if r["method"] == m), 1) for m in methods}
    print("mean wall per run (s):", walls)


def merge(args: argparse.Namespace) -> None:
    """One report from several runs' JSON files: their results together, each seed of a data set once."""
    runs = [json.loads(Path(f).read_text()) for f in args.merge]
    scales = {(r["time_s"], r["others_get"], r.get("factory_extra", "")) for r in runs}
    if len(scales) > 1:
        raise SystemExit(f"the files were run at different scales (time, others-get, factory-extra): {sorted(scales)}")
    results: dict[tuple[str, int, str], dict[str, Any]] = {}
    replaced: list[str] = []
    for run in runs:
        for r in run["results"]:
            key = (r["dataset"], r["seed"], r["method"])
            if key in results:
                if not args.replace:
                    raise SystemExit(
                        f"{key[0]} seed {key[1]} {key[2]} is in more than one file; merge runs of other seeds, or "
                        "pass --replace to let a later file's rerun replace the earlier result"
                    )
                replaced.append(f"{key[0]} seed {key[1]} {key[2]} (now from {run.get('commit', '?')})")
            results[key] = r
    args.time, args.others_get = runs[0]["time_s"], runs[0]["others_get"]
    args.factory_extra = runs[0].get("factory_extra", "")
    args.seeds = len({r["seed"] for r in results.values()})
    args.commit = sorted({str(run.get("commit", "?")) for run in runs})
    args.replaced = replaced
    payload, path = report(list(results.values()), args, time.time())
    print_tables(payload, path)


def print_tables(payload: dict[str, Any], path: Path) -> None:
    rows = payload["table"]
    kept = [r for r in rows if not r["held out"]]
    held = [r for r in rows if r["held out"]]
    cols = ["data set", "task", "metric", *METHODS, "winner", "within 1 SE", "held out"]
    print(table(kept + held, cols))
    for key in ("summary", "summary_tuned_on", "summary_held_out"):
        print(key, json.dumps(payload[key]))
    print(f"wrote {path}")


def commit() -> str:
    """The commit of this checkout (a trailing + when it has uncommitted changes)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return "?"
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "")


def report(results: list[dict[str, Any]], args: argparse.Namespace, started: float) -> tuple[dict[str, Any], Path]:
    rows, summary = summarise(results)
    payload = {
        "machine": machine(),
        "commit": args.commit,  # this run's (read at its start), or the merged files' commits
        "time_s": args.time,
        "others_get": args.others_get,
        "factory_extra": getattr(args, "factory_extra", ""),
        "seeds": args.seeds,
        "results": results,
        "table": rows,
        "summary": summary,
        "summary_tuned_on": summarise([r for r in results if r["dataset"] not in HELD_OUT])[1],
        "summary_held_out": summarise([r for r in results if r["dataset"] in HELD_OUT])[1],
        "minutes": round((time.time() - started) / 60, 1),
        "replaced": getattr(args, "replaced", []),  # with --merge --replace: the results a rerun replaced
    }
    return payload, write_json("realdata", payload)


if __name__ == "__main__":
    main()
