"""The Trainer contract and the built-in trainers, registered by name with lazy imports."""

from __future__ import annotations

import abc
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SpecError, TrialPruned
from ..patch import CodePatch
from ..spec import ParamSpec, TaskKind, TrainerSpec
from ._model import to_all_classes
from ._prep import Flavour

Report = Callable[[int, np.ndarray], bool]


@dataclass(frozen=True)
class FitContext:
    """What a trainer gets: preprocessed training rows with labels, validation FEATURES only."""

    task: TaskKind
    n_classes: int
    X: np.ndarray
    y: np.ndarray
    X_valid: np.ndarray
    seed: int
    threads: int
    report: Report  # report(step, validation predictions) -> True when the trial must stop
    report_every: int = 0
    patch: CodePatch | None = None  # the code edit a script trainer applies to its script (the trial's own)


class Trainer(abc.ABC):
    """Fits one kind of model. Subclasses are small; the harness does preprocessing and scoring."""

    name: str = ""
    flavour: Flavour = "tree"
    tasks: tuple[TaskKind, ...] = ("classification", "regression")

    def default_space(self, task: TaskKind) -> dict[str, ParamSpec | Any]:
        return {}

    @abc.abstractmethod
    def fit(self, ctx: FitContext, params: dict[str, Any]) -> Any:
        """Return a fitted estimator with ``predict`` (and ``predict_proba`` for classification)."""


def _r(low: float, high: float, log: bool = False) -> ParamSpec:
    return ParamSpec.model_validate({"low": low, "high": high, "log": log})


def _c(*choices: Any) -> ParamSpec:
    return ParamSpec(choices=list(choices))


def _accepts(cls: type[Any], name: str) -> bool:
    try:
        return name in inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return False


class EstimatorTrainer(Trainer):
    """Any scikit-learn compatible estimator class: one for classification, one for regression."""

    def __init__(
        self,
        name: str,
        *,
        classifier: str | None,
        regressor: str | None,
        flavour: Flavour,
        spaces: dict[TaskKind, dict[str, ParamSpec | Any]] | None = None,
        fixed: dict[str, Any] | None = None,
        threads_param: bool = True,
    ) -> None:
        self.name = name
        self.flavour = flavour
        self._paths: dict[TaskKind, str | None] = {"classification": classifier, "regression": regressor}
        self.tasks = tuple(t for t, p in self._paths.items() if p)
        self._spaces = spaces or {}
        self._fixed = fixed or {}
        self.threads_param = threads_param

    def default_space(self, task: TaskKind) -> dict[str, ParamSpec | Any]:
        return dict(self._spaces.get(task, {}))

    def estimator_class(self, task: TaskKind) -> type:
        path = self._paths.get(task)
        if not path:
            raise SpecError(
                f"trainer {self.name!r} cannot do {task}; fix: remove it from `trainers`, or use "
                f"one of: {', '.join(n for n, t in BUILTINS.items() if task in t().tasks)}"
            )
        return import_object(path, f"trainer {self.name!r}")

    def build(self, ctx: FitContext, params: dict[str, Any]) -> Any:
        cls = self.estimator_class(ctx.task)
        kwargs = {**self._fixed, **params}
        if _accepts(cls, "random_state") and "random_state" not in kwargs:
            kwargs["random_state"] = ctx.seed
        if _accepts(cls, "n_jobs") and "n_jobs" not in kwargs and self.threads_param:
            kwargs["n_jobs"] = ctx.threads
        return cls(**kwargs)

    def fit(self, ctx: FitContext, params: dict[str, Any]) -> Any:
        est = self.build(ctx, params)
        est.fit(ctx.X, ctx.y)
        return est


def _booster_predictions(raw: np.ndarray, ctx: FitContext, seen: np.ndarray | None) -> np.ndarray:
    """A booster's raw validation predictions as the factory scores them: one column per class of the task."""
    raw = np.asarray(raw, dtype=float)
    if ctx.task != "classification":
        return raw
    return to_all_classes(raw, np.arange(ctx.n_classes) if seen is None else seen, ctx.n_classes)


def _seen_classes(ctx: FitContext) -> np.ndarray | None:
    """The task's class codes the training rows hold, sorted; None for regression."""
    return np.unique(ctx.y).astype(np.int64) if ctx.task == "classification" else None


class SeenClasses:
    """A classifier fitted on its rows' classes re-coded 0..m-1 (XGBoost refuses gaps such as [0, 2, 3]).

    ``classes_`` holds the task's codes of those m classes, so the model's columns are spread over the
    task's full class list like any scikit-learn classifier's.
    """

    def __init__(self, estimator: Any, classes: np.ndarray) -> None:
        self.estimator = estimator
        self.classes_ = np.asarray(classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(X), dtype=float)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.asarray(self.estimator.predict(X)).astype(np.int64)]


class LightGBMTrainer(EstimatorTrainer):
    def fit(self, ctx: FitContext, params: dict[str, Any]) -> Any:
        est = self.build(ctx, params)
        seen = _seen_classes(ctx)  # LightGBM's columns follow the classes its rows hold
        callbacks = []
        if ctx.report_every > 0:

            def _report(env: Any) -> None:
                step = env.iteration + 1
                if step % ctx.report_every == 0 and step < env.end_iteration:
                    preds = env.model.predict(ctx.X_valid, num_iteration=step)
                    if ctx.report(step, _booster_predictions(preds, ctx, seen)):
                        raise TrialPruned(f"pruned at round {step}")

            callbacks.append(_report)
        est.fit(ctx.X, ctx.y, callbacks=callbacks)
        return est


class XGBoostTrainer(EstimatorTrainer):
    def fit(self, ctx: FitContext, params: dict[str, Any]) -> Any:
        est = self.build(ctx, params)
        seen = _seen_classes(ctx)
        gaps = seen is not None and not np.array_equal(seen, np.arange(len(seen)))
        y = np.searchsorted(seen, ctx.y) if gaps and seen is not None else ctx.y
        if ctx.report_every > 0:
            import xgboost as xgb

            class _Report(xgb.callback.TrainingCallback):
                def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                    step = epoch + 1
                    if step % ctx.report_every == 0:
                        preds = model.inplace_predict(ctx.X_valid, iteration_range=(0, step))
                        if ctx.report(step, _booster_predictions(preds, ctx, seen)):
                            raise TrialPruned(f"pruned at round {step}")
                    return False

            est.set_params(callbacks=[_Report()])
        est.fit(ctx.X, y)
        if ctx.report_every > 0:
            est.set_params(callbacks=None)  # the callback holds the data; keep it out of the artifact
        return SeenClasses(est, seen) if gaps and seen is not None else est


class SVMTrainer(EstimatorTrainer):
    """SVC has no probabilities of its own: they come from sigmoid calibration on 3 internal folds.

    The default space searches ``gamma_factor``, gamma as a multiple of scikit-learn's ``gamma="scale"``
    (1 / (n_features * X.var())), so one range fits every scaling; ``gamma`` itself still works.
    """

    def fit(self, ctx: FitContext, params: dict[str, Any]) -> Any:
        params = dict(params)
        if "gamma_factor" in params:  # relative to sklearn's gamma="scale", so it means the same after any scaling
            var = float(ctx.X.var()) or 1.0
            params["gamma"] = float(params.pop("gamma_factor")) / (ctx.X.shape[1] * var)
        est = self.build(ctx, params)
        if ctx.task == "classification":
            from sklearn.calibration import CalibratedClassifierCV

            est = CalibratedClassifierCV(est, method="sigmoid", cv=3, ensemble=False)
        est.fit(ctx.X, ctx.y)
        return est


_TREES = {
    "n_estimators": _r(50, 400, log=True),
    "max_depth": _r(3, 30, log=True),
    "min_samples_leaf": _r(1, 10, log=True),
    "max_features": _r(0.1, 1.0),
}
_LGBM = {
    "n_estimators": _r(50, 500, log=True),
    "learning_rate": _r(0.01, 0.3, log=True),
    "num_leaves": _r(8, 128, log=True),
    "min_child_samples": _r(5, 60, log=True),
    "subsample": _r(0.6, 1.0),
    "colsample_bytree": _r(0.4, 1.0),
    "reg_lambda": _r(1e-8, 10.0, log=True),
}
_XGB = {
    "n_estimators": _r(50, 500, log=True),
    "learning_rate": _r(0.01, 0.3, log=True),
    "max_depth": _r(2, 10),
    "min_child_weight": _r(1.0, 20.0, log=True),
    "subsample": _r(0.6, 1.0),
    "colsample_bytree": _r(0.4, 1.0),
    "reg_lambda": _r(1e-8, 10.0, log=True),
}
_HGB = {
    "learning_rate": _r(0.01, 0.3, log=True),
    "max_iter": _r(50, 500, log=True),
    "max_leaf_nodes": _r(8, 64, log=True),
    "min_samples_leaf": _r(5, 50, log=True),
    "l2_regularization": _r(1e-8, 10.0, log=True),
}
_SCALING = _c("standard", "minmax")  # consumed by the preprocessing, never passed to the estimator
_SVM = {"C": _r(0.1, 1000.0, log=True), "gamma_factor": _r(0.01, 100.0, log=True), "scaling": _SCALING}
_KNN = {"n_neighbors": _r(1, 50, log=True), "weights": _c("uniform", "distance"), "scaling": _SCALING}


def _both(space: dict[str, Any]) -> dict[TaskKind, dict[str, Any]]:
    return {"classification": space, "regression": space}


BUILTINS: dict[str, Callable[[], Trainer]] = {
    "lightgbm": lambda: LightGBMTrainer(
        "lightgbm",
        classifier="lightgbm:LGBMClassifier",
        regressor="lightgbm:LGBMRegressor",
        flavour="native",
        spaces=_both(_LGBM),
        fixed={"subsample_freq": 1, "verbose": -1},
    ),
    "xgboost": lambda: XGBoostTrainer(
        "xgboost",
        classifier="xgboost:XGBClassifier",
        regressor="xgboost:XGBRegressor",
        flavour="native",
        spaces=_both(_XGB),
        fixed={"tree_method": "hist", "verbosity": 0},
    ),
    "random_forest": lambda: EstimatorTrainer(
        "random_forest",
        classifier="sklearn.ensemble:RandomForestClassifier",
        regressor="sklearn.ensemble:RandomForestRegressor",
        flavour="tree",
        spaces=_both(_TREES),
    ),
    "extra_trees": lambda: EstimatorTrainer(
        "extra_trees",
        classifier="sklearn.ensemble:ExtraTreesClassifier",
        regressor="sklearn.ensemble:ExtraTreesRegressor",
        flavour="tree",
        spaces=_both(_TREES),
    ),
    "gradient_boosting": lambda: EstimatorTrainer(
        "gradient_boosting",
        classifier="sklearn.ensemble:HistGradientBoostingClassifier",
        regressor="sklearn.ensemble:HistGradientBoostingRegressor",
        flavour="native",
        spaces=_both(_HGB),
    ),
    "logistic_regression": lambda: EstimatorTrainer(
        "logistic_regression",
        classifier="sklearn.linear_model:LogisticRegression",
        regressor=None,
        flavour="linear",
        spaces={"classification": {"C": _r(1e-3, 1e3, log=True)}},
        fixed={"max_iter": 2000},
        threads_param=False,
    ),
    "linear_regression": lambda: EstimatorTrainer(
        "linear_regression",
        classifier=None,
        regressor="sklearn.linear_model:Ridge",
        flavour="linear",
        spaces={"regression": {"alpha": _r(1e-4, 1e3, log=True)}},
    ),
    "svm": lambda: SVMTrainer(
        "svm",
        classifier="sklearn.svm:SVC",
        regressor="sklearn.svm:SVR",
        flavour="linear",
        spaces={"classification": _SVM, "regression": {**_SVM, "epsilon": _r(1e-3, 1.0, log=True)}},
    ),
    "knn": lambda: EstimatorTrainer(
        "knn",
        classifier="sklearn.neighbors:KNeighborsClassifier",
        regressor="sklearn.neighbors:KNeighborsRegressor",
        flavour="linear",
        spaces=_both(_KNN),
    ),
}


def import_object(path: str, what: str) -> Any:
    module_name, _, attr = path.replace(":", ".").rpartition(".") if ":" not in path else path.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as err:
        raise SpecError(
            f"{what}: cannot import {path!r} ({err}); fix: check the module and class name, "
            "and that the package is installed where the workers run"
        ) from None


def estimator_class(path: str, what: str) -> type:
    """The class an ``estimator: module:Class`` entry names; SpecError unless it is an estimator class.

    Importing runs the module's code (the factory file is trusted to name it), but the callable itself is only
    ever instantiated and fitted: a function such as ``os:system`` or ``builtins:eval`` is refused here.
    """
    obj = import_object(path, what)
    if not isinstance(obj, type) or not all(callable(getattr(obj, m, None)) for m in ("fit", "predict")):
        kind = "a class" if isinstance(obj, type) else f"a {type(obj).__name__}"
        raise SpecError(
            f"{what}: {path!r} is {kind} without both fit and predict, and the rule is that an estimator is a "
            "class with fit and predict methods (scikit-learn style); fix: name such a class, e.g. "
            "`estimator: sklearn.linear_model:LogisticRegression`, or use `script: train.py` for your own code"
        )
    return obj


def resolve_trainer(spec: TrainerSpec, task: TaskKind) -> Trainer:
    """The trainer a factory file's entry names. Raises SpecError listing the valid names."""
    if getattr(spec, "script", None):
        from .script import ScriptTrainer  # the script module imports this one

        return ScriptTrainer(spec.name, str(spec.script))
    if spec.estimator:
        cls = estimator_class(spec.estimator, f"trainers[{spec.name}].estimator")
        path = f"{cls.__module__}:{cls.__qualname__}"
        return EstimatorTrainer(spec.name, classifier=path, regressor=path, flavour="linear")
    if spec.name not in BUILTINS:
        raise SpecError(
            f"trainers: unknown trainer {spec.name!r}; fix: use one of {', '.join(BUILTINS)}, "
            "or give `estimator: package.module:Class` or `script: train.py` for your own"
        )
    trainer = BUILTINS[spec.name]()
    if task not in trainer.tasks:
        raise SpecError(
            f"trainers: {spec.name!r} cannot do {task}; fix: remove it, or use one of "
            + ", ".join(n for n, f in BUILTINS.items() if task in f().tasks)
        )
    return trainer


def resolved_space(spec: TrainerSpec, task: TaskKind) -> dict[str, ParamSpec | Any]:
    """The search space of one trainer entry: the file's space, or the built-in default; fixed params added."""
    trainer = resolve_trainer(spec, task)
    space: dict[str, ParamSpec | Any] = dict(spec.space) if spec.space is not None else trainer.default_space(task)
    space.update(spec.params)
    return space
