"""A portfolio shares the trial budget between proposers (say TPE, random search and an LLM) by what each earns.

The bandit is UCB1 over the members. A member's pay-off for one trial is the improvement it brought to the
best reward seen so far (scaled by the spread of rewards, so it lies in [0, 1]) divided by what the trial
cost relative to the average trial: its wall seconds, plus for LLM proposals the seconds the model took and
its price (a unit of money weighs ``seconds_per_dollar`` seconds). Each member's mean gain per unit of
relative cost is scaled so that the best member's is 1, and the member with the highest
``scaled rate + sqrt(2 ln N / n)`` gets the next slot; proposals handed out and not yet
finished count as trials that earned nothing, so a batch is spread instead of going to one member. Each
proposal's reason starts with why its member was chosen, and :attr:`PortfolioProposer.decisions` keeps
every choice with the scores behind it.

Proposals carry ``proposer="portfolio"`` and the key ``<member>:<member's key>``: results go back to the
member that made the proposal, and every other member observes them too, so they learn from each other.
A member whose budget is spent (the LLM's tokens or money: its ``exhausted`` attribute says why) is retired
and the others go on; one that has nothing to propose sits the round out.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import SpecError
from ._base import Proposal, Proposer, SearchContext, TrialView
from ._llm_exchange import LLMCall, LLMCallSink

logger = logging.getLogger("darkfab.propose.portfolio")

MEMBERS: tuple[str, ...] = ("tpe", "random", "cmaes", "qmc", "nsga2", "llm")
SEED_STRIDE = 1000  # members get seeds context.seed + SEED_STRIDE * position, so they do not propose alike


@dataclass
class Arm:
    """What the bandit knows about one member."""

    name: str
    proposer: Proposer
    trials: int = 0  # finished trials of its proposals
    pending: int = 0  # proposals handed out, not finished
    gain: float = 0.0
    cost: float = 0.0
    retired: str = ""

    @property
    def pulls(self) -> int:
        return self.trials + self.pending


def default_members(context: SearchContext) -> list[str]:
    if context.portfolio:
        return list(context.portfolio)
    return ["tpe", "random", "llm"] if context.llm is not None else ["tpe", "random"]


class PortfolioProposer(Proposer):
    """Shares proposals between member proposers by a UCB1 bandit on reward improvement per unit of cost."""

    name = "portfolio"

    def __init__(
        self,
        context: SearchContext,
        *,
        members: Sequence[str] | None = None,
        on_llm_call: LLMCallSink | None = None,
        llm_spent: tuple[int, float] = (0, 0.0),
        seconds_per_dollar: float = 3600.0,
    ) -> None:
        """
        Args:
            context: the search; members are made from it (each with its own seed).
            members: proposer names; ``context.portfolio``, or tpe and random (and llm with ``context.llm``).
            on_llm_call: passed to the LLM member; its records name the portfolio's keys (``llm:...``).
            llm_spent: tokens and money the LLM member already spent in this campaign.
            seconds_per_dollar: how many trial seconds one unit of LLM money weighs in the cost.
        """
        from ._registry import make_proposer

        names = list(members) if members is not None else default_members(context)
        if not names:
            raise SpecError("search.portfolio needs at least one member, for example [tpe, random, llm]")
        bad = [n for n in names if n not in MEMBERS]
        if bad:
            raise SpecError(f"search.portfolio members must be among {list(MEMBERS)}, got {bad}")
        if len(set(names)) != len(names):
            raise SpecError(f"search.portfolio lists a member twice: {names}; name each proposer once")
        self.context = context
        self._sink = on_llm_call
        self._seconds_per_dollar = seconds_per_dollar
        self.arms: dict[str, Arm] = {}
        for i, member in enumerate(names):
            sub = replace(context, seed=context.seed + SEED_STRIDE * i)
            proposer = make_proposer(member, sub, on_llm_call=self._llm_sink, llm_spent=llm_spent)  # LLM-aware only
            self.arms[member] = Arm(member, proposer)
        self._own: dict[str, tuple[str, Proposal]] = {}  # portfolio key -> (member, member's proposal)
        self._counted: set[str] = set()
        self._best: float | None = None
        self._low: float | None = None
        self._seconds: list[float] = []
        self._costs: list[float] = []
        self._news: list[str] = []
        self.decisions: list[dict[str, Any]] = []
        """Every choice: the member, the slot, and each member's score at that moment."""

    # ------------------------------------------------------------------------------------------------
    # Proposer

    def replay(self, history: Sequence[TrialView]) -> None:
        for arm in self.arms.values():
            arm.proposer.replay(history)
        for view in history:
            self._track(view)

    def propose(self, n: int) -> list[Proposal]:
        out: list[Proposal] = []
        dry: set[str] = set()
        while len(out) < n:
            plan = self._plan(n - len(out), dry)
            if not plan:
                break
            for member, (count, why) in plan.items():
                arm = self.arms[member]
                try:
                    got = arm.proposer.propose(count)
                except Exception:  # a member's bug must not stop the others
                    logger.exception("portfolio member %s failed to propose", member)
                    got = []
                self._retire_if_spent(arm)
                if len(got) < count:
                    dry.add(member)
                for inner in got[:count]:
                    out.append(self._wrap(member, inner, why))
        return out

    def observe(self, proposal: Proposal, result: TrialView) -> None:
        owner, inner = self._owner(proposal)
        for name, arm in self.arms.items():
            try:
                if name == owner:
                    arm.proposer.observe(inner, result)
                else:
                    foreign = replace(inner, proposer=owner or proposal.proposer, key=f"{proposal.key}@portfolio")
                    arm.proposer.observe(foreign, result)
            except Exception:
                logger.exception("portfolio member %s failed to observe trial %s", name, result.trial_id)
        if result.state in ("queued", "running") or proposal.key in self._counted:
            return
        self._counted.add(proposal.key)
        gain = self._track(result)
        if owner is None:
            return
        arm = self.arms[owner]
        arm.pending = max(0, arm.pending - 1) if proposal.key in self._own else arm.pending
        arm.trials += 1
        arm.gain += gain
        arm.cost += self._cost(owner, inner, result)
        self._own.pop(proposal.key, None)
        self._retire_if_spent(arm)

    def should_prune(self, proposal: Proposal, step: int, value: float) -> bool:
        owner, inner = self._owner(proposal)
        if owner is None:
            return False
        return bool(self.arms[owner].proposer.should_prune(inner, step, value))

    @property
    def exhausted(self) -> str:
        """Why every member stopped for good, once all of them have; empty while one may still propose."""
        arms = list(self.arms.values())
        if arms and all(a.retired for a in arms):
            return "; ".join(f"{a.name}: {a.retired}" for a in arms)
        return ""

    # ------------------------------------------------------------------------------------------------
    # the bandit

    def scores(self) -> dict[str, float]:
        """Each active member's UCB1 score now (inf for one not tried yet)."""
        return self._scores([a for a in self.arms.values() if not a.retired])

    def _total_pulls(self) -> int:
        return sum(a.pulls for a in self.arms.values() if not a.retired)

    def _rate(self, arm: Arm) -> float:
        """Mean gain per trial over relative cost; proposals still pending count as trials that earned nothing."""
        if arm.trials == 0:
            return 0.0
        mean_cost = sum(self._costs) / len(self._costs) if self._costs else 1.0
        relative = (arm.cost / arm.trials) / mean_cost if mean_cost > 0 else 1.0
        return (arm.gain / arm.pulls) / max(relative, 1e-6)

    def _scores(self, active: list[Arm]) -> dict[str, float]:
        # rates are scaled so the best member's is 1: UCB1's exploration term then weighs against [0, 1] pay-offs
        rates = {a.name: self._rate(a) for a in active}
        top = max(rates.values(), default=0.0)
        total = self._total_pulls()
        out = {}
        for a in active:
            if a.pulls == 0:
                out[a.name] = math.inf
                continue
            scaled = rates[a.name] / top if top > 0 else 0.0
            out[a.name] = scaled + math.sqrt(2.0 * math.log(max(total, 1)) / a.pulls)
        return out

    def _plan(self, n: int, dry: set[str]) -> dict[str, tuple[int, str]]:
        """How many of ``n`` slots each member gets, and why; members in ``dry`` sit out."""
        active = [a for a in self.arms.values() if not a.retired and a.name not in dry]
        if not active:
            return {}
        plan: dict[str, tuple[int, str]] = {}
        for _ in range(n):
            scores = self._scores(active)
            pick = max(active, key=lambda a: scores[a.name])  # ties: the first listed
            why = self._why(pick, scores)
            self.decisions.append({"member": pick.name, "scores": scores, "why": why})
            pick.pending += 1  # counted now so the next slot of this batch sees it
            count, first_why = plan.get(pick.name, (0, why))
            plan[pick.name] = (count + 1, first_why)
        for name, (count, _) in plan.items():
            self.arms[name].pending -= count  # re-added per proposal actually made, in _wrap
        return plan

    def _why(self, pick: Arm, scores: dict[str, float]) -> str:
        if pick.pulls == 0:
            text = f"portfolio chose {pick.name}: its first turn"
        else:
            bonus = math.sqrt(2.0 * math.log(max(self._total_pulls(), 1)) / pick.pulls)
            others = ", ".join(f"{k} {_num(v)}" for k, v in scores.items() if k != pick.name)
            text = (
                f"portfolio chose {pick.name}: UCB1 {_num(scores[pick.name])} = scaled gain/cost "
                f"{scores[pick.name] - bonus:.3g} (raw {self._rate(pick):.3g}) + exploration {bonus:.3g} over "
                f"{pick.trials} finished and {pick.pending} pending" + (f"; others {others}" if others else "")
            )
        if self._news:
            text += "; " + "; ".join(self._news)
            self._news.clear()
        return text

    def _retire_if_spent(self, arm: Arm) -> None:
        if arm.retired or arm.proposer.stop_reason is None:
            return
        arm.retired = arm.proposer.exhausted
        note = f"{arm.name} retired ({arm.retired})"
        self._news.append(note)
        self.decisions.append({"member": arm.name, "retired": arm.retired})
        logger.info("portfolio: %s; the others go on", note)

    # ------------------------------------------------------------------------------------------------
    # bookkeeping

    def _wrap(self, member: str, inner: Proposal, why: str) -> Proposal:
        key = f"{member}:{inner.key}"
        self._own[key] = (member, inner)
        self.arms[member].pending += 1
        return Proposal(
            self.name,
            inner.trainer,
            inner.params,
            f"{why} | {inner.reason}",
            key=key,
            parents=inner.parents,
            patch=inner.patch,
        )

    def _owner(self, proposal: Proposal) -> tuple[str | None, Proposal]:
        """The member that made ``proposal`` (None for one from elsewhere) and the proposal as it made it."""
        known = self._own.get(proposal.key)
        if known is not None:
            member, inner = known
            return member, replace(inner, params=proposal.params, trainer=proposal.trainer)
        member, sep, key = proposal.key.partition(":")
        if proposal.proposer == self.name and sep and member in self.arms:  # from before a restart
            return member, replace(proposal, proposer=self.arms[member].proposer.name, key=key)
        return None, proposal

    def _track(self, view: TrialView) -> float:
        """Fold a finished trial into the best reward; the scaled improvement it brought (0 when none)."""
        if view.seconds is not None and view.state in ("completed", "failed", "pruned"):
            self._seconds.append(float(view.seconds))
        if view.state != "completed" or view.feasible is False:
            return 0.0
        reward = _reward(view, self.context)
        if reward is None:
            return 0.0
        gain = 0.0
        if self._best is not None and reward > self._best:
            spread = self._best - (self._low if self._low is not None else self._best)
            gain = min(1.0, (reward - self._best) / spread) if spread > 0 else 1.0
        self._best = reward if self._best is None else max(self._best, reward)
        self._low = reward if self._low is None else min(self._low, reward)
        return gain

    def _cost(self, member: str, inner: Proposal, view: TrialView) -> float:
        if view.seconds is not None:
            seconds = float(view.seconds)
        else:
            seconds = sum(self._seconds) / len(self._seconds) if self._seconds else 1.0
        spent_on = getattr(self.arms[member].proposer, "spent_on", None)
        if callable(spent_on):
            money, llm_seconds = spent_on(inner.key)
            seconds += llm_seconds + money * self._seconds_per_dollar
        self._costs.append(seconds)
        return seconds

    def _llm_sink(self, call: LLMCall) -> None:
        if self._sink is not None:
            self._sink(replace(call, proposal_keys=tuple(f"llm:{k}" for k in call.proposal_keys)))


def _reward(view: TrialView, context: SearchContext) -> float | None:
    if view.reward is not None and math.isfinite(view.reward):
        return float(view.reward)
    if view.value is None or not math.isfinite(view.value):
        return None
    maximize = (context.directions or ("maximize",))[0] == "maximize"
    return float(view.value) if maximize else -float(view.value)


def _num(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.3g}"
