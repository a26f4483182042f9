"""The HTTP API for acting: marketing eligibility (one customer or a send list), holds a
person places or releases, and the handoff queue agents work from.

Marketing tools ask before they send; agents accept, resolve or reject handoffs; every
change a person makes is an audited decision with who and why, and goes out to the
channels like the engine's own (``hold.released`` reaches the same webhook as
``hold.started``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from tactful.actions.lifecycle import (
    Change,
    HandoffStatus,
    LifecycleError,
    place_hold,
    release_hold,
    update_handoff,
)
from tactful.api.auth import scope
from tactful.api.params import in_range
from tactful.policy.model import parse_duration
from tactful.runtime.engine import Engine
from tactful.state.customer import HANDOFF_TTL, CustomerState

__all__ = ["MAX_SEND_LIST", "Eligibility", "acting_routes", "apply_handoff", "eligibility_of"]

MAX_SEND_LIST = 10_000

Category = Literal["promotional", "educational", "sales", "all"]
Who = Annotated[str, Field(min_length=1, max_length=128, description="who did it")]
Note = Annotated[str, Field(max_length=2_000)]


class Eligibility(BaseModel):
    customer_id: str
    category: Category
    eligible: bool
    reason: str
    hold_id: str | None = None
    hold_ends_at: datetime | None = None


class SendList(BaseModel):
    category: Category = "promotional"
    customer_ids: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(min_length=1)


class NewHold(BaseModel):
    categories: list[Category] = Field(min_length=1)
    until: datetime | None = Field(None, description="ISO 8601 with timezone")
    duration: str | None = Field(None, description="or a duration from now: 2h, 3d, 1w")
    by: Who
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    comment: Note = ""

    @model_validator(mode="after")
    def _one_end(self) -> NewHold:
        if (self.until is None) == (self.duration is None):
            raise ValueError("give until or duration (one of them)")
        if self.until is not None and self.until.tzinfo is None:
            raise ValueError("until: needs a timezone, e.g. 2026-12-01T00:00:00Z")
        if self.until is not None and not in_range(self.until):
            raise ValueError(f"until: {self.until.isoformat()} is outside 1970-9000")
        if self.duration is not None:
            length = parse_duration(self.duration)  # its ValueError says what one looks like
            if not timedelta(0) < length <= timedelta(days=3650):
                raise ValueError(f"duration: {self.duration} is not between 0 and 10 years")
        return self

    def end(self, now: datetime) -> datetime:
        return self.until if self.until is not None else now + parse_duration(self.duration or 0)


class Release(BaseModel):
    by: Who
    comment: Note = ""


class HandoffUpdate(BaseModel):
    by: Who
    reason: Note = ""


def eligibility_of(
    customer_id: str, state: CustomerState | None, category: Category, now: datetime, engine: Engine
) -> Eligibility:
    """May marketing message this customer now? Holds first, then an open handoff (it
    mutes marketing: Alertmanager's inhibition), then quiet hours on their clock."""
    if state is not None:
        for hold in state.active_holds(now):
            if hold.covers(category):
                return Eligibility(
                    customer_id=customer_id,
                    category=category,
                    eligible=False,
                    reason=f"on hold until {hold.ends_at.isoformat()}: {hold.reason}",
                    hold_id=hold.hold_id,
                    hold_ends_at=hold.ends_at,
                )
        open_ = [h for h in state.handoffs if now - h.opened_at < HANDOFF_TTL]
        if open_:
            return Eligibility(
                customer_id=customer_id,
                category=category,
                eligible=False,
                reason=f"a handoff to the {open_[-1].queue} queue is open: marketing waits "
                "until a person has resolved it",
            )
    quiet = engine.policy.policy.quiet_hours
    if quiet is not None and (category == "all" or category in quiet.categories):
        local = state.local(now) if state is not None else now
        if quiet.covers(local):
            where = state.timezone if state is not None and state.timezone else "UTC"
            return Eligibility(
                customer_id=customer_id,
                category=category,
                eligible=False,
                reason=f"quiet hours {quiet.start}-{quiet.end} in {where} "
                f"(their time now {local.strftime('%H:%M')})",
            )
    return Eligibility(
        customer_id=customer_id,
        category=category,
        eligible=True,
        reason="no active hold"
        if state is not None
        else "unknown customer (not seen yet): no hold",
    )


def apply_handoff(
    engine: Engine, customer_id: str, handoff_id: str, status: HandoffStatus, by: str, reason: str
) -> Change:
    """An agent's verdict on a handoff, committed like an event's effects (the API, the
    outcomes endpoint and the dashboard all come here). Raises LifecycleError with why."""
    policy = engine.policy.policy

    def fn(state: CustomerState, now: datetime) -> Change:
        return update_handoff(state, handoff_id, status, now, by, reason, policy)

    return engine.change(customer_id, fn)


def _changed(done: Change) -> dict[str, Any]:
    return {
        "decisions": [d.as_dict() for d in done.decisions],
        "actions": [a.action_id for a in done.actions],
    }


async def _apply(engine: Engine, customer_id: str, fn: Any) -> dict[str, Any]:
    try:
        done = await run_in_threadpool(engine.change, customer_id, fn)
    except LifecycleError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return _changed(done)


def acting_routes(engine: Engine) -> APIRouter:
    store = engine.store
    router = APIRouter()

    @router.get(
        "/v1/customers/{customer_id}/eligibility",
        dependencies=[scope("read")],
        response_model=Eligibility,
        summary="May marketing message this customer now, in this category?",
    )
    def eligibility(customer_id: str, category: Category = "promotional") -> Eligibility:
        return eligibility_of(
            customer_id, store.get_state(customer_id), category, engine.clock(), engine
        )

    @router.post(
        "/v1/eligibility",
        dependencies=[scope("read")],
        summary=f"Eligibility for a send list (up to {MAX_SEND_LIST:,} customer ids)",
        responses={413: {"description": f"more than {MAX_SEND_LIST:,} ids"}},
    )
    def send_list(body: SendList) -> Any:
        if len(body.customer_ids) > MAX_SEND_LIST:
            return JSONResponse(
                status_code=413,
                content={
                    "errors": [
                        {
                            "field": "customer_ids",
                            "value": len(body.customer_ids),
                            "why": f"at most {MAX_SEND_LIST:,} ids per request; split the list",
                        }
                    ]
                },
            )
        now = engine.clock()
        states = store.load_states(list(dict.fromkeys(body.customer_ids)))
        answers = [
            eligibility_of(cid, states.get(cid), body.category, now, engine)
            for cid in body.customer_ids
        ]
        return {
            "category": body.category,
            "eligible": sum(a.eligible for a in answers),
            "held": len(answers) - sum(a.eligible for a in answers),
            "results": [a.model_dump(mode="json", exclude_none=True) for a in answers],
        }

    @router.get(
        "/v1/customers/{customer_id}/holds",
        dependencies=[scope("read")],
        summary="A customer's holds, newest first",
    )
    def customer_holds(customer_id: str, limit: int = Query(100, ge=1, le=1000)) -> Any:
        return {"holds": store.list_holds(customer_id, limit=limit)}

    @router.get(
        "/v1/holds",
        dependencies=[scope("read")],
        summary="Holds in force now (or all, newest first)",
    )
    def holds(
        active: bool = Query(True, description="only holds in force now"),
        limit: int = Query(1000, ge=1, le=10_000),
    ) -> Any:
        return {
            "holds": store.list_holds(active_at=engine.clock() if active else None, limit=limit)
        }

    @router.post(
        "/v1/customers/{customer_id}/holds",
        dependencies=[scope("act")],
        status_code=201,
        summary="Hold marketing for a customer (a person's decision, audited)",
    )
    async def new_hold(customer_id: str, body: NewHold) -> Any:
        def fn(state: CustomerState, now: datetime) -> Change:
            return place_hold(
                state,
                list(body.categories),
                body.end(now),
                now,
                body.by,
                body.reason,
                body.comment,
                engine.policy.policy,
            )

        return await _apply(engine, customer_id, fn)

    @router.post(
        "/v1/customers/{customer_id}/holds/{hold_id:path}/release",
        dependencies=[scope("act")],
        summary="End a hold early, with a comment (the hold is expired, never edited)",
    )
    async def release(customer_id: str, hold_id: str, body: Release) -> Any:
        def fn(state: CustomerState, now: datetime) -> Change:
            return release_hold(state, hold_id, now, body.by, body.comment, engine.policy.policy)

        return await _apply(engine, customer_id, fn)

    @router.get(
        "/v1/handoffs",
        dependencies=[scope("read")],
        summary="The handoff queue: by queue and status, newest first",
    )
    def handoffs(
        queue: str | None = None,
        status: Literal["open", "accepted", "resolved", "rejected"] | None = None,
        customer_id: str | None = None,
        limit: int = Query(100, ge=1, le=1000),
    ) -> Any:
        rows = store.list_handoffs(queue, status, customer_id, limit)
        now = engine.clock()
        for r in rows:  # an open handoff nobody touched lapses (see HANDOFF_TTL)
            opened = datetime.fromisoformat(r["opened_at"])
            if r["status"] in ("open", "accepted") and now - opened >= HANDOFF_TTL:
                r["status"] = "expired"
        return {"handoffs": rows}

    @router.get(
        "/v1/handoffs/{handoff_id:path}",
        dependencies=[scope("read")],
        summary="One handoff with its package",
    )
    def handoff(handoff_id: str) -> Any:
        found = store.get_handoff(handoff_id)
        if found is None:
            raise HTTPException(404, f"no handoff '{handoff_id}'")
        return found

    def _handoff_route(status: HandoffStatus) -> None:
        verb = {"accepted": "accept", "resolved": "resolve", "rejected": "reject"}[status]

        async def act(handoff_id: str, body: HandoffUpdate) -> Any:
            found = store.get_handoff(handoff_id)
            if found is None:
                raise HTTPException(404, f"no handoff '{handoff_id}'")
            try:
                done = await run_in_threadpool(
                    apply_handoff,
                    engine,
                    found["customer_id"],
                    handoff_id,
                    status,
                    body.by,
                    body.reason,
                )
            except LifecycleError as exc:
                raise HTTPException(exc.status, str(exc)) from None
            return _changed(done)

        router.post(
            f"/v1/handoffs/{{handoff_id:path}}/{verb}",
            dependencies=[scope("act")],
            summary=f"An agent {status} a handoff"
            + (" (reason required: why was it unnecessary?)" if status == "rejected" else ""),
        )(act)

    statuses: tuple[HandoffStatus, ...] = ("accepted", "resolved", "rejected")
    for status in statuses:
        _handoff_route(status)
    return router
