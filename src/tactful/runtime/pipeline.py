"""The core, wired: one event through detect -> remember -> decide -> act -> learn. Pure.

``process`` reads no clock and does no I/O; given the same (event, state, policy, now) it
returns the same result. That is what makes replay, evaluation and shadow policies exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tactful.actions import Action, plan_actions
from tactful.detect import BehaviorConfig, Signal, TextScores, detect
from tactful.events import Event
from tactful.learn.outcomes import Outcome, derive_outcomes
from tactful.policy.engine import Decision, PolicyEngine
from tactful.state.customer import CustomerState, remember

__all__ = ["Processed", "process"]


@dataclass(frozen=True, slots=True)
class Processed:
    event: Event
    state: CustomerState
    signals: list[Signal]
    decisions: list[Decision]
    actions: list[Action]
    suppressed: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


def process(
    event: Event,
    state: CustomerState,
    policy: PolicyEngine,
    now: datetime,
    behavior: BehaviorConfig = BehaviorConfig(),
    text: TextScores | None = None,
) -> Processed:
    """Detect signals on ``event``, fold them into ``state``, decide, plan actions, and
    note what the event reveals about earlier decisions (outcomes)."""
    signals = detect(event, state, behavior, text)
    remembered = remember(state, event, signals)
    decided = policy.decide(event, remembered, signals, now)
    new_state, actions = plan_actions(remembered, event, signals, decided.decisions, now)
    outcomes = derive_outcomes(event, state)
    return Processed(
        event, new_state, signals, decided.decisions, actions, decided.suppressed, outcomes
    )
