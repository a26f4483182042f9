"""The HTTP API: ingest events, read customer state, decisions, eligibility and metrics.

``POST /v1/events`` answers 202 only after the batch's effects are committed (with
``durability=full`` they are on disk), so an acknowledged event is never lost. Bad events
are reported one by one and kept in quarantine; good events in the same batch are
accepted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from tactful import __version__
from tactful.actions.channels.config import SourceSpec
from tactful.actions.guidance import guidance
from tactful.api.acting import acting_routes
from tactful.api.auth import Keyring, Sessions, scope
from tactful.api.helpdesks import helpdesk_routes
from tactful.api.learning import drift_now, learning_routes
from tactful.api.params import ERRORS_CONTENT, aware
from tactful.api.reviews import reviews_routes
from tactful.api.segment import segment_routes
from tactful.dashboard import dashboard_routes, static_mount
from tactful.events import may_hold_surrogates
from tactful.inbound import SignatureError, check_signature
from tactful.learn.summary import summarise
from tactful.policy import PolicyEngine, PolicyError
from tactful.privacy import in_plain_words
from tactful.runtime.engine import Engine
from tactful.state.account import AccountState
from tactful.state.customer import CustomerState
from tactful.state.store.base import QuarantineItem
from tactful.state.trend import DEFAULT_TREND, Trend, TrendConfig

if TYPE_CHECKING:
    from tactful.broker.nats import Publisher

__all__ = ["MAX_BATCH", "MAX_BODY_BYTES", "create_app"]

MAX_BATCH = 1_000
MAX_BODY_BYTES = 5 * 1024 * 1024


class EventResult(BaseModel):
    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    event_id: str | None = None
    errors: list[dict[str, Any]] = []
    signals: list[str] = []
    decisions: list[dict[str, Any]] = []


class IngestResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResult]


class IncidentSwitch(BaseModel):
    on: bool
    by: Annotated[str, Field(min_length=1, max_length=128, description="who switched it")]
    reason: Annotated[str, Field(max_length=1_000)] = ""


# serve --broker only: the stream is at its limits, or JetStream did not ack in time.
_BROKER_BUSY = {
    "description": "With serve --broker: the stream is full or JetStream did not acknowledge "
    "in time; nothing of the request was quarantined; retry after Retry-After seconds "
    "(events that got in are de-duplicated by their ids)",
    "headers": {
        "Retry-After": {
            "description": "Seconds to wait before retrying",
            "schema": {"type": "integer", "minimum": 0},
        }
    },
    "content": ERRORS_CONTENT,
}


def _problem(status: int, field: str, value: Any, why: str) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"errors": [{"field": field, "value": value, "why": why}]},
    )


def _trends(trends: dict[str, Trend], now: datetime, config: TrendConfig) -> dict[str, Any]:
    """Each dimension with evidence: level now, slope, direction, the latest observations."""
    return {
        dim: {
            "level": round(t.level(now, dim, config), 4),
            "slope": t.slope(now, dim, config),
            "direction": t.direction(now, dim, config),
            "observations": t.n,
            "last": [{"at": at.isoformat(), "strength": v} for at, v in t.last],
        }
        for dim, t in trends.items()
    }


def _account_summary(
    account: AccountState, now: datetime, config: TrendConfig = DEFAULT_TREND
) -> dict[str, Any]:
    return {
        "trend": {d: round(v, 4) for d, v in account.levels(now, config).items()},
        "members_seen": account.members,
        "at_risk": [m.model_dump(mode="json") for m in account.at_risk],
        "api_error_rate": round(account.error_rate(now), 4),
        "open_tickets": account.open_tickets,
    }


def _policy_summary(policy: PolicyEngine) -> dict[str, Any]:
    p = policy.policy
    return {
        "version": policy.version,
        "name": p.version,
        "content_hash": p.content_hash,
        "source": p.source,
        "rules": len(p.rules),
        "hard_triggers": sum(r.hard for r in p.rules),
        "thresholds": p.thresholds,
    }


def create_app(
    engine: Engine,
    sources: Mapping[str, SourceSpec] | None = None,
    publisher: Publisher | None = None,
) -> FastAPI:
    """The API over ``engine``; ``sources``: senders that push signed events in (the
    channels file's ``sources:``). ``publisher``: the scale-out shape (serve --broker):
    valid events are published to JetStream for the workers instead of processed here."""
    store = engine.store
    sources = dict(sources or {})

    def signed_source(name: str) -> None:
        """Declares the sources' credential: the sender's signature (checked over the raw
        body in the handler), not an API key."""
        if name not in sources:
            known = ", ".join(sorted(sources)) or "none; add them under sources: in --channels"
            raise HTTPException(404, f"no source '{name}' is configured (configured: {known})")

    app = FastAPI(
        title="tactful",
        version=__version__,
        description="Sentiment-aware orchestration: events in, explained decisions out.",
    )
    # Who may call what (api/auth.py): keys from the store, checked per endpoint's scope.
    app.state.keyring = Keyring(store.list_keys)
    app.state.sessions = Sessions()
    app.state.clock = engine.clock

    @app.exception_handler(HTTPException)
    async def problem(request: Request, exc: HTTPException) -> JSONResponse:
        """A 422 raised by a handler has the shape the spec documents for 422 (FastAPI's
        validation errors: a list), so clients parse one shape; others keep theirs."""
        if exc.status_code == 422 and isinstance(exc.detail, str):
            name = exc.detail.split(":", 1)[0] if ":" in exc.detail else "request"
            detail: Any = [{"loc": [name], "msg": exc.detail, "type": "value_error"}]
        else:
            detail = exc.detail
        return JSONResponse({"detail": detail}, exc.status_code, headers=exc.headers)

    app.include_router(acting_routes(engine))
    app.include_router(learning_routes(engine))
    app.include_router(reviews_routes(engine))
    app.include_router(segment_routes(engine, publisher))
    app.include_router(helpdesk_routes(engine, publisher))
    app.include_router(dashboard_routes(engine))
    app.router.routes.append(static_mount())
    engine.metrics.watch_outcomes(
        lambda: summarise(store, engine.clock() - timedelta(hours=24), engine.clock())
    )
    engine.metrics.watch_drift(lambda: drift_now(engine, timedelta(hours=24), timedelta(days=7)))

    def quarantine_body(raw: str, why: str, field: str = "body") -> None:
        store.quarantine(
            [
                QuarantineItem(
                    engine.clock(), "api", [{"field": field, "value": None, "why": why}], raw
                )
            ]
        )

    def limits(request: Request) -> tuple[int, int]:
        """(body bytes, events) a request may carry: its key's limits, or the defaults."""
        key = getattr(request.state, "api_key", None)
        if key is None:
            return MAX_BODY_BYTES, MAX_BATCH
        return min(key.max_body, MAX_BODY_BYTES), min(key.max_batch, MAX_BATCH)

    async def read_body(request: Request) -> bytes | JSONResponse:
        """The raw body, or the 413 (what was read of it quarantined)."""
        max_body, _ = limits(request)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            quarantine_body(f"[{declared} bytes not read]", "body over the size limit")
            return _problem(413, "body", int(declared), f"larger than {max_body} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                head = b"".join([*chunks, chunk])[:65_536].decode("utf-8", "replace")
                quarantine_body(head, "body over the size limit (first 64 KiB kept)")
                return _problem(413, "body", size, f"larger than {max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def parse_json(body: bytes) -> tuple[Any, bytes] | JSONResponse:
        try:
            return json.loads(body), body
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raw = body.decode("utf-8", "replace")
            quarantine_body(raw, f"not valid JSON: {exc}")
            return _problem(400, "body", raw[:200], f"not valid JSON: {exc}")

    async def read_json(request: Request) -> tuple[Any, bytes] | JSONResponse:
        """The request's JSON and raw body, or the error response (the body quarantined)."""
        body = await read_body(request)
        return body if isinstance(body, JSONResponse) else parse_json(body)

    @app.post(
        "/v1/events",
        dependencies=[scope("ingest")],
        status_code=202,
        response_model=IngestResponse,
        responses={
            400: {"description": "Body is not JSON"},
            413: {"description": "Body or batch too large"},
            422: {"description": "Every event in the request was rejected"},
            503: _BROKER_BUSY,
        },
        summary="Ingest one event, a JSON array of up to 1,000, or a Segment {batch: [...]}",
    )
    async def post_events(request: Request) -> Any:
        read = await read_json(request)
        if isinstance(read, JSONResponse):
            return read
        return await ingest_body(request, *read, "api")

    async def ingest_body(request: Request, data: Any, body: bytes, source: str) -> Any:
        if isinstance(data, dict) and isinstance(data.get("batch"), list):
            items: list[Any] = data["batch"]
        elif isinstance(data, list):
            items = data
        else:
            items = [data]
        _, max_batch = limits(request)
        if len(items) > max_batch:
            quarantine_body(body.decode("utf-8", "replace"), f"batch of {len(items)} events")
            return _problem(
                413, "batch", len(items), f"at most {max_batch} events per request; split it"
            )
        if not items:
            return _problem(422, "batch", [], "empty; send at least one event")
        if publisher is not None:  # scale-out: queued for the workers, acked by JetStream
            from tactful.broker.nats import BrokerBusy

            try:
                results = await run_in_threadpool(
                    partial(
                        publisher.ingest, items, source, check_surrogates=may_hold_surrogates(body)
                    )
                )
            except BrokerBusy as exc:
                busy = _problem(503, "broker", publisher.config.stream, f"{exc}; retry")
                busy.headers["Retry-After"] = str(exc.retry_after)
                return busy
        else:
            results = await run_in_threadpool(
                partial(engine.ingest, items, source, check_surrogates=may_hold_surrogates(body))
            )
        payload = IngestResponse(
            accepted=sum(r.status == "accepted" for r in results),
            duplicates=sum(r.status == "duplicate" for r in results),
            rejected=sum(r.status == "rejected" for r in results),
            results=[EventResult(**r.as_dict()) for r in results],
        )
        status = 422 if payload.rejected == len(results) else 202
        return JSONResponse(status_code=status, content=payload.model_dump(mode="json"))

    @app.post(
        "/v1/sources/{name}",
        dependencies=[Depends(signed_source)],
        status_code=202,
        response_model=IngestResponse,
        responses={
            400: {"description": "Body is not JSON"},
            401: {"description": "Not signed, or signed with another secret"},
            404: {"description": "No source of that name is configured"},
            413: {"description": "Body or batch too large"},
            422: {"description": "Every event in the request was rejected"},
            503: _BROKER_BUSY,
        },
        summary="Ingest events a configured sender pushed and signed (Segment's webhooks ...)",
    )
    async def post_source(request: Request, name: str) -> Any:
        """The sender's signature over the raw body is the credential (see the channels
        file's ``sources:``); the body is then read like ``/v1/events`` reads it."""
        body = await read_body(request)
        if isinstance(body, JSONResponse):
            return body
        spec = sources[name]
        try:  # before the body is parsed or kept: an unsigned body is not ours to keep
            check_signature(
                spec.type, spec.secrets, body, request.headers, int(spec.tolerance.total_seconds())
            )
        except SignatureError as exc:
            engine.metrics.refused_signatures.labels(name).inc()
            return JSONResponse({"detail": str(exc)}, 401)
        read = parse_json(body)
        if isinstance(read, JSONResponse):
            return read
        return await ingest_body(request, *read, f"source:{name}")

    @app.post(
        "/v1/decide",
        dependencies=[scope("ingest")],
        responses={
            400: {"description": "Body is not JSON"},
            413: {"description": "Body too large"},
            422: {"description": "The event was rejected (errors name field, value, why)"},
            501: {
                "description": "With serve --broker: not available (deciding in the moment "
                "needs the customer's owner); POST /v1/events instead",
                "content": ERRORS_CONTENT,
            },
        },
        summary="Ingest one event and answer with the decision and the next move, in the moment",
    )
    async def post_decide(request: Request) -> Any:
        """For bots and agents on every turn: the event (a customer message, a bot turn ...)
        is ingested like any other, and the answer carries the decisions with their reasons
        and guidance for the next message: hand off (with a notice to show), the one
        clarifying question, choices, a direct answer, or carry on; and the tone. A retried
        call (same event_id) gets the decisions already made, with no second effect."""
        read = await read_json(request)
        if isinstance(read, JSONResponse):
            return read
        data, body = read
        if isinstance(data, list):
            return _problem(422, "body", f"array of {len(data)}", "one event per call")
        if publisher is not None:  # deciding in the moment needs the customer's owner
            return _problem(
                501, "decide", None, "not available with serve --broker yet; POST /v1/events"
            )
        started = time.perf_counter()
        status, answer = await run_in_threadpool(decide, data, may_hold_surrogates(body))
        if status == 200:
            answer["took_ms"] = round((time.perf_counter() - started) * 1000, 2)
        # Encoded here: the answer is plain JSON already (FastAPI's encoder walks it again)
        return Response(json.dumps(answer), status, media_type="application/json")

    def decide(data: Any, check_surrogates: bool) -> tuple[int, dict[str, Any]]:
        """Ingest and answer, off the event loop: a duplicate's answer reads the store,
        which may wait on another request's commit."""
        (result,) = engine.ingest([data], "api:decide", check_surrogates=check_surrogates)
        if result.status == "rejected":
            return 422, {"errors": result.errors}
        now = engine.clock()
        state: CustomerState | None
        if result.processed is not None:
            decisions = [d.as_dict() for d in result.processed.decisions]
            signals = [s.as_dict() for s in result.processed.signals]
            state = result.processed.state
        else:  # a duplicate: what was decided the first time
            assert result.event_id is not None
            decisions = store.decisions_for_event(result.event_id)
            event = store.get_event(result.event_id)
            signals = event["signals"] if event else []
            state = store.get_state(result.customer_id or "")
        levels = state.levels(now, engine.memory.trend) if state is not None else {}
        return 200, {
            "event_id": result.event_id,
            "status": result.status,
            "late": bool(result.processed and result.processed.late),
            "policy_version": engine.policy_for(result.customer_id or "").version,
            # the control group (policy holdout) is decided for, not acted on: carry on
            "guidance": guidance(
                [d for d in decisions if not d.get("holdout")],
                levels,
                state.topic if state else "other",
            ),
            "decisions": decisions,
            "signals": signals,
            "trend": {d: round(v, 4) for d, v in levels.items()},
        }

    @app.get(
        "/v1/customers/{customer_id}",
        dependencies=[scope("read")],
        summary="A customer's state, trend, holds and decisions",
    )
    def get_customer(customer_id: str) -> dict[str, Any]:
        state = store.get_state(customer_id)
        if state is None:
            raise HTTPException(404, f"no customer '{customer_id}' has been seen")
        now = engine.clock()
        account = store.get_account(state.account_id) if state.account_id else None
        return {
            "customer_id": state.customer_id,
            "account_id": state.account_id,
            "account": state.account.model_dump(mode="json"),
            "account_summary": _account_summary(account, now, engine.memory.trend)
            if account
            else None,
            "trend": {d: round(v, 4) for d, v in state.levels(now, engine.memory.trend).items()},
            "trends": _trends(state.trend, now, engine.memory.trend),
            "active_signals": [asdict(s) for s in reversed(state.active_signals(now))],
            "signal_counts": state.signal_counts,
            "topic": state.topic,
            "first_seen": state.first_seen,
            "last_seen": state.last_seen,
            "events_seen": state.events_seen,
            "late_events": state.late_events,
            "open_tickets": state.open_tickets,
            "unresolved_tickets_30d": state.unresolved_tickets_30d(now),
            "payment_failures_30d": state.payment_failures_30d(now),
            "holds": [{**h.model_dump(mode="json"), "active": h.active(now)} for h in state.holds],
            "open_handoffs": [h.model_dump(mode="json") for h in state.handoffs],
            "recent_decisions": store.list_decisions(customer_id, limit=20, latest=True),
        }

    @app.get(
        "/v1/customers/{customer_id}/export",
        dependencies=[scope("admin")],
        responses={
            200: {
                "description": "The record as JSON, or in plain words with ?format=text",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            404: {"description": "Nothing is known about the customer"},
        },
        summary="Everything tactful knows about a customer (JSON, or ?format=text)",
    )
    def export_customer(customer_id: str, format: Literal["json", "text"] = "json") -> Any:
        record = store.export_customer(customer_id)
        if not any(record.values()):
            raise HTTPException(404, f"nothing is known about customer '{customer_id}'")
        state = store.get_state(customer_id)
        levels = state.levels(engine.clock(), engine.memory.trend) if state else {}
        if format == "text":
            return PlainTextResponse(in_plain_words(customer_id, record, levels))
        return {"customer_id": customer_id, "record": record}

    @app.delete(
        "/v1/customers/{customer_id}",
        dependencies=[scope("admin")],
        summary="Erase a customer from events, state, decisions, outbox, handoffs, quarantine",
    )
    def erase_customer(customer_id: str) -> Any:
        removed = engine.erase(customer_id)
        if not any(removed.values()):
            raise HTTPException(404, f"nothing is known about customer '{customer_id}'")
        return {"customer_id": customer_id, "removed": removed}

    @app.get(
        "/v1/accounts/{account_id}",
        dependencies=[scope("read")],
        summary="An account: context, aggregate trend, members",
    )
    def get_account(
        account_id: str, customers: int = Query(50, ge=0, le=1000, description="members listed")
    ) -> dict[str, Any]:
        account = store.get_account(account_id)
        if account is None:
            raise HTTPException(404, f"no account '{account_id}' has been seen")
        now = engine.clock()
        count, members = store.list_account_customers(account_id, customers)
        return {
            "account_id": account_id,
            "context": account.context.model_dump(mode="json"),
            **_account_summary(account, now, engine.memory.trend),
            "trends": _trends(account.trend, now, engine.memory.trend),
            "signal_counts": account.signal_counts,
            "first_seen": account.first_seen,
            "last_seen": account.last_seen,
            "events_seen": account.events_seen,
            "customers": {"count": count, "recent": members},
        }

    @app.get(
        "/v1/policy",
        dependencies=[scope("read")],
        summary="The policy in force: version, content hash, source",
    )
    def get_policy() -> dict[str, Any]:
        out = _policy_summary(engine.policy)
        if engine.canary is not None:
            out["canary"] = {**_policy_summary(engine.canary), "share": engine.canary_share}
        if engine.shadow is not None:  # decides alongside, never acts
            out["shadow"] = _policy_summary(engine.shadow)
        return out

    @app.post(
        "/v1/policy/reload",
        dependencies=[scope("admin")],
        responses={422: {"description": "The file is invalid; the policy in force is kept"}},
        summary="Reload the policy from its file; an invalid file is refused and the old one kept",
    )
    def reload_policy() -> Any:
        try:
            old = engine.reload_policy()
        except PolicyError as exc:
            source = engine.policy.policy.source
            return JSONResponse(
                status_code=422,
                content={
                    "errors": [{"field": "policy", "value": source, "why": str(exc)}],
                    "kept": engine.policy.version,
                },
            )
        return {**_policy_summary(engine.policy), "previous": old.version}

    @app.get("/v1/decisions", dependencies=[scope("read")], summary="The decision audit log")
    def get_decisions(
        customer_id: str | None = None,
        since: datetime | None = Query(None, description="ISO 8601 with timezone"),
        limit: int = Query(100, ge=1, le=1000),
        policy_version: str | None = Query(
            None, description="e.g. default-2026.11.7+3f2a9c01be (canary and current differ)"
        ),
        rule_id: str | None = None,
        kind: str | None = Query(None, description="automate, clarify, escalate, hold ..."),
    ) -> dict[str, Any]:
        found = store.list_decisions(
            customer_id,
            aware("since", since),
            limit,
            policy_version=policy_version,
            rule_id=rule_id,
            kind=kind,
        )
        return {"decisions": found}

    @app.get(
        "/v1/decisions/{decision_id:path}",
        dependencies=[scope("read")],
        summary="One decision explained: factors, evidence, matched and lost rules, its event",
    )
    def get_decision(decision_id: str) -> dict[str, Any]:
        d = store.get_decision(decision_id)
        if d is None:
            raise HTTPException(404, f"no decision '{decision_id}'")
        others = store.decisions_for_event(d["event_id"])
        return {
            **d,
            "event": store.get_event(d["event_id"]),
            "also_decided": [
                {"decision_id": o["decision_id"], "kind": o["kind"], "rule_id": o["rule_id"]}
                for o in others
                if o["decision_id"] != decision_id
            ],
        }

    @app.get(
        "/v1/outcomes",
        dependencies=[scope("read")],
        summary="What followed decisions: ratings, solved tickets, handoffs",
    )
    def get_outcomes(
        customer_id: str | None = None,
        since: datetime | None = Query(None, description="ISO 8601 with timezone"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        return {"outcomes": store.list_outcomes(customer_id, aware("since", since), limit)}

    @app.get(
        "/v1/quarantine",
        dependencies=[scope("read")],
        summary="Rejected events with the reason, newest first",
    )
    def get_quarantine(
        limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=10**9)
    ) -> dict[str, Any]:
        return {"quarantine": store.list_quarantine(limit, offset)}

    @app.get("/healthz", summary="Liveness and the store's counts")
    def healthz() -> dict[str, Any]:
        stats = store.stats()
        return {
            "status": "ok",
            "version": __version__,
            "policy_version": engine.policy.version,
            "time": datetime.now(UTC).isoformat(),
            "events": stats.events,
            "outbox_pending": stats.outbox_pending,
            "incident": engine.incident().status(engine.clock()),
        }

    @app.get(
        "/v1/incident",
        dependencies=[scope("read")],
        summary="Incident mode: on or off, since when, by whom, why",
    )
    def get_incident() -> dict[str, Any]:
        status = engine.incident().status(engine.clock())
        has_playbook = engine.policy.policy.incident is not None
        return {**status, "playbook": has_playbook, "history": store.setting_history("incident")}

    @app.put(
        "/v1/incident",
        dependencies=[scope("act")],
        summary="Switch incident mode on (the policy's crisis playbook) or off",
    )
    def put_incident(switch: IncidentSwitch) -> dict[str, Any]:
        incident = engine.set_incident(switch.on, switch.by, switch.reason)
        out = incident.status(engine.clock())
        if switch.on and engine.policy.policy.incident is None:
            out["warning"] = (
                "this policy has no incident: playbook; the ordinary rules stay in force"
            )
        return out

    @app.get(
        "/metrics",
        dependencies=[scope("read")],
        response_class=PlainTextResponse,
        summary="Prometheus metrics",
    )
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(
            engine.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return app
