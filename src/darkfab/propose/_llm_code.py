"""The LLM code proposer: edits inside a training script's editable blocks, asked of a chat model.

Each round it shows the model the objective, the current text of every editable block (of the best script so
far, or the user's own), the search space, and the history of edits with their scores and error tails. It
expects one JSON object::

    {"edits": [{"block": "loss", "search": "...", "replace": "..."}], "params": {"lr": 0.01}, "reason": "..."}

The edits are checked exactly as a script trial applies them (darkfab.train.apply_edits: inside the block,
found once, parses); an answer that fails is sent back with the error, at most ``search.llm.max_repairs`` times.
A proposal's ``patch`` (a :class:`~darkfab.patch.CodePatch`) carries every edit from the user's script, the
parent's first, and the unified diff, so the trial's lineage names the exact code; its ``params`` hold the
hyperparameters only. Every proposal of this proposer has a patch (the unedited reference an empty one).
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..patch import CodePatch
from ..spec import ParamSpec, TrainerSpec
from ..train.script import ScriptError, apply_edits, block_texts, source_hash, unified_diff
from ._base import Proposal, Proposer, SearchContext, TrialView
from ._llm_client import ChatClient
from ._llm_exchange import LLMBudget, LLMCall, LLMCallSink, LLMExchange

_SYSTEM = (
    "You improve a machine-learning training script by editing only its editable blocks. "
    "Answer with one JSON object and nothing else: "
    '{"edits": [{"block": NAME, "search": EXACT_TEXT_IN_THAT_BLOCK, "replace": NEW_TEXT}], '
    '"params": {NAME: VALUE}, "reason": ONE_SENTENCE}. '
    "`search` must be copied exactly from the block and occur once in it; never touch `# darkfab:` marker lines. "
    "`params` is optional and must stay inside the search space. The code runs without network or file access "
    "outside its scratch folder; it must not try either."
)
_TAIL = 600  # characters of a diff or an error shown per past trial
REST_AFTER = 3  # failed exchanges in a row before the proposer rests (as the llm proposer does)
MAX_REST = 16
logger = logging.getLogger("darkfab.propose.llm_code")


@dataclass
class _Tried:
    trial_id: int | None
    trainer: str
    patch: list[dict[str, str]]
    params: dict[str, Any]
    reason: str
    diff: str
    state: str = "queued"
    value: float | None = None
    error: str | None = None
    code: str = ""  # sha256 of the patched source, filled when first needed


def _default_value(spec: ParamSpec | Any) -> Any:
    if not isinstance(spec, ParamSpec):
        return spec
    if spec.choices is not None:
        return spec.choices[0]
    low, high = float(spec.low or 0.0), float(spec.high or 0.0)
    mid = math.sqrt(low * high) if spec.log else (low + high) / 2.0
    return int(round(mid)) if spec.type == "int" else mid


def _check_param(name: str, value: Any, spec: ParamSpec | Any) -> str | None:
    if not isinstance(spec, ParamSpec):
        return None if value == spec else f"`{name}` is fixed at {spec!r}"
    if spec.choices is not None:
        return None if value in spec.choices else f"`{name}` must be one of {spec.choices}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"`{name}` must be a number"
    if not (spec.low or 0.0) <= value <= (spec.high or 0.0):
        return f"`{name}` must lie in [{spec.low:g}, {spec.high:g}]"
    if spec.type == "int" and int(value) != value:
        return f"`{name}` must be an integer"
    return None


def parse_answer(text: str) -> dict[str, Any]:
    """The JSON object in a model's answer (code fences and prose around it are tolerated)."""
    cleaned = re.sub(r"```(?:json)?", "", text)
    start, end = cleaned.find("{"), cleaned.rfind("}")
    if start < 0 or end <= start:
        raise ScriptError("the answer holds no JSON object; answer with one JSON object")
    try:
        answer = json.loads(cleaned[start : end + 1])
    except json.JSONDecodeError as err:
        raise ScriptError(f"the answer is not valid JSON: {err.msg} at character {err.pos}") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("edits"), list):
        raise ScriptError("the answer must be an object with an `edits` list")
    for i, edit in enumerate(answer["edits"]):
        if not isinstance(edit, dict) or not all(isinstance(edit.get(k), str) for k in ("block", "search", "replace")):
            raise ScriptError(
                f'edits[{i}] must be an object {{"block": ..., "search": ..., "replace": ...}} of three '
                f"strings, got {json.dumps(edit, default=str)[:120]}"
            )
        unknown = sorted(set(edit) - {"block", "search", "replace"})
        if unknown:
            raise ScriptError(f"edits[{i}] has unknown field(s) {unknown}; an edit holds block, search and replace")
    if answer.get("params") is not None and not isinstance(answer["params"], dict):
        raise ScriptError(
            f"`params` must be an object of name -> value, got {json.dumps(answer['params'], default=str)[:80]}"
        )
    return answer


class LLMCodeProposer(Proposer):
    """Proposes code edits to script trainers (``trainers[].script``) through ``search.llm``."""

    name = "llm_code"

    def __init__(
        self,
        context: SearchContext,
        *,
        on_llm_call: LLMCallSink | None = None,
        llm_spent: tuple[int, float] = (0, 0.0),
        client: ChatClient | None = None,
    ) -> None:
        """
        Args:
            context: the trainers (at least one with ``script``), spaces, objective and ``context.llm``.
            on_llm_call: receives every request as an LLMCall (the factory stores it in ``llm_calls``).
            llm_spent: tokens and money the campaign already spent (a resumed one), counted against the budgets.
            client: a ready ChatClient (tests); one is made from ``context.llm`` otherwise.
        """
        if context.llm is None:
            raise SpecError(
                "search.proposer llm_code needs `search.llm` (an OpenAI-compatible endpoint); fix: add e.g.\n"
                "search:\n  llm:\n    base_url: http://localhost:11434/v1\n    model: llama3.1"
            )
        self.trainers: list[TrainerSpec] = [t for t in context.trainers if t.script]
        if not self.trainers:
            raise SpecError(
                "search.proposer llm_code edits training scripts, but no trainer has `script`; fix: add a trainer "
                "with `script: train.py` whose blocks are marked `# darkfab: editable NAME`"
            )
        self.context = context
        self.llm = context.llm
        self.client = client or ChatClient(context.llm, seed=context.seed)
        self._user_sink = on_llm_call
        self.exchange = LLMExchange(
            proposer=self.name, spec=context.llm, client=self.client, sink=self._keep, spent=llm_spent
        )
        self.originals = {t.name: Path(str(t.script)).read_text(encoding="utf-8") for t in self.trainers}
        for t in self.trainers:
            block_texts(self.originals[t.name])  # a malformed script fails here, with its line
        self.tried: list[_Tried] = []
        self.records: list[LLMCall] = []  # every chat request's outcome, as handed to ``on_llm_call``
        self._token = uuid.uuid4().hex[:8]
        self._calls = 0
        self._rng = random.Random(context.seed)
        self.last_error = ""
        self._turn = 0
        self._streak = 0  # failed exchanges in a row
        self._rest = 0  # rounds left without asking the model

    @property
    def budget(self) -> LLMBudget:
        """The LLM's token and money budget (the same object ``llm`` uses)."""
        return self.exchange.budget

    @property
    def tokens_used(self) -> int:
        """Tokens spent (a request in flight at its most), the campaign's earlier runs included."""
        return self.exchange.budget.tokens_used

    @property
    def cost_used(self) -> float:
        """Money spent, priced by ``search.llm.prices`` (a request in flight at its most)."""
        return self.exchange.budget.cost_used

    tokens = tokens_used  # the names this proposer had before it shared llm's budget
    cost = cost_used

    @property
    def exhausted(self) -> str:
        """Why the LLM stopped for good (its token or money budget is spent); empty while it may be asked."""
        return self.exchange.budget.exhausted

    def _keep(self, call: LLMCall) -> None:
        if call.status != "reserved":
            self.records.append(call)
        if self._user_sink is not None:
            self._user_sink(call)

    # -- history ------------------------------------------------------------------------------------------

    def replay(self, history: Sequence[TrialView]) -> None:
        for view in history:
            if view.trainer in self.originals:
                self.tried.append(self._from_view(view))

    def observe(self, proposal: Proposal, result: TrialView) -> None:
        edits = proposal.patch.edit_list() if proposal.patch is not None else None
        for t in self.tried:
            if (
                t.trial_id is None
                and t.trainer == proposal.trainer
                and t.params == proposal.params
                and t.patch == edits
            ):
                t.trial_id, t.state, t.value, t.error = result.trial_id, result.state, result.value, result.error
                return
        self.tried.append(self._from_view(result))

    def _from_view(self, view: TrialView) -> _Tried:
        code = view.patch or CodePatch()  # a trial of the script by another proposer ran it unedited
        return _Tried(
            view.trial_id,
            view.trainer,
            code.edit_list(),
            dict(view.params),
            "",
            code.diff,
            view.state,
            view.value,
            view.error,
        )

    def _best(self, trainer: str) -> _Tried | None:
        done = [t for t in self.tried if t.trainer == trainer and t.state == "completed" and t.value is not None]
        if not done:
            return None
        sign = 1.0 if self.context.directions[0] == "maximize" else -1.0
        return max(done, key=lambda t: sign * float(t.value or 0.0))

    # -- proposing ----------------------------------------------------------------------------------------

    def propose(self, n: int) -> list[Proposal]:
        out: list[Proposal] = []
        for _ in range(n):
            trainer = self.trainers[self._turn % len(self.trainers)]
            self._turn += 1
            space = self.context.spaces.get(trainer.name, {})
            if not any(t.trainer == trainer.name for t in self.tried):  # the user's own script first, unedited
                params = {k: _default_value(v) for k, v in space.items()}
                source = self.originals[trainer.name]
                out.append(self._record(trainer.name, [], source, params, "the unedited script, as a reference", None))
                continue
            if self.exhausted:
                self.last_error = self.exhausted
                break
            proposal = self._ask_unless_resting(trainer, space)
            if proposal is not None:  # kept even when its request spent the budget: it was paid for
                out.append(proposal)
                continue
            if self.exhausted:
                self.last_error = self.exhausted
                break
            fallback = self._fallback(trainer, space)
            if fallback is None:
                break
            out.append(fallback)
        return out

    def _ask_unless_resting(self, trainer: TrainerSpec, space: dict[str, Any]) -> Proposal | None:
        """The model's proposal, or None (resting, or the exchange failed: :attr:`last_error` says why)."""
        if self._rest > 0:
            self._rest -= 1
            self.last_error = f"resting after {self._streak} failed exchanges; last: {self.last_error}"
            return None
        proposal: Proposal | None = None
        try:
            proposal = self._ask(trainer, space)
        except Exception as exc:  # never into the factory: a bug here must not stop the campaign
            logger.exception("the LLM code proposer failed")
            self.last_error = f"{type(exc).__name__}: {exc}"
        if proposal is not None:
            self._streak = 0
            return proposal
        if not self.exhausted:
            self._streak += 1
            if self._streak >= REST_AFTER:
                self._rest = min(MAX_REST, 2 ** (self._streak - REST_AFTER + 1))
        return None

    def _fallback(self, trainer: TrainerSpec, space: dict[str, Any]) -> Proposal | None:
        """The best code so far with random valid params, saying why the LLM gave nothing; None if none is new."""
        parent = self._best(trainer.name)
        patch = list(parent.patch) if parent else []
        source = apply_edits(self.originals[trainer.name], patch)
        code = source_hash(source)
        seen = {self._key(self._code(t), t.params) for t in self.tried if t.trainer == trainer.name}
        for _try in range(50):
            params = {k: _random_value(v, self._rng) for k, v in space.items()}
            if self._key(code, params) not in seen:
                reason = f"llm unavailable: {self.last_error}; the best code so far with random valid params"
                return self._record(trainer.name, patch, source, params, reason[:500], parent)
        return None

    def _record(
        self,
        trainer: str,
        patch: list[dict[str, str]],
        source: str,
        params: dict[str, Any],
        reason: str,
        parent: _Tried | None,
    ) -> Proposal:
        """Remember and hand out one proposal; ``source`` is the original script with ``patch`` applied."""
        diff = unified_diff(self.originals[trainer], source, Path(str(self._spec(trainer).script)).name)
        self.tried.append(_Tried(None, trainer, list(patch), dict(params), reason, diff, code=source_hash(source)))
        parents = (parent.trial_id,) if parent is not None and parent.trial_id is not None else ()
        key = f"{self._token}-{len(self.tried)}"
        code = CodePatch(tuple(patch), diff)
        return Proposal(self.name, trainer, dict(params), reason, key=key, parents=parents, patch=code)

    @staticmethod
    def _key(code: str, params: dict[str, Any]) -> tuple[str, str]:
        """A trial's identity: the hash of the code it runs and its hyperparameters."""
        user = {k: v for k, v in params.items() if not k.startswith("_")}
        return code, json.dumps(user, sort_keys=True, default=str)

    def _code(self, t: _Tried) -> str:
        if not t.code:  # a trial replayed from the store: patch the script once, then remember
            t.code = source_hash(apply_edits(self.originals[t.trainer], t.patch))
        return t.code

    def _spec(self, trainer: str) -> TrainerSpec:
        return next(t for t in self.trainers if t.name == trainer)

    def _prompt(self, trainer: TrainerSpec, parent: _Tried | None, space: dict[str, Any]) -> str:
        source = apply_edits(self.originals[trainer.name], parent.patch) if parent else self.originals[trainer.name]
        metric = self.context.objective_names[0] if self.context.objective_names else "the primary metric"
        lines = [f"Objective: {self.context.directions[0]} {metric} on held-out validation data."]
        if self.context.description:
            lines.append(f"Task description: {self.context.description}")
        if self.context.constraints:
            lines.append("Constraints: " + "; ".join(self.context.constraints))
        base = f"trial {parent.trial_id} (score {parent.value:.6g})" if parent and parent.value is not None else ""
        lines.append(f"The script's editable blocks, as in {base or 'the user script'}:")
        for name, text in block_texts(source).items():
            lines.append(f"--- block {name} ---\n{text}--- end {name} ---")
        shown = {k: (v.model_dump(exclude_none=True) if isinstance(v, ParamSpec) else v) for k, v in space.items()}
        lines.append(f"Search space of `params`: {json.dumps(shown, default=str)}")
        current = dict(parent.params) if parent else {}
        if current:
            lines.append(f"Current params: {json.dumps(current, default=str)}")
        past = [t for t in self.tried if t.trainer == trainer.name and t.trial_id is not None][-self.llm.history :]
        if past:
            lines.append("Past trials (edits relative to the user's script):")
            for t in past:
                score = f"score {t.value:.6g}" if t.value is not None else t.state
                entry = f"- trial {t.trial_id}: {score}; {t.reason or 'no reason given'}"
                if t.diff:
                    entry += f"\n  diff:\n{t.diff[-_TAIL:]}"
                if t.error:
                    entry += f"\n  error: {t.error[-_TAIL:]}"
                lines.append(entry)
        lines.append("Propose one edit set that should improve the objective. Answer with the JSON object only.")
        return "\n".join(lines)

    def _ask(self, trainer: TrainerSpec, space: dict[str, Any]) -> Proposal | None:
        parent = self._best(trainer.name)
        opening: list[dict[str, str]] = [
            {"role": "system", "content": _SYSTEM},
            {"role": "user", "content": self._prompt(trainer, parent, space)},
        ]
        try:
            return self._converse(trainer, space, parent, opening)
        finally:
            self.exchange.finish(opening)

    def _converse(
        self, trainer: TrainerSpec, space: dict[str, Any], parent: _Tried | None, opening: list[dict[str, str]]
    ) -> Proposal | None:
        """Ask, and send back a rejected answer with its error, at most ``max_repairs`` times."""
        base_patch = list(parent.patch) if parent else []
        base_params = dict(parent.params) if parent else {}
        if not base_params:
            base_params = {k: _default_value(v) for k, v in space.items()}
        messages = list(opening)
        seen = {self._key(self._code(t), t.params) for t in self.tried if t.trainer == trainer.name}
        for _attempt in range(self.llm.max_repairs + 1):
            self._calls += 1
            call_id = f"{self.name}-{self._token}-{self._calls}"
            sent = list(messages)
            result = self.exchange.ask(sent, call_id=call_id)
            if result is None:
                self.last_error = self.exhausted
                return None
            if not result.ok:
                self.last_error = f"the LLM endpoint failed: {result.error}"
                self.exchange.record(call_id, sent, result, result.status, result.error)
                return None
            try:
                answer = parse_answer(result.text)
                edits = [{k: str(e[k]) for k in ("block", "search", "replace")} for e in answer["edits"]]
                patch = base_patch + edits
                source = apply_edits(self.originals[trainer.name], patch)
                params = dict(base_params)
                for k, v in dict(answer.get("params") or {}).items():
                    if k not in space:
                        raise ScriptError(f"`params` names {k!r}, which is not in the search space")
                    problem = _check_param(k, v, space[k])
                    if problem:
                        raise ScriptError(f"`params`: {problem}")
                    params[k] = v
                if not edits and not answer.get("params"):
                    raise ScriptError("the answer changes nothing; propose at least one edit")
                if self._key(source_hash(source), params) in seen:
                    raise ScriptError("this exact code and params were tried already; propose something new")
            except ScriptError as err:
                self.last_error = str(err)
                self.exchange.record(call_id, sent, result, "invalid", str(err))
                messages += [
                    {"role": "assistant", "content": result.text},
                    {"role": "user", "content": f"That answer was rejected: {err}. Answer again with the JSON only."},
                ]
                continue
            reason = str(answer.get("reason") or "").strip()[:500] or "an LLM code edit"
            proposal = self._record(trainer.name, patch, source, params, reason, parent)
            self.exchange.record(call_id, sent, result, "ok", "", (proposal.key,))
            return proposal
        return None


def _random_value(spec: ParamSpec | Any, rng: random.Random) -> Any:
    """A random value inside a parameter's range or among its choices (a fixed value as it is)."""
    if not isinstance(spec, ParamSpec):
        return spec
    if spec.choices is not None:
        return rng.choice(list(spec.choices))
    low, high = float(spec.low or 0.0), float(spec.high or 0.0)
    log = spec.log and low > 0
    value = math.exp(rng.uniform(math.log(low), math.log(high))) if log else rng.uniform(low, high)
    return min(int(high), max(int(low), round(value))) if spec.type == "int" else value
