"""Pydantic models of the factory file. Every model forbids unknown fields, so a typo is an error."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from ._metrics import DEFAULT_PRIMARY, METRICS, TaskKind
from ._registry import RegistrySpec

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_UNIT_SECONDS = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """``90``, ``"90s"``, ``"10m"``, ``"1.5h"``, ``"250ms"`` -> seconds as a float."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string such as '90s', '10m', '1h'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(
                f"{value!r} is not a duration; write a number of seconds or a string such as '90s', '10m', '1h'"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitSpec(_Model):
    """Fractions of the rows held out for validation and for the sealed test."""

    valid: float = Field(0.2, gt=0.0, lt=1.0)
    test: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = 0

    @model_validator(mode="after")
    def _room_for_training(self) -> SplitSpec:
        if self.valid + self.test >= 0.9:
            raise ValueError(
                f"valid + test must be below 0.9 to leave rows for training, got {self.valid} + {self.test}"
            )
        return self


class DataSpec(_Model):
    """Where the rows come from and which column is what."""

    source: str = Field(description="CSV or Parquet path, a SQLAlchemy URL (with `query`), or sklearn:NAME")
    query: str | None = Field(None, description="SQL query, required when `source` is a database URL")
    target: str | None = Field(None, description="target column; defaults to `target` for sklearn sources")
    group: str | None = Field(None, description="column whose groups fairness is measured across")
    time: str | None = Field(None, description="column that orders rows; makes the split time-ordered")
    exclude: list[str] = Field(default_factory=list, description="columns that are never features")
    keep_leaky: list[str] = Field(
        default_factory=list,
        description="columns kept as features even though they give the target away (a leak found in the "
        "training rows is dropped from training unless named here)",
    )
    split: SplitSpec = Field(default_factory=SplitSpec)


class ParamSpec(_Model):
    """One dimension of a search space: a numeric range or a list of choices."""

    type: Literal["int", "float", "categorical"] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _infer_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") is None and data.get("choices") is None:
            low, high = data.get("low"), data.get("high")
            ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high))
            data = {**data, "type": "int" if ints else "float"}
        return data

    @model_validator(mode="after")
    def _complete(self) -> ParamSpec:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either `choices` or `low` and `high`, not both")
            if not self.choices:
                raise ValueError("`choices` must list at least one value")
            object.__setattr__(self, "type", "categorical")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a range needs both `low` and `high` (or give `choices`)")
        if self.low > self.high:
            raise ValueError(f"`low <= high` must hold, got low={self.low:g}, high={self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={self.low:g}")
        return self


def _coerce_param(value: Any) -> Any:
    if isinstance(value, dict):
        return ParamSpec.model_validate(value)
    return value  # a fixed value


SpaceEntry = Annotated[ParamSpec | Any, BeforeValidator(_coerce_param)]


class TrainerSpec(_Model):
    """A trainer by built-in name, any scikit-learn estimator by import path, or a training script."""

    name: str = Field(description="built-in name (lightgbm, random_forest, ...) or your own label")
    estimator: str | None = Field(
        None, description="import path of a scikit-learn compatible estimator, `package.module:Class`"
    )
    script: str | None = Field(
        None,
        description="path of a training script defining `train(X, y, X_valid, params, report)`, relative to "
        "the factory file; its `# darkfab: editable NAME` blocks are open to code edits",
    )
    space: dict[str, SpaceEntry] | None = Field(
        None, description="search space; replaces the built-in default space when given"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="fixed parameters, never searched")

    @field_validator("estimator")
    @classmethod
    def _import_path(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z_][\w.]*[:.][A-Za-z_]\w*$", value):
            raise ValueError(f"{value!r} is not an import path; write `package.module:ClassName`")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> TrainerSpec:
        if self.estimator is not None and self.script is not None:
            raise ValueError("give either `estimator` or `script`, not both")
        return self


def _coerce_trainer(value: Any) -> Any:
    if isinstance(value, str):
        return {"name": value}
    return value


TrainerEntry = Annotated[TrainerSpec, BeforeValidator(_coerce_trainer)]

_CONSTRAINT = re.compile(r"^\s*([a-z_0-9]+)\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$")


class Constraint(_Model):
    """``metric op value``, for example ``latency_p95_ms <= 20``."""

    metric: str
    op: Literal["<=", ">=", "<", ">"]
    value: float

    def satisfied(self, observed: float) -> bool:
        return {
            "<=": observed <= self.value,
            ">=": observed >= self.value,
            "<": observed < self.value,
            ">": observed > self.value,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def _coerce_constraint(value: Any) -> Any:
    if isinstance(value, str):
        match = _CONSTRAINT.match(value)
        if not match:
            raise ValueError(
                f"{value!r} is not a constraint; write `metric <= number`, for example `latency_p95_ms <= 20`"
            )
        return {"metric": match.group(1), "op": match.group(2), "value": float(match.group(3))}
    return value


def _check_metric(name: str, where: str, custom: Mapping[str, Any] | None = None) -> None:
    if name not in METRICS and name not in (custom or {}):
        valid = [*METRICS, *(custom or {})]
        raise ValueError(
            f"unknown metric {name!r} in {where}; valid metrics: {', '.join(valid)}; "
            "or declare your own under objective.metrics"
        )


_METRIC_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class CustomMetricSpec(_Model):
    """A metric of the user's own, computed by the factory from predictions like the built-in ones."""

    function: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
        description="module:function, called as fn(y_true, y_pred, sample_weight=None) -> float; the module is "
        "looked for on the import path and in the factory file's folder",
    )
    direction: Literal["maximize", "minimize"] = Field(description="whether a higher or a lower value is better")
    proba: bool = Field(
        False,
        description="classification: y_pred is the (n, n_classes) probability matrix instead of the predicted "
        "class indices",
    )
    folder: str | None = Field(None, description="folder searched for the module; the factory file's folder")


class ObjectiveSpec(_Model):
    """What 'better' means: the primary metric, constraints, and reward weights."""

    metric: str | None = Field(None, description="primary metric; accuracy (classification) or rmse by default")
    direction: Literal["maximize", "minimize"] | None = Field(None, description="inferred from the metric")
    constraints: list[Annotated[Constraint, BeforeValidator(_coerce_constraint)]] = Field(default_factory=list)
    weights: dict[str, float] = Field(
        default_factory=dict, description="reward weight per metric; the primary metric gets 1 unless given"
    )
    description: str | None = Field(None, description="free text, read by LLM proposers")
    reward: Literal["declared", "learned"] = Field(
        "declared",
        description="declared: the weights above; learned: the reward learned from preferences (`darkfab prefer`, "
        "`darkfab compare`) once it passes its gate (`darkfab reward --learn`), the declared weights until then",
    )
    metrics: dict[str, CustomMetricSpec] = Field(
        default_factory=dict,
        description="metrics of your own by name, usable as the primary metric, in constraints and in weights",
    )

    @model_validator(mode="after")
    def _known_metrics(self) -> ObjectiveSpec:
        for name in self.metrics:
            if not _METRIC_NAME.match(name):
                raise ValueError(
                    f"objective.metrics: {name!r} is not a metric name; use lower-case letters, digits and _"
                )
            if name in METRICS:
                raise ValueError(f"objective.metrics: {name!r} is a built-in metric; give yours another name")
        if self.metric is not None:
            _check_metric(self.metric, "objective.metric", self.metrics)
        for c in self.constraints:
            _check_metric(c.metric, "objective.constraints", self.metrics)
        for name, weight in self.weights.items():
            _check_metric(name, "objective.weights", self.metrics)
            if weight < 0:
                raise ValueError(f"weight of {name!r} must be >= 0, got {weight}")
        return self


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PORTFOLIO_MEMBERS = ("tpe", "random", "cmaes", "qmc", "nsga2", "llm")
"""Proposers a portfolio may share its budget between."""


class LLMPrices(_Model):
    """What the endpoint charges, per 1,000 tokens, in whatever currency ``max_cost`` is written in."""

    input_per_1k: float = Field(0.0, ge=0.0, description="price of 1,000 prompt tokens")
    output_per_1k: float = Field(0.0, ge=0.0, description="price of 1,000 completion tokens")


class LLMSpec(_Model):
    """An OpenAI-compatible chat-completions endpoint that proposes configurations."""

    base_url: str = Field(
        description="the API root, for example https://api.openai.com/v1 or http://localhost:11434/v1; "
        "darkfab POSTs to <base_url>/chat/completions"
    )
    model: str = Field(min_length=1, description="model name as the endpoint knows it, e.g. gpt-4o-mini")
    api_key_env: str = Field(
        "", description="NAME of the environment variable holding the key (never the key); empty: no key"
    )
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(2048, ge=16, description="most completion tokens per answer")
    timeout: Duration = Field(60.0, description="a request without an answer this long is abandoned and retried")
    retries: int = Field(3, ge=0, le=10, description="retries after a 429, a 5xx, a timeout or a dropped connection")
    max_tokens_total: int | None = Field(
        None, ge=1, description="token budget of a campaign (prompt + completion); reached, the LLM stops proposing"
    )
    max_cost: float | None = Field(
        None, gt=0.0, description="money budget of a campaign, priced by `prices`; reached, the LLM stops proposing"
    )
    prices: LLMPrices = Field(default_factory=LLMPrices)
    max_repairs: int = Field(2, ge=0, le=10, description="times an invalid or duplicate proposal is sent back")
    history: int = Field(20, ge=1, le=500, description="best and most recent trials shown to the model")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL; write e.g. http://localhost:11434/v1")
        return value.rstrip("/")

    @model_validator(mode="before")
    @classmethod
    def _env_name(cls, data: Any) -> Any:
        # checked on the whole section so that the error never echoes a pasted key back into a log
        value = data.get("api_key_env") if isinstance(data, dict) else None
        if isinstance(value, str) and value and not _ENV_NAME.match(value):
            raise ValueError(
                "api_key_env must be the NAME of an environment variable (like OPENAI_API_KEY), never "
                f"the key itself; got a value of {len(value)} characters that is not a variable name"
            )
        return data


_LLM_EXAMPLE = "search:\n  llm:\n    base_url: http://localhost:11434/v1\n    model: llama3.1"


class SearchSpec(_Model):
    proposer: Literal["tpe", "random", "cmaes", "qmc", "nsga2", "llm", "llm_code", "portfolio"] = "tpe"
    pruner: Literal["none", "median", "successive_halving", "hyperband"] = "median"
    startup_trials: int = Field(10, ge=0, description="random trials before the model-based sampler starts")
    seed: int = Field(0, description="seed of the proposer and of every trial's trainer")
    objectives: list[str] = Field(
        default_factory=list,
        description="metrics for multi-objective search (nsga2); primary metric if empty",
    )
    cv: Literal["auto"] | int = Field(
        "auto",
        description="k-fold cross-validation of the search's score over the training rows plus the validation split "
        "(built-in trainers): auto uses it on small data (5 folds up to 500 labelled rows, 3 up to 1,000), 0 turns it off",
    )
    ensemble: Literal["auto"] | bool = Field(
        "auto",
        description="after the search, greedy ensemble selection over the best candidates adds one more candidate "
        "that faces the same reward, constraints and sealed gate; auto: when the budget sets no trial count "
        "(a file that asks for N trials gets N)",
    )
    llm: LLMSpec | None = Field(None, description="the endpoint of the `llm` proposer (alone or in a portfolio)")
    portfolio: list[Literal["tpe", "random", "cmaes", "qmc", "nsga2", "llm"]] = Field(
        default_factory=list,
        description="members of the `portfolio` proposer; empty: tpe and random, and llm when `llm` is set",
    )

    @field_validator("cv")
    @classmethod
    def _folds(cls, value: Any) -> Any:
        if isinstance(value, int) and not (value == 0 or 2 <= value <= 20):
            raise ValueError(f"search.cv must be auto, 0 (off) or a number of folds from 2 to 20, got {value}")
        return value

    @field_validator("objectives")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _METRIC_NAME.match(name):  # a custom metric's name is checked with the whole file
                _check_metric(name, "search.objectives")
        return value

    @model_validator(mode="after")
    def _llm_configured(self) -> SearchSpec:
        if len(set(self.portfolio)) != len(self.portfolio):
            raise ValueError(f"search.portfolio lists a member twice: {self.portfolio}; name each proposer once")
        if self.portfolio and self.proposer != "portfolio":
            raise ValueError(
                f"search.portfolio is set but search.proposer is {self.proposer!r}; "
                "set `proposer: portfolio` or remove `portfolio`"
            )
        if self.llm is None:
            if self.proposer in ("llm", "llm_code"):
                raise ValueError(
                    f"search.proposer is {self.proposer!r} but there is no `search.llm` section; add the endpoint, "
                    f"for example:\n{_LLM_EXAMPLE}"
                )
            if "llm" in self.portfolio:
                raise ValueError(
                    "search.portfolio lists 'llm' but there is no `search.llm` section; add the endpoint, "
                    f"for example:\n{_LLM_EXAMPLE}"
                )
        return self

    def portfolio_members(self) -> list[str]:
        """The portfolio's members: as listed, or tpe and random (and llm when an endpoint is set)."""
        if self.portfolio:
            return list(self.portfolio)
        return ["tpe", "random", "llm"] if self.llm is not None else ["tpe", "random"]


MAX_PRINCIPLES = 30
_JUDGE_EXAMPLE = (
    "reward:\n  judge: {base_url: http://localhost:11434/v1, model: llama3.1}\n  constitution:\n"
    "    - prefer the simpler model when the accuracy difference is within its confidence interval"
)


class RewardSpec(_Model):
    """Who else may teach the reward: an AI judge that compares candidates by a written constitution."""

    judge: LLMSpec | None = Field(
        None,
        description="an OpenAI-compatible endpoint that compares two candidates against the constitution "
        "(`darkfab judge`); its max_tokens_total and max_cost are hard limits over all the factory's judge calls",
    )
    constitution: list[str] = Field(
        default_factory=list,
        description="principles in plain words; the judge critiques each candidate against each one, then chooses",
    )

    @field_validator("constitution")
    @classmethod
    def _principles(cls, value: list[str]) -> list[str]:
        cleaned = [" ".join(p.split()) for p in value]
        for i, p in enumerate(cleaned):
            if not p:
                raise ValueError(f"principle {i + 1} is empty; write it in plain words, or remove it")
            if len(p) > 500:
                raise ValueError(f"principle {i + 1} has {len(p)} characters, more than 500; say it in fewer words")
        if len(cleaned) > MAX_PRINCIPLES:
            raise ValueError(f"{len(cleaned)} principles, more than {MAX_PRINCIPLES}; keep the ones that decide")
        seen = {p.lower() for p in cleaned}
        if len(seen) < len(cleaned):
            raise ValueError("a principle appears twice; remove the copy")
        return cleaned

    @model_validator(mode="after")
    def _judge_has_principles(self) -> RewardSpec:
        if self.judge is not None and not self.constitution:
            raise ValueError(
                "reward.judge is set but reward.constitution lists no principles, so the judge has nothing to judge "
                f"by; add some in plain words, for example:\n{_JUDGE_EXAMPLE}"
            )
        return self


class BudgetSpec(_Model):
    """Hard limits: when one is reached the campaign stops running trials and finishes."""

    trials: int | None = Field(None, ge=1)
    time: Duration | None = Field(None, description="wall time, e.g. 90s, 10m")
    cpu: Duration | None = Field(None, description="CPU time summed over trials, e.g. 30m")

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetSpec:
        if self.trials is None and self.time is None and self.cpu is None:
            raise ValueError("set at least one of `trials`, `time`, `cpu`, or the campaign never ends")
        return self


DEFAULT_BUDGET: dict[str, Any] = {"trials": 50, "time": 600.0}
"""The budget of a file without a `budget:` section, run without --time."""


class ExecutionSpec(_Model):
    backend: Literal["local", "ray"] = Field("local", description="local worker pool, or a Ray cluster")
    address: str | None = Field(None, description="Ray address: auto, ray://host:10001, or host:port; none starts one")
    cpus_per_trial: float = Field(1.0, gt=0, description="Ray: CPUs reserved per trial")
    gpus_per_trial: float = Field(0.0, ge=0, description="Ray: GPUs reserved per trial")
    workers: int = Field(2, ge=1, le=256)
    trial_timeout: Duration = Field(600.0, description="a trial running longer is killed")
    memory_mb: int | None = Field(4096, ge=64, description="a trial whose worker grows past this is killed")
    retries: int = Field(1, ge=0, le=10, description="retries after an infrastructure fault (never a bug)")
    threads: int = Field(1, ge=1, description="threads each trial may use")
    latency_rows: int = Field(20, ge=0, description="single-row predictions timed per trial")
    lease: Duration = Field(30.0, description="a trial whose worker sends no heartbeat this long is requeued")
    queue_ahead: int = Field(
        0,
        ge=0,
        description="proposals kept queued beyond the free slots here and those of the `darkfab worker` processes "
        "(workers announce themselves; raise this to hide the store round trip from very short trials)",
    )


class GateSpec(_Model):
    """The sealed-test gate a candidate must pass to become champion."""

    min_improvement: float = Field(0.0, ge=0.0, description="margin over the champion, in metric units")
    confidence: float = Field(0.9, gt=0.5, lt=1.0, description="bootstrap probability the margin holds")
    bootstrap: int = Field(1000, ge=100, le=100_000)
    refit: Literal["train+valid+test", "train+valid", "none"] = Field(
        "train+valid+test",
        description="after the gate picks a winner, its configuration is refit on these rows before it is "
        "registered (the sealed rows only after the gate has used them); none: register the gated model itself",
    )
    sealed_budget: int = Field(
        20,
        ge=1,
        description="gate decisions one sealed test set may inform; past it the rows are split again with a "
        "fresh seed, so no run of retrains selects for the same sealed rows",
    )
    approval: Literal["none", "required"] = Field(
        "none",
        description="none: the gate winner is promoted at once; required: it is registered as 'pending' and "
        "waits for a person (`darkfab approve VERSION` / `darkfab reject VERSION`, or the console)",
    )


class DeploySpec(_Model):
    """How a gate winner reaches traffic once a champion is being served."""

    mode: Literal["direct", "canary", "shadow"] = Field(
        "direct", description="direct: the winner becomes champion; canary/shadow: it becomes challenger first"
    )
    share: float = Field(0.1, gt=0.0, lt=1.0, description="canary: share of requests the challenger answers")
    min_requests: int = Field(200, ge=10, description="challenger requests seen before promotion is decided")
    max_error_rate_increase: float = Field(0.01, ge=0.0, description="allowed rise of the error rate over champion")
    max_latency_ratio: float = Field(1.5, ge=1.0, description="allowed challenger p95 latency / champion p95")
    max_quality_drop: float = Field(0.0, ge=0.0, description="allowed fall of live quality (labelled rows) vs champion")
    feedback: Literal["write_once", "last_wins"] = Field(
        "write_once",
        description="write_once: a request's first label stands (a different one is refused, 409, and recorded); "
        "last_wins: a later label replaces it",
    )


class MonitorSpec(_Model):
    """Watching the served model: windows of live traffic, drift tests, live quality, triggers, alerts."""

    window: int = Field(500, ge=20, description="rows per monitoring window")
    method: Literal["auto", "ks", "chi2", "wasserstein", "jensenshannon", "psi"] = Field(
        "auto",
        description="auto picks per column as Evidently does: KS/chi-square for small references, "
        "normalised Wasserstein/Jensen-Shannon for large ones",
    )
    threshold: float | None = Field(None, description="per-feature threshold; the method's default when empty")
    drift_share: float = Field(0.5, gt=0.0, le=1.0, description="share of drifted features that means dataset drift")
    quality_drop: float | None = Field(
        None, ge=0.0, description="live quality this far below the champion's sealed-test score starts a campaign"
    )
    retrain: bool = Field(True, description="drift or decay starts a new campaign by itself")
    webhook: str | None = Field(None, description="URL that receives alerts as JSON POSTs")


class FactorySpec(_Model):
    """A whole factory file."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    data: DataSpec
    task: TaskKind | None = Field(None, description="inferred from the target when absent")
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    reward: RewardSpec = Field(
        default_factory=RewardSpec, description="an AI judge and its constitution (`darkfab judge`)"
    )
    trainers: list[TrainerEntry] = Field(
        default_factory=lambda: [TrainerSpec(name=n) for n in ("lightgbm", "random_forest", "logistic_regression")],
        min_length=1,
        description="trainers searched over; when absent they are chosen by the task and the number of rows "
        "when the data is read (boosting, forests, and a linear model that can do the task)",
    )
    search: SearchSpec = Field(default_factory=SearchSpec)
    budget: BudgetSpec = Field(
        default_factory=lambda: BudgetSpec(**DEFAULT_BUDGET),
        description="when absent: 50 trials or 10 minutes; with --time only, the whole time and no trial cap",
    )
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    gate: GateSpec = Field(default_factory=GateSpec)
    deploy: DeploySpec = Field(default_factory=DeploySpec)
    monitor: MonitorSpec = Field(default_factory=MonitorSpec)
    registry: RegistrySpec = Field(default_factory=RegistrySpec, description="registries mirroring darkfab's")

    @model_validator(mode="after")
    def _known_objectives(self) -> FactorySpec:
        for name in self.search.objectives:
            _check_metric(name, "search.objectives", self.objective.metrics)
        return self

    @model_validator(mode="after")
    def _unique_trainers(self) -> FactorySpec:
        seen: set[str] = set()
        for t in self.trainers:
            if t.name in seen:
                raise ValueError(f"trainer name {t.name!r} appears twice; give each entry its own `name`")
            seen.add(t.name)
        return self

    def primary_metric(self, task: TaskKind) -> str:
        return self.objective.metric or DEFAULT_PRIMARY[task]

    def direction(self, task: TaskKind) -> Literal["maximize", "minimize"]:
        return self.objective.direction or self.metric_direction(self.primary_metric(task))

    def metric_direction(self, name: str) -> Literal["maximize", "minimize"]:
        """The natural direction of a built-in or a custom metric."""
        custom = self.objective.metrics.get(name)
        return custom.direction if custom is not None else METRICS[name].direction
