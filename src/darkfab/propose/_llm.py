"""An LLM proposes configurations: it reads the objective, the space, the history and its own notebook.

One exchange with the model (:meth:`LLMProposer.propose`):

1. The prompt: the objective (metric, direction, ``objective.description``, constraints), the search space,
   the best and the most recent trials with their parameters and metrics, recent failures with their error
   tails, and the notebook - a running list of what the model tried and what came of it, with the notes the
   model itself asked to keep.
2. The answer is one JSON object ``{"proposals": [{"trainer", "params", "reason"}], "notes"}``. Each
   proposal is checked against the space (the trainer is known, every searched parameter is given and lies in
   its range or among its choices, ints are whole numbers, fixed parameters keep their values, nothing
   unknown) and against every configuration tried or proposed before.
3. An answer that cannot be read, or proposals that fail a check, are sent back with the errors, at most
   ``search.llm.max_repairs`` times; what is still wrong is then dropped and logged.

Requests go through :class:`~darkfab.propose._llm_exchange.LLMExchange`, as ``llm_code``'s do: each is handed
to ``on_llm_call`` first as ``reserved`` (counted at its most), then, under the same id, with its tokens, cost,
status (``ok``, ``invalid``, ``error``, ``429``, ``timeout``) and the keys of the proposals it produced
(``llm-<call id>-<i>``), so each proposal can be traced to the exchange that made it; each retried attempt is
a call of its own.

The proposer never raises into the factory. When an exchange yields nothing (the endpoint is down, every
answer was invalid), it proposes random valid configurations instead, each with the reason
``llm unavailable: ...``, so the loop never spins; after three failed exchanges in a row it rests (random
proposals only) for 2, 4, ... up to 16 rounds before asking the model again. The token budget
(``max_tokens_total``) and the money budget (``max_cost``) are hard, and kept by the
:class:`~darkfab.propose._llm_exchange.LLMBudget` that ``llm_code`` uses too: a request is sent only when what is
left can pay for its prompt and a minimal answer (``max_tokens`` is lowered to what is left, and reserved until
the answer settles it, so a kill in flight cannot overspend a resumed campaign); once either is
spent, or cannot pay for another prompt as long as the last one, :attr:`LLMProposer.exhausted` says why,
:attr:`~darkfab.propose.Proposer.stop_reason` is ``StopReason.LLM_BUDGET`` and :meth:`propose` returns nothing
more.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from ..patch import CodePatch
from ..spec import LLMSpec
from ._base import Proposal, Proposer, SearchContext, TrialView
from ._llm_client import ChatClient
from ._llm_exchange import LLMBudget, LLMCallSink, LLMExchange
from ._space import ConditionalSpace, Dim, Signature

logger = logging.getLogger("darkfab.propose.llm")

NOTEBOOK_LINES = 30
REST_AFTER = 3  # failed exchanges in a row before the proposer rests
MAX_REST = 16
_REASON_CHARS = 500
_ERROR_TAIL = 400

SYSTEM_PROMPT = """\
You are the proposer of darkfab, an automatic model factory. Each turn you choose the next training \
configurations to try, to improve the objective while respecting its constraints. Learn from the trials \
and the notebook: exploit what worked, explore what has not been tried, avoid what failed.

Answer with ONE JSON object and nothing else:
{"proposals": [{"trainer": "<trainer name>", "params": {"<param>": <value>, ...}, "reason": "<why, one sentence>"}],
 "notes": "<one or two lines for your notebook: what you learned or want to test next>"}

Rules: give every searched parameter of the chosen trainer; keep each inside its range or among its choices; \
int parameters are whole numbers; fixed parameters may be left out; never repeat a configuration already tried."""


def describe_dim(dim: Dim) -> str:
    """A parameter's range or choices in words, as the model is told it."""
    d = dim.distribution
    if isinstance(d, CategoricalDistribution):
        return f"one of {json.dumps(list(dim.choices if dim.choices is not None else d.choices), default=str)}"
    assert isinstance(d, (IntDistribution, FloatDistribution)), "Dim.build makes only these three distributions"
    kind = "int" if isinstance(d, IntDistribution) else "float"
    text = f"{kind} in [{d.low:g}, {d.high:g}]"
    if d.step is not None and not (kind == "int" and d.step == 1):
        text += f" in steps of {d.step:g}"
    if d.log:
        text += ", log scale"
    return text


def parse_answer(text: str) -> tuple[list[Any], str, str]:
    """(proposals, notes, error) from a model's answer; ``error`` is empty when it could be read."""
    stripped = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", stripped, re.DOTALL)
    candidates = [stripped]
    if fenced:
        candidates.append(fenced.group(1).strip())
    first, last = stripped.find("{"), stripped.rfind("}")
    if 0 <= first < last:
        candidates.append(stripped[first : last + 1])
    data: Any = None
    error = "the answer is empty" if not stripped else ""
    for candidate in candidates:
        try:
            data = json.loads(candidate)
            break
        except json.JSONDecodeError as exc:
            error = error or f"the answer is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    else:
        return [], "", error or "the answer holds no JSON object"
    if isinstance(data, list):
        return data, "", ""
    if not isinstance(data, dict) or not isinstance(data.get("proposals"), list):
        return [], "", 'the JSON has no "proposals" list; answer {"proposals": [...], "notes": "..."}'
    notes = data.get("notes")
    return data["proposals"], notes if isinstance(notes, str) else "", ""


class LLMProposer(Proposer):
    """Proposes by asking a language model through an OpenAI-compatible chat-completions endpoint."""

    def __init__(
        self,
        context: SearchContext,
        *,
        llm: LLMSpec | None = None,
        on_llm_call: LLMCallSink | None = None,
        llm_spent: tuple[int, float] = (0, 0.0),
        client: ChatClient | None = None,
        name: str = "llm",
    ) -> None:
        """
        Args:
            context: the trainers and spaces, objectives, description, constraints and ``context.llm``.
            llm: the endpoint; ``context.llm`` when not given. Without either, every proposal is random,
                with the reason ``llm unavailable: no search.llm endpoint``.
            on_llm_call: receives every request as an :class:`LLMCall` (the factory stores it).
            llm_spent: tokens and money already spent in this campaign (a resumed one), counted against
                the budgets.
            client: a ready :class:`ChatClient` (tests); one is made from the spec otherwise.
            name: the proposer's name, written on its proposals.
        """
        self.name = name
        self.context = context
        self.space = ConditionalSpace(context)
        self.spec = llm if llm is not None else context.llm
        self._client = client if client is not None else (ChatClient(self.spec) if self.spec is not None else None)
        self._llm: LLMExchange | None = None
        if self.spec is not None and self._client is not None:
            self._llm = LLMExchange(
                proposer=name, spec=self.spec, client=self._client, sink=on_llm_call, spent=llm_spent
            )
        self._rng = random.Random(context.seed)
        self._token = uuid.uuid4().hex[:8]
        self._fallbacks = 0
        self._maximize = (context.directions or ("maximize",))[0] == "maximize"
        self._seen: dict[Signature, str] = {}
        self._views: dict[int, TrialView] = {}
        self._asked: dict[str, Proposal] = {}  # key -> LLM proposal not yet observed
        self._notebook: list[str] = []
        self._streak = 0
        self._rest = 0
        self._last_error = ""
        self._cost_of: dict[str, tuple[float, float]] = {}
        self._spent = (int(llm_spent[0]), float(llm_spent[1]))

    @property
    def budget(self) -> LLMBudget | None:
        """The LLM's token and money budget (shared with ``llm_code``); None without an endpoint."""
        return self._llm.budget if self._llm is not None else None

    @property
    def tokens_used(self) -> int:
        """Prompt and completion tokens spent (a request in flight at its most), earlier runs included."""
        return self._llm.budget.tokens_used if self._llm is not None else self._spent[0]

    @property
    def cost_used(self) -> float:
        """Money spent, priced by ``search.llm.prices`` (a request in flight at its most)."""
        return self._llm.budget.cost_used if self._llm is not None else self._spent[1]

    @property
    def exhausted(self) -> str:
        """Why the LLM stopped for good (its token or money budget is spent); empty while it may be asked."""
        return self._llm.budget.exhausted if self._llm is not None else ""

    @property
    def _sink(self) -> LLMCallSink | None:  # tests swap the sink of a made proposer
        return self._llm.sink if self._llm is not None else None

    @_sink.setter
    def _sink(self, sink: LLMCallSink | None) -> None:
        if self._llm is not None:
            self._llm.sink = sink

    # ------------------------------------------------------------------------------------------------
    # Proposer

    def replay(self, history: Sequence[TrialView]) -> None:
        for view in sorted(history, key=lambda v: v.trial_id):
            self._remember(view.trainer, view.params, f"trial {view.trial_id}", view.patch)
            if view.state not in ("queued", "running"):
                self._views[view.trial_id] = view

    def propose(self, n: int) -> list[Proposal]:
        if n <= 0 or self.exhausted:
            return []
        if self._client is None:
            return self._fallback(n, "no search.llm endpoint is configured", 0.0, 0.0)
        if self._rest > 0:
            self._rest -= 1
            return self._fallback(n, f"resting after {self._streak} failed exchanges; last: {self._last_error}", 0, 0)
        try:
            proposals, error, money, seconds = self._exchange(n)
        except Exception as exc:  # never into the factory: a bug here must not stop the campaign
            logger.exception("the LLM proposer failed")
            proposals, error, money, seconds = [], f"{type(exc).__name__}: {exc}", 0.0, 0.0
        if proposals:
            self._streak = 0
            return proposals
        if self.exhausted:
            return []
        self._streak += 1
        self._last_error = error
        if self._streak >= REST_AFTER:
            self._rest = min(MAX_REST, 2 ** (self._streak - REST_AFTER + 1))
        return self._fallback(n, error, money, seconds)

    def observe(self, proposal: Proposal, result: TrialView) -> None:
        self._remember(proposal.trainer, proposal.params, f"trial {result.trial_id}", proposal.patch)
        if result.state in ("queued", "running"):
            return
        self._views[result.trial_id] = result
        asked = self._asked.pop(proposal.key, None)
        if asked is not None:
            self._note(self._outcome(asked, result))

    # ------------------------------------------------------------------------------------------------
    # what the portfolio reads

    def spent_on(self, key: str) -> tuple[float, float]:
        """(money, seconds) the model cost to produce the proposal ``key``; (0, 0) when unknown."""
        return self._cost_of.get(key, (0.0, 0.0))

    @property
    def notebook(self) -> list[str]:
        return list(self._notebook)

    # ------------------------------------------------------------------------------------------------
    # the exchange

    def _exchange(self, n: int) -> tuple[list[Proposal], str, float, float]:
        assert self._llm is not None and self.spec is not None
        exchange = self._llm
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": self._prompt(n)},
        ]
        accepted: list[tuple[Proposal, Signature]] = []
        batch: dict[Signature, str] = {}
        error = ""
        money = seconds = 0.0
        for round_ in range(self.spec.max_repairs + 1):
            call_id = uuid.uuid4().hex[:10]
            result = exchange.ask(messages, call_id=call_id)
            if result is None:
                error = self.exhausted
                break
            money += result.cost
            seconds += result.latency_s
            if not result.ok:
                exchange.record(call_id, messages, result, result.status, result.error)
                error = result.error
                break
            items, notes, problem = parse_answer(result.text)
            if notes:
                self._note(f"model: {notes.strip()[:300]}")
            keys: list[str] = []
            problems: list[str] = [problem] if problem else []
            for i, item in enumerate(items):
                if len(accepted) >= n:
                    break
                checked = self._check(item, batch)
                if isinstance(checked, str):
                    problems.append(f"proposal {i + 1}: {checked}")
                    continue
                trainer, params, reason, signature = checked
                key = f"llm-{call_id}-{i}"
                batch[signature] = "an earlier proposal of this answer"
                accepted.append((Proposal(self.name, trainer, params, reason, key=key), signature))
                keys.append(key)
            if not items and not problem:
                problems.append("the answer holds no proposals")
            status = "invalid" if problems else "ok"
            exchange.record(call_id, messages, result, status, "; ".join(problems), tuple(keys))
            error = "; ".join(problems)
            if not problems or len(accepted) >= n:
                break
            if round_ == self.spec.max_repairs or self.exhausted:
                logger.warning("dropped LLM proposals after %d repairs: %s", self.spec.max_repairs, error)
                break
            messages = [
                *messages,
                {"role": "assistant", "content": result.text},
                {"role": "user", "content": self._repair_prompt(problems, n - len(accepted))},
            ]
        exchange.finish(messages[:2])
        proposals = [p for p, _ in accepted]
        for p, signature in accepted:
            self._seen[signature] = f"an earlier proposal ({p.reason[:60]})"
            self._asked[p.key] = p
            if proposals:
                self._cost_of[p.key] = (money / len(proposals), seconds / len(proposals))
        if not proposals:
            error = f"{error or 'no proposals'}" + (f" (after {round_} repairs)" if round_ else "")
        return proposals, error, money, seconds

    # ------------------------------------------------------------------------------------------------
    # checking a proposal

    def _check(self, item: Any, batch: Mapping[Signature, str]) -> tuple[str, dict[str, Any], str, Signature] | str:
        """(trainer, params, reason, signature) of a valid new proposal, or what is wrong with it."""
        if not isinstance(item, dict):
            return f"a proposal must be an object with trainer, params and reason, got {json.dumps(item)[:80]}"
        trainers = self.space.trainers
        trainer = item.get("trainer")
        if trainer is None and len(trainers) == 1:
            trainer = trainers[0]
        if not isinstance(trainer, str):
            return f"trainer must be a string, one of {list(trainers)}; got {json.dumps(trainer, default=str)[:80]}"
        if trainer not in self.space.spaces:
            return f"unknown trainer {trainer!r}; choose one of {list(trainers)}"
        given = item.get("params", {})
        if not isinstance(given, dict):
            return f"params of {trainer!r} must be an object of parameter -> value, got {json.dumps(given)[:80]}"
        space = self.space.spaces[trainer]
        known = [name for name, _, _ in space.entries]
        unknown = sorted(set(given) - set(known))
        if unknown:
            return f"unknown parameter(s) {unknown} for trainer {trainer!r}; its parameters are {known}"
        params: dict[str, Any] = {}
        problems: list[str] = []
        for name, dim, fixed in space.entries:
            if dim is None:
                if name in given and given[name] != fixed:
                    problems.append(f"{name} is fixed at {json.dumps(fixed, default=str)}; leave it out")
                params[name] = fixed
                continue
            if name not in given:
                problems.append(f"{name} is missing ({describe_dim(dim)})")
                continue
            value = _plain(dim, given[name])
            if value is None:
                problems.append(f"{name}={json.dumps(given[name], default=str)} is not {describe_dim(dim)}")
                continue
            params[name] = value
        if problems:
            return f"trainer {trainer!r}: " + "; ".join(problems)
        encoded = self.space.encode(trainer, params)
        if encoded is None:  # pragma: no cover - every check above is what encode checks
            return f"{trainer} {params} does not fit the space"
        signature = encoded[2]
        before = self._seen.get(signature) or batch.get(signature)
        if before is not None:
            return (
                f"duplicate: {trainer} {json.dumps(params, default=str)} is the same as {before}; "
                "propose a configuration not tried yet"
            )
        reason = str(item.get("reason") or "").strip() or "no reason given"
        return trainer, params, reason[:_REASON_CHARS], signature

    def _remember(self, trainer: str, params: dict[str, Any], what: str, patch: CodePatch | None = None) -> None:
        encoded = self.space.encode(trainer, params, patch)
        if encoded is not None:
            self._seen.setdefault(encoded[2], what)

    # ------------------------------------------------------------------------------------------------
    # the prompt

    def _prompt(self, n: int) -> str:
        c = self.context
        history = self.spec.history if self.spec is not None else 20
        primary = c.objective_names[0] if c.objective_names else "the primary metric"
        parts = ["## Objective"]
        for name, direction in zip(c.objective_names or (primary,), c.directions or ("maximize",), strict=False):
            parts.append(f"- {direction} {name} on the validation split")
        if c.description:
            parts.append(f"- description: {c.description.strip()}")
        if c.constraints:
            parts.append("- constraints (a trial breaking one is infeasible): " + "; ".join(c.constraints))
        parts.append("- reward: one scalar darkfab computes from the metrics; higher is better")
        parts.append("\n## Search space (trainer: parameters)")
        for trainer, space in self.space.spaces.items():
            lines = [f"- {trainer}:"]
            for name, dim, fixed in space.entries:
                what = describe_dim(dim) if dim is not None else f"fixed = {json.dumps(fixed, default=str)}"
                lines.append(f"    {name}: {what}")
            if len(lines) == 1:
                lines[0] += " (no parameters)"
            parts.extend(lines)
        done = [v for v in self._views.values() if v.state == "completed"]
        best = sorted(done, key=self._rank)[: max(1, history // 2)]
        shown = {v.trial_id for v in best}
        recent = [v for v in sorted(self._views.values(), key=lambda v: -v.trial_id) if v.trial_id not in shown]
        recent = recent[: max(0, history - len(best))]
        failures = [v for v in sorted(self._views.values(), key=lambda v: -v.trial_id) if v.state == "failed"][:5]
        parts.append(f"\n## Best trials ({len(done)} completed of {len(self._views)} finished)")
        parts.extend([self._trial_line(v) for v in best] or ["(none yet)"])
        parts.append("\n## Most recent other trials")
        parts.extend([self._trial_line(v) for v in recent] or ["(none)"])
        if failures:
            parts.append("\n## Recent failures (error tails)")
            for v in failures:
                tail = (v.error or "").strip()[-_ERROR_TAIL:]
                parts.append(f"- trial {v.trial_id} {v.trainer} {json.dumps(v.params, default=str)}: {tail}")
        parts.append("\n## Notebook (what has worked and what has not)")
        parts.extend([f"- {line}" for line in self._notebook] or ["(empty)"])
        parts.append(
            f"\nPropose exactly {n} new configuration{'s' if n != 1 else ''}, different from every trial above. "
            "Answer with the JSON object only."
        )
        return "\n".join(parts)

    def _repair_prompt(self, problems: list[str], missing: int) -> str:
        return (
            "Some of your answer could not be used:\n"
            + "\n".join(f"- {p}" for p in problems)
            + f"\nPropose exactly {missing} new configuration{'s' if missing != 1 else ''} that fix these "
            "problems, in the same JSON format, and nothing else."
        )

    def _rank(self, v: TrialView) -> tuple[float, float]:
        feasible = 0.0 if v.feasible is not False else 1.0
        if v.reward is not None:
            return feasible, -float(v.reward)
        value = float(v.value) if v.value is not None and math.isfinite(v.value) else math.nan
        if math.isnan(value):
            return feasible, math.inf
        return feasible, -value if self._maximize else value

    @staticmethod
    def _trial_line(v: TrialView) -> str:
        record: dict[str, Any] = {"trial": v.trial_id, "trainer": v.trainer, "params": v.params, "state": v.state}
        if v.patch is not None:  # a code-edit trial: its params alone do not say what ran
            record["patch"] = v.patch.to_json()
        if v.value is not None:
            record["value"] = round(float(v.value), 6)
        if v.reward is not None:
            record["reward"] = round(float(v.reward), 6)
        if v.feasible is not None:
            record["feasible"] = v.feasible
        if v.metrics:
            record["metrics"] = {k: round(float(x), 5) for k, x in sorted(v.metrics.items()) if _finite(x)}
        if v.seconds is not None:
            record["seconds"] = round(v.seconds, 2)
        return "- " + json.dumps(record, default=str)

    def _outcome(self, p: Proposal, v: TrialView) -> str:
        what = f"{p.trainer} {json.dumps(p.params, default=str)} ({p.reason[:120]})"
        if v.state == "completed":
            best = [x for x in self._views.values() if x.state == "completed"]
            top = min(best, key=self._rank) if best else None
            score = f"reward {v.reward:.4g}" if v.reward is not None else f"value {v.value}"
            verdict = "worked: new best" if top is not None and top.trial_id == v.trial_id else "did not beat the best"
            if v.feasible is False:
                verdict = "infeasible (broke a constraint)"
            return f"trial {v.trial_id}: {what} -> {score}, {verdict}"
        if v.state == "failed":
            return f"trial {v.trial_id}: {what} -> failed: {(v.error or '').strip()[-160:]}"
        return f"trial {v.trial_id}: {what} -> {v.state}"

    def _note(self, line: str) -> None:
        self._notebook.append(" ".join(line.split()))
        del self._notebook[:-NOTEBOOK_LINES]

    # ------------------------------------------------------------------------------------------------
    # the fallback

    def _fallback(self, n: int, why: str, money: float, seconds: float) -> list[Proposal]:
        """Random valid proposals not tried before, each saying the LLM was unavailable and why."""
        out: list[Proposal] = []
        reason = f"llm unavailable: {why}; a random valid configuration instead"[:_REASON_CHARS]
        for _ in range(n):
            for _try in range(50):
                trainer, params = self._random_point()
                encoded = self.space.encode(trainer, params)
                if encoded is not None and encoded[2] not in self._seen:
                    break
            else:
                break  # the space looks exhausted
            self._fallbacks += 1
            key = f"llm-random-{self._token}-{self._fallbacks}"
            self._seen[encoded[2]] = "an earlier random proposal"
            out.append(Proposal(self.name, trainer, params, reason, key=key))
        for p in out:
            self._cost_of[p.key] = (money / len(out), seconds / len(out))
        return out

    def _random_point(self) -> tuple[str, dict[str, Any]]:
        trainer = self._rng.choice(self.space.trainers)
        params: dict[str, Any] = {}
        for name, dim, fixed in self.space.spaces[trainer].entries:
            params[name] = fixed if dim is None else _sample(dim, self._rng)
        return trainer, params


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _plain(dim: Dim, value: Any) -> Any:
    """``value`` as the trainer gets it (an int as int, a choice as given in the space), or None if outside."""
    d = dim.distribution
    if isinstance(d, FloatDistribution) and d.step is not None and isinstance(value, (int, float)):
        k = (float(value) - d.low) / d.step
        if abs(k - round(k)) > 1e-6:  # off the grid: say so rather than round it to a value not asked for
            return None
    try:
        encoded = dim.encode(value)
    except (ValueError, TypeError):
        return None
    if isinstance(d, CategoricalDistribution):
        return dim.choices[encoded] if dim.choices is not None else encoded
    return encoded


def _sample(dim: Dim, rng: random.Random) -> Any:
    d = dim.distribution
    if isinstance(d, CategoricalDistribution):
        return rng.choice(list(dim.choices if dim.choices is not None else d.choices))
    if isinstance(d, IntDistribution):
        if d.log:
            return min(d.high, max(d.low, round(math.exp(rng.uniform(math.log(d.low), math.log(d.high))))))
        return rng.randrange(d.low, d.high + 1, d.step)
    assert isinstance(d, FloatDistribution)
    if d.step is not None:
        k = rng.randint(0, round((d.high - d.low) / d.step))
        x = d.low + k * d.step
        return round(x, dim.digits) if dim.digits is not None else x
    if d.log:
        return math.exp(rng.uniform(math.log(d.low), math.log(d.high)))
    return rng.uniform(d.low, d.high)
