"""The built-in default factory and the commented starter file of `darkfab init`."""

from __future__ import annotations

from ._load import spec_from_dict
from ._metrics import TaskKind
from ._models import FactorySpec, TrainerSpec

LARGE_ROWS = 50_000
"""From this many labelled rows on, the default trainers leave out the forests (slow to fit, large to keep)."""
SVM_ROWS = 5_000
"""Below this many labelled rows a classification factory also searches a kernel SVM (its fit grows with the
square of the rows; on small sets of smooth numeric features, digits say, it beats the trees)."""


def default_trainers(task: TaskKind, n_rows: int) -> list[TrainerSpec]:
    """The trainers a factory file without `trainers:` searches over, chosen by task and size.

    Gradient boosting first (the strongest single family on tabular data), randomised trees for small
    and noisy sets, and one linear model that can do the task (logistic regression cannot regress).
    """
    names = ["lightgbm", "xgboost"]
    if n_rows < LARGE_ROWS:
        names += ["random_forest", "extra_trees"]
    if task == "classification" and n_rows < SVM_ROWS:
        names.append("svm")
    names.append("logistic_regression" if task == "classification" else "linear_regression")
    return [TrainerSpec(name=n) for n in names]


def fit_to_data(spec: FactorySpec, task: TaskKind, n_rows: int) -> FactorySpec:
    """The spec with task-aware default trainers when the file names none; unchanged otherwise."""
    if "trainers" in spec.model_fields_set:
        return spec
    return spec.model_copy(update={"trainers": default_trainers(task, n_rows)})


DEFAULT_FACTORY: dict = {
    "name": "digits",
    "data": {"source": "sklearn:digits", "target": "target", "split": {"valid": 0.2, "test": 0.2, "seed": 0}},
    "objective": {"metric": "accuracy"},
    "trainers": ["svm", "logistic_regression", "random_forest", "lightgbm"],
    "search": {"proposer": "tpe", "pruner": "median", "startup_trials": 8},
    "budget": {"trials": 100, "time": "120s"},
    "execution": {"workers": 2, "trial_timeout": "60s"},
    "gate": {"min_improvement": 0.0, "confidence": 0.9},
    # the demo of `darkfab run` (no file): a winner goes to canary once a champion serves; windows small
    # enough to see a drift within a few hundred requests
    "deploy": {"mode": "canary", "share": 0.3, "min_requests": 60, "max_latency_ratio": 3.0},
    "monitor": {"window": 150, "drift_share": 0.7, "quality_drop": 0.1},
}


def default_spec() -> FactorySpec:
    return spec_from_dict(DEFAULT_FACTORY, "the built-in default factory")


STARTER = """\
# darkfab factory file. Validate it and see every field with `darkfab schema`.
name: my-factory                 # letters, digits, _ . - ; records are kept under this name

data:
  source: sklearn:breast_cancer  # a CSV or Parquet path (relative to this file), sklearn:NAME,
                                 # or a SQLAlchemy URL together with `query:`
  target: target                 # the column to predict
  # group: sex                   # fairness is measured across this column's groups
  # time: date                   # order rows by this column: the newest rows become the sealed test
  # exclude: [id]                # columns that are never features
  # keep_leaky: [refund_date]    # keep a column that gives the target away (dropped by default)
  split: {valid: 0.2, test: 0.2, seed: 0}

# task: classification           # or regression; inferred from the target when absent

objective:
  metric: roc_auc                # accuracy, balanced_accuracy, f1, roc_auc, log_loss, ece, rmse, mae, r2
  constraints:                   # hard limits: a candidate breaking one always ranks below those that don't
    - latency_p95_ms <= 20
    - model_size_mb <= 50
  weights: {roc_auc: 1.0}        # reward = normalised weighted sum of metrics
  # description: raise ROC AUC by 2 points without going over 10 ms p95

trainers:                        # built-in: lightgbm, xgboost, random_forest, extra_trees,
  - lightgbm                     # gradient_boosting, logistic_regression, linear_regression, svm, knn
  - random_forest
  - name: logistic_regression
    space:                       # replaces the built-in space; a plain value fixes a parameter
      C: {low: 0.001, high: 100.0, log: true}
  # - name: my_tree
  #   estimator: sklearn.tree:DecisionTreeClassifier
  #   space: {max_depth: {low: 2, high: 12}}

search:
  proposer: tpe                  # tpe, random, cmaes, qmc, nsga2 (multi-objective)
  pruner: median                 # none, median, successive_halving, hyperband
  seed: 0

budget:                          # hard limits; command-line --trials/--time override them
  trials: 30
  time: 5m
  # cpu: 30m

execution:
  workers: 2
  trial_timeout: 2m              # a trial running longer is killed
  memory_mb: 4096                # a trial using more memory is killed
  retries: 1                     # retries after an infrastructure fault

gate:
  min_improvement: 0.0           # margin over the champion on the sealed test
  confidence: 0.9                # bootstrap probability that the margin holds
  # sealed_budget: 20            # gate decisions per sealed test set; then the rows are split afresh
  # approval: none               # required: the winner waits as 'pending' for `darkfab approve`

deploy:                          # how a gate winner reaches traffic once a champion is served
  mode: direct                   # direct: it becomes champion; canary or shadow: challenger first
  # share: 0.1                   # canary: share of requests the challenger answers
  # min_requests: 200            # challenger requests before it is promoted or rolled back

monitor:                         # `darkfab run factory.yaml --forever` serves, watches and retrains
  window: 500                    # rows of live traffic per drift test
  # quality_drop: 0.05           # live quality this far below the sealed-test score starts a campaign
  # webhook: https://hooks.example.com/darkfab   # alerts (drift, rollback, budget, failure) as JSON POSTs
"""
