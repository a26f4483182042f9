"""The HTTP API for learning: outcomes reported from outside, and the metrics over them.

What happened after tactful acted is what judges it: a rating, a thumbs-down on a reply,
an agent's verdict on a handoff and on its summary, a conversion, a churn. Each outcome is
credited to a rule (the decision's, the handoff's, or the last rule that acted on the
customer within the attribution window), so rules can be judged by their consequences.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from tactful.actions.lifecycle import LifecycleError
from tactful.api.acting import apply_handoff
from tactful.api.auth import scope
from tactful.api.params import aware, in_range
from tactful.learn.drift import compare
from tactful.learn.outcomes import Outcome, last_rule
from tactful.learn.summary import Options, summarise
from tactful.runtime.engine import Engine

__all__ = ["OutcomeIn", "drift_now", "learning_routes"]

Reported = Literal[
    "csat",
    "thumbs",
    "summary_rating",
    "conversion",
    "churn",
    "handoff_resolved",
    "handoff_rejected",
]


class OutcomeIn(BaseModel):
    """An outcome reported by a helpdesk, a CRM, a survey tool or an agent."""

    outcome_id: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None, description="your id for it: a second report with the same id has no effect"
    )
    customer_id: Annotated[str, Field(min_length=1, max_length=256)]
    kind: Reported
    value: float | None = Field(
        None,
        description="csat and summary_rating 1-5; thumbs +1 or -1; conversion an amount",
    )
    decision_id: str | None = Field(None, description="the decision it judges, if one")
    handoff_id: str | None = Field(None, description="required for handoff_* and summary_rating")
    by: Annotated[str, Field(max_length=128)] = ""
    reason: Annotated[str, Field(max_length=2_000)] = ""
    at: datetime | None = Field(None, description="when it happened (default: now)")

    @model_validator(mode="after")
    def _fits_its_kind(self) -> OutcomeIn:
        v = self.value
        if self.kind in ("csat", "summary_rating") and (v is None or not 1 <= v <= 5):
            raise ValueError(f"value: {self.kind} is a rating from 1 to 5, got {v}")
        if self.kind == "thumbs" and v not in (1, -1):
            raise ValueError(f"value: thumbs is +1 or -1, got {v}")
        if self.kind == "conversion" and v is not None and v < 0:
            raise ValueError(f"value: a conversion amount cannot be negative, got {v}")
        needs_handoff = self.kind in ("handoff_resolved", "handoff_rejected", "summary_rating")
        if needs_handoff and not self.handoff_id:
            raise ValueError(f"handoff_id: {self.kind} is about a handoff; say which")
        if self.kind == "handoff_rejected" and not self.reason:
            raise ValueError("reason: a rejection needs one (why was the handoff unnecessary?)")
        if self.kind.startswith("handoff_") and not self.by:
            raise ValueError(f"by: who {self.kind.removeprefix('handoff_')} the handoff")
        if self.at is not None and self.at.tzinfo is None:
            raise ValueError("at: needs a timezone, e.g. 2026-11-23T09:00:00Z")
        if self.at is not None and not in_range(self.at):
            raise ValueError(f"at: {self.at.isoformat()} is outside 1970-9000")
        return self

    def key(self) -> str:
        if self.outcome_id:
            return f"reported:{self.outcome_id}"
        raw = self.model_dump_json(exclude={"at"})
        return "reported:" + hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


def learning_routes(engine: Engine) -> APIRouter:
    store = engine.store
    router = APIRouter()

    @router.post(
        "/v1/outcomes",
        dependencies=[scope("act")],
        status_code=201,
        summary="Report what followed: a rating, a verdict on a handoff, a conversion, a churn",
        responses={
            200: {"description": "Already reported (same outcome_id): nothing changed"},
            404: {"description": "Unknown customer, decision or handoff (with which)"},
        },
    )
    async def post_outcome(body: OutcomeIn) -> Any:
        return await run_in_threadpool(record, body)

    def record(body: OutcomeIn) -> Any:
        key = body.key()
        if store.get_outcome(key) is not None:
            return JSONResponse(status_code=200, content={"outcome_id": key, "duplicate": True})
        state = store.get_state(body.customer_id)
        if state is None:
            raise HTTPException(404, f"customer_id: no customer '{body.customer_id}' has been seen")
        rule: str | None = None
        detail: dict[str, Any] = {"by": body.by, "reason": body.reason}
        if body.decision_id is not None:
            decision = store.get_decision(body.decision_id)
            if decision is None or decision["customer_id"] != body.customer_id:
                raise HTTPException(
                    404, f"decision_id: no decision '{body.decision_id}' for this customer"
                )
            rule = decision["rule_id"]
            detail["decision_id"] = body.decision_id
        if body.handoff_id is not None:
            handoff = store.get_handoff(body.handoff_id)
            if handoff is None or handoff["customer_id"] != body.customer_id:
                raise HTTPException(
                    404, f"handoff_id: no handoff '{body.handoff_id}' for this customer"
                )
            rule = rule or handoff["package"].get("rule_id") or _rule_of(body.handoff_id)
            detail |= {"handoff_id": body.handoff_id, "queue": handoff["queue"]}
        now = engine.clock()
        at = body.at or now
        if body.kind in ("handoff_resolved", "handoff_rejected"):
            status: Literal["resolved", "rejected"] = (
                "resolved" if body.kind == "handoff_resolved" else "rejected"
            )
            try:
                done = apply_handoff(
                    engine, body.customer_id, body.handoff_id or "", status, body.by, body.reason
                )
            except LifecycleError as exc:
                raise HTTPException(exc.status, str(exc)) from None
            return {"outcome_id": done.outcomes[0].outcome_id, "rule_id": done.outcomes[0].rule_id}
        outcome = Outcome(
            key,
            key,
            body.customer_id,
            at,
            body.kind,
            body.value,
            rule or last_rule(state, at),
            detail,
        )
        if not store.record_outcomes([outcome]):
            return JSONResponse(status_code=200, content={"outcome_id": key, "duplicate": True})
        engine.metrics.outcomes.labels(body.kind).inc()
        return {"outcome_id": key, "rule_id": outcome.rule_id}

    @router.get(
        "/v1/metrics/summary",
        dependencies=[scope("read")],
        summary="Containment without regret, escalation precision, time to intervention, ...",
    )
    def metrics_summary(
        since: datetime | None = Query(None, description="ISO 8601 with timezone"),
        until: datetime | None = Query(None, description="ISO 8601 with timezone"),
        queue: str | None = None,
        policy_version: str | None = None,
        tier: str | None = Query(None, description="a segment: the account tier"),
    ) -> Any:
        options = Options(queue=queue, policy_version=policy_version, tier=tier)
        return summarise(store, aware("since", since), aware("until", until), options)

    @router.get(
        "/v1/drift",
        dependencies=[scope("read")],
        summary="Have the detectors' score distributions or signal rates shifted?",
    )
    def drift(
        current_hours: float = Query(24, gt=0, le=24 * 90),
        reference_days: float = Query(7, gt=0, le=365),
    ) -> Any:
        return drift_now(engine, timedelta(hours=current_hours), timedelta(days=reference_days))

    return router


def drift_now(engine: Engine, current: timedelta, reference: timedelta) -> dict[str, Any]:
    """The last ``current`` against the ``reference`` before it (learn/drift.py)."""
    now = engine.clock()
    cut = now - current
    report = compare(
        engine.store.event_signals(cut - reference, cut), engine.store.event_signals(cut, now)
    )
    return {
        "current": {"since": cut.isoformat(), "until": now.isoformat()},
        "reference": {"since": (cut - reference).isoformat(), "until": cut.isoformat()},
        **report,
    }


def _rule_of(handoff_id: str) -> str | None:
    """``handoff:<event>/<rule>/escalate`` -> rule."""
    parts = handoff_id.removeprefix("handoff:").rsplit("/", 2)
    return parts[-2] if len(parts) == 3 else None
