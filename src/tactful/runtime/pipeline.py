"""The core, wired: one event through detect -> remember -> decide -> act -> learn. Pure.

``process`` reads no clock and does no I/O; given the same (event, state, policy, now) it
returns the same result. That is what makes replay, evaluation and shadow policies exact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from tactful.actions import Action, plan_actions
from tactful.detect import BehaviorConfig, Signal, TextScores, detect, reply_text, scored_text
from tactful.detect.text import read_text
from tactful.events import Event
from tactful.learn.outcomes import Outcome, derive_outcomes
from tactful.policy.engine import Decision, PolicyEngine
from tactful.policy.incident import Incident
from tactful.policy.model import Policy
from tactful.state.account import AccountState, remember_account
from tactful.state.conversation import DEFAULT_CONVERSATION, ConversationModel
from tactful.state.customer import (
    DEFAULT_MEMORY,
    CustomerState,
    MemoryConfig,
    is_too_late,
    remember,
)

__all__ = ["Processed", "in_holdout", "process", "under_review"]


def _bucket(key: str) -> float:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def under_review(decision: Decision, policy: Policy) -> bool:
    """Whether this decision waits for a person: its rule's review share, sampled stably
    by decision id."""
    share = policy.review_share(decision.rule_id)
    return share > 0 and (share >= 1 or _bucket(f"review:{decision.decision_id}") < share)


def in_holdout(customer_id: str, policy: Policy) -> bool:
    """Whether the customer is in the policy's control group (stable by customer id;
    salted so it is independent of the canary split)."""
    if policy.holdout is None or policy.holdout.share <= 0:
        return False
    return _bucket(f"holdout:{customer_id}") < policy.holdout.share


@dataclass(frozen=True, slots=True)
class Processed:
    event: Event
    state: CustomerState
    signals: list[Signal]
    decisions: list[Decision]
    actions: list[Action]
    suppressed: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    account: AccountState | None = None
    # Later than the allowed lateness: recorded and counted, not applied or acted on.
    late: bool = False
    # whether this event changed the account (the store writes changed accounts only)
    account_changed: bool = False
    account_context_changed: bool = False  # tier, owner ... (from identify/group)
    # A shadow policy's decisions on the same state, signals and clock: recorded, never
    # acted on (None when no shadow policy runs).
    shadow: list[Decision] | None = None


def process(
    event: Event,
    state: CustomerState,
    policy: PolicyEngine,
    now: datetime,
    behavior: BehaviorConfig = BehaviorConfig(),
    text: TextScores | None = None,
    account: AccountState | None = None,
    memory: MemoryConfig = DEFAULT_MEMORY,
    incident: Incident | None = None,
    queue_load: Mapping[str, int] | None = None,
    shadow: PolicyEngine | None = None,
    reply_risk: float | None = None,
    conversation: ConversationModel = DEFAULT_CONVERSATION,
    exchange: float | None = None,
) -> Processed:
    """Detect signals on ``event``, fold them into the customer's (and their account's)
    state, decide, plan actions, and note what the event reveals about earlier decisions.

    ``account``: the state of the account the customer belongs to, if any (the caller
    loads it by the event's or the customer's account id). ``shadow``: a candidate policy
    that decides on exactly what ``policy`` saw, for comparison only. ``reply_risk``: for
    a bot's or agent's reply, how likely a reply like it leaves the customer dissatisfied
    (the text scorer's reply head); ``conversation``: the weights that read the
    conversation's frustration now (state/conversation.py); ``exchange``: for a customer
    message answering a recent reply, the scorer's reading of the two together (its
    exchange head)."""
    if is_too_late(state, event, memory):
        return Processed(
            event,
            remember(state, event, [], memory),
            [],
            [],
            [],
            [
                f"event is {state.last_seen - event.timestamp} older than the customer's latest "
                f"(allowed lateness {memory.lateness}): recorded, not applied"
            ]
            if state.last_seen
            else [],
            account=account,
            late=True,
        )
    written = scored_text(event)
    if written is not None and text is None:  # the lexical tier, read once for both uses
        text = read_text(written, state.recent_messages)
    signals = detect(event, state, behavior, text)
    remembered = remember(state, event, signals, memory)
    if event.type == "message" and text is not None:
        remembered = remembered.model_copy(
            update={
                "conversation": conversation.read(
                    state.conversation,
                    event.timestamp,
                    text.scores["frustration"],
                    exchange,
                    text.outright,
                )
            }
        )
    elif reply_risk is not None:
        remembered = remembered.model_copy(
            update={
                "conversation": conversation.replied(
                    state.conversation, event.timestamp, reply_risk, reply_text(event)
                )
            }
        )
    account_changed = context_changed = False
    if account is not None:
        before = account
        account = remember_account(account, state, remembered, event, signals, memory)
        account_changed = account is not before
        context_changed = account.context is not before.context
        mine, shared = remembered.account, account.context
        if mine is not shared and mine.own_fields != shared.own_fields:
            # the account's fields, with this customer's own traits kept (never shared)
            view = shared.model_copy(update={"traits": {**shared.traits, **mine.traits}})
            remembered = remembered.model_copy(update={"account": view})
    decided = policy.decide(
        event, remembered, signals, now, account, memory.trend, incident, queue_load, state
    )
    shadowed = None
    if shadow is not None:
        shadowed = shadow.decide(
            event, remembered, signals, now, account, memory.trend, incident, queue_load, state
        ).decisions
    decisions = [
        replace(d, review=True) if under_review(d, policy.policy) else d for d in decided.decisions
    ]
    if in_holdout(event.customer_id, policy.policy):
        # the control group: what would have been done is recorded, nothing is done (the
        # cooldowns still run, so it is decided as often as for everyone else)
        decisions = [replace(d, holdout=True, review=False) for d in decisions]
        fired = {**remembered.rule_fired_at, **{d.rule_id: now for d in decisions}}
        new_state = (
            remembered.model_copy(update={"rule_fired_at": fired}) if decisions else remembered
        )
        actions: list[Action] = []
    else:
        # Decisions waiting for review act only once a person approves them (cooldowns
        # run from now, so the rule does not queue the same review on every event).
        waiting = [d for d in decisions if d.review]
        acting = [d for d in decisions if not d.review]
        new_state, actions = plan_actions(
            remembered, event, signals, acting, now, policy.policy, memory.trend
        )
        if waiting:
            fired = {**new_state.rule_fired_at, **{d.rule_id: now for d in waiting}}
            new_state = new_state.model_copy(update={"rule_fired_at": fired})
    outcomes = derive_outcomes(event, state, signals)
    return Processed(
        event,
        new_state,
        signals,
        decisions,
        actions,
        decided.suppressed,
        outcomes,
        account,
        account_changed=account_changed,
        account_context_changed=context_changed,
        shadow=shadowed,
    )
