"""The HTTP API for supervised rollout: the review queue.

A rule in review mode (``review:`` on the rule, or the policy's) has a share of its
decisions wait here instead of acting. A person approves one (optionally editing its
parameters: another queue, a better message), and it acts as the engine would have, on
the customer's current state; or rejects it with a reason. Both are outcomes credited to
the rule, so its measured precision tells when the review share can come down.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from tactful.actions.lifecycle import Change, LifecycleError, approve_review, reject_review
from tactful.api.auth import scope
from tactful.events import parse_event
from tactful.runtime.engine import Engine
from tactful.signals import Signal
from tactful.state.customer import CustomerState

__all__ = ["apply_verdict", "reviews_routes"]


class Verdict(BaseModel):
    by: Annotated[str, Field(min_length=1, max_length=128)]
    reason: Annotated[str, Field(max_length=2_000)] = ""
    params: dict[str, Any] = Field(
        default_factory=dict, description="approve only: edits (e.g. queue, message)"
    )


def apply_verdict(
    engine: Engine,
    waiting: dict[str, Any],
    verdict: str,
    by: str,
    reason: str,
    edits: dict[str, Any],
) -> Change:
    """Approve (with ``edits``) or reject a waiting decision, committed like an event's
    effects. Raises LifecycleError with why."""
    store, policy = engine.store, engine.policy.policy

    def fn(state: CustomerState, now: datetime) -> Change:
        if verdict == "reject":
            return reject_review(state, waiting, now, by, reason, policy)
        stored = store.get_event(waiting["event_id"])
        if stored is None:
            raise LifecycleError(f"the event {waiting['event_id']} is gone", 409)
        event = parse_event(stored["event"])
        signals = [Signal.from_dict(s) for s in stored["signals"]]
        return approve_review(state, waiting, event, signals, now, by, edits, reason, policy)

    return engine.change(waiting["customer_id"], fn)


def reviews_routes(engine: Engine) -> APIRouter:
    store = engine.store
    router = APIRouter()

    @router.get(
        "/v1/reviews",
        dependencies=[scope("read")],
        summary="Decisions waiting for a person (or decided ones)",
    )
    def reviews(
        status: Literal["pending", "approved", "rejected"] | None = "pending",
        rule_id: str | None = None,
        limit: int = Query(100, ge=1, le=1000),
    ) -> Any:
        return {"reviews": store.list_reviews(status, rule_id, limit)}

    def decide(decision_id: str, verdict: Literal["approve", "reject"], body: Verdict) -> Any:
        waiting = store.get_review(decision_id)
        if waiting is None:
            raise HTTPException(404, f"no decision '{decision_id}' is in the review queue")
        if waiting["status"] != "pending":
            raise HTTPException(
                409,
                f"'{decision_id}' was already {waiting['status']} by {waiting['decided_by']}",
            )
        if verdict == "reject" and body.params:
            raise HTTPException(422, "params: only an approval can edit the decision")
        try:
            done = apply_verdict(engine, waiting, verdict, body.by, body.reason, body.params)
        except LifecycleError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        return {
            "decision_id": decision_id,
            "status": "approved" if verdict == "approve" else "rejected",
            "actions": [a.action_id for a in done.actions],
        }

    @router.post(
        "/v1/reviews/{decision_id:path}/approve",
        dependencies=[scope("act")],
        summary="Let a waiting decision act, optionally edited",
    )
    async def approve(decision_id: str, body: Verdict) -> Any:
        return await run_in_threadpool(decide, decision_id, "approve", body)

    @router.post(
        "/v1/reviews/{decision_id:path}/reject",
        dependencies=[scope("act")],
        summary="Stop a waiting decision, with a reason",
    )
    async def reject(decision_id: str, body: Verdict) -> Any:
        return await run_in_threadpool(decide, decision_id, "reject", body)

    return router
