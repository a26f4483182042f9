"""The dashboard: where support leads and agents look. Served by ``tactful serve`` at ``/``.

Server-rendered Jinja2 pages with htmx for the queue's buttons and Chart.js for charts,
both shipped in ``static/`` (nothing is fetched from a CDN). Three views:

- ``/``: the lead's overview: outcome metrics over a range, decisions per day, handoffs by
  queue, holds, incident mode, drift flags, each rule's record;
- ``/customers/{id}``: a customer's timeline (events, signals, decisions and why), the
  trend per dimension as a chart, and the latest handoff package as the agent sees it;
- ``/queue``: open handoffs with their summaries; accept, resolve or reject in place.

Pages need a key with the ``read`` scope (buttons: ``act``): presented by the browser
(HTTP Basic) or given once at ``/login``, which sets a signed session cookie
(api/auth.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.routing import Mount

from tactful.actions.lifecycle import HandoffStatus, LifecycleError
from tactful.api.acting import apply_handoff
from tactful.api.auth import SESSION_COOKIE, Keyring, Sessions, scope
from tactful.api.reviews import apply_verdict
from tactful.learn.summary import Options, summarise
from tactful.runtime.engine import Engine
from tactful.signals import DIMENSIONS
from tactful.state.customer import HANDOFF_TTL, MemoryConfig
from tactful.state.trend import EMPTY_TREND, Trend

__all__ = ["dashboard_routes", "static_mount", "trend_series"]

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


def static_mount() -> Mount:
    return Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static")


def trend_series(
    events: Sequence[Mapping[str, Any]], memory: MemoryConfig, now: datetime
) -> dict[str, list[dict[str, Any]]]:
    """Each dimension's level after every event that moved it, and now: the stored
    signals replayed through the same trend arithmetic as ``remember``."""
    trends: dict[str, Trend] = {}
    points: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e.get("late"):
            continue
        at = datetime.fromisoformat(e["timestamp"])
        moved = set()
        for s in e["signals"]:
            weight = memory.weights.get(s["name"], 1.0)
            when = datetime.fromisoformat(s["at"]) if s.get("at") else at  # see Signal.at
            for dim, strength in s.get("dimensions", {}).items():
                if dim in DIMENSIONS and weight * strength > 0:
                    prior = trends.get(dim, EMPTY_TREND)
                    trends[dim] = prior.add(weight * strength, when, dim, memory.trend)
                    moved.add(dim)
        for dim in moved:
            level = trends[dim].level(at, dim, memory.trend)
            points[dim].append({"x": at.isoformat(), "y": round(level, 4)})
    for dim, t in trends.items():
        points[dim].append({"x": now.isoformat(), "y": round(t.level(now, dim, memory.trend), 4)})
    return dict(points)


def _per_day(decisions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    days: dict[str, Counter[str]] = defaultdict(Counter)
    for d in decisions:
        days[d["at"][:10]][d["kind"]] += 1
    labels = sorted(days)
    kinds = sorted({k for c in days.values() for k in c})
    return {
        "labels": labels,
        "datasets": [{"label": k, "data": [days[day][k] for day in labels]} for k in kinds],
    }


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


templates.env.filters["pct"] = _pct
templates.env.filters["duration"] = _seconds


def dashboard_routes(engine: Engine) -> APIRouter:
    store = engine.store
    router = APIRouter(include_in_schema=False)

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        signed_in = SESSION_COOKIE in request.cookies
        return templates.TemplateResponse(
            request, name, {"now": engine.clock(), "signed_in": signed_in, **context}
        )

    def _next(target: str) -> str:
        """Where to go after signing in: a path on this site, never another site."""
        return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/") -> HTMLResponse:
        return login_page(request, next, "")

    def login_page(request: Request, next: str, error: str, status: int = 200) -> HTMLResponse:
        context = {"now": engine.clock(), "signed_in": False, "next": _next(next), "error": error}
        return templates.TemplateResponse(request, "login.html", context, status_code=status)

    @router.post("/login", response_model=None)
    def login(
        request: Request,
        key: str = Form(..., min_length=1, max_length=512),
        next: str = Form("/", max_length=2_000),
    ) -> HTMLResponse | RedirectResponse:
        keyring: Keyring = request.app.state.keyring
        try:
            found = keyring.check(key.strip(), "read", engine.clock())
        except HTTPException as exc:
            return login_page(request, next, str(exc.detail), exc.status_code)
        response = RedirectResponse(_next(next), status_code=303)
        if found is not None:  # no keys at all: nothing to sign in with, the pages are open
            sessions: Sessions = request.app.state.sessions
            response.set_cookie(
                SESSION_COOKIE,
                sessions.issue(found.key_id),
                max_age=int(sessions.max_age.total_seconds()),
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        return response

    @router.post("/logout")
    def logout() -> RedirectResponse:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
        return response

    @router.get("/", dependencies=[scope("read", session=True)], response_class=HTMLResponse)
    def overview(request: Request, days: int = Query(7, ge=1, le=365)) -> HTMLResponse:
        now = engine.clock()
        since = now - timedelta(days=days)
        summary = summarise(store, since, now, Options(trend=engine.memory.trend))
        decisions = store.list_decisions(since=since, limit=100_000)
        drift = _drift(engine)
        return page(
            request,
            "overview.html",
            days=days,
            s=summary,
            per_day=_per_day(decisions),
            incident=engine.incident().status(now),
            drift=drift,
            recent=[d for d in reversed(decisions) if d["kind"] == "escalate"][:10],
        )

    @router.get(
        "/customers/{customer_id}",
        dependencies=[scope("read", session=True)],
        response_class=HTMLResponse,
    )
    def customer(request: Request, customer_id: str) -> HTMLResponse:
        state = store.get_state(customer_id)
        if state is None:
            raise HTTPException(404, f"no customer '{customer_id}' has been seen")
        now = engine.clock()
        events = store.list_events(customer_id, limit=500)
        decisions = store.list_decisions(customer_id, limit=500)
        by_event: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for d in decisions:
            by_event[d["event_id"]].append(d)
        handoffs = store.list_handoffs(customer_id=customer_id, limit=1)
        return page(
            request,
            "customer.html",
            state=state,
            levels=state.levels(now, engine.memory.trend),
            now_level=state.conversation.level(now),
            now_reading=state.conversation.explain(),
            series=trend_series(events, engine.memory, now),
            events=events,
            by_event=by_event,
            others=[d for d in decisions if d["event_id"] not in {e["event_id"] for e in events}],
            handoff=handoffs[0] if handoffs else None,
            holds=store.list_holds(customer_id, limit=20),
        )

    @router.get("/queue", dependencies=[scope("read", session=True)], response_class=HTMLResponse)
    def queue(request: Request, queue: str | None = None) -> HTMLResponse:
        rows = [
            h
            for status in ("open", "accepted")
            for h in store.list_handoffs(queue, status, limit=200)
        ]
        now = engine.clock()
        live = [h for h in rows if now - datetime.fromisoformat(h["opened_at"]) < HANDOFF_TTL]
        queues = sorted({h["queue"] for h in live})
        return page(request, "queue.html", handoffs=live, queue=queue, queues=queues)

    @router.get("/reviews", dependencies=[scope("read", session=True)], response_class=HTMLResponse)
    def review_queue(request: Request) -> HTMLResponse:
        return page(request, "reviews.html", reviews=store.list_reviews("pending", limit=200))

    @router.post(
        "/ui/reviews/{decision_id:path}/{verb}",
        dependencies=[scope("act", session=True)],
        response_class=HTMLResponse,
    )
    def review(
        request: Request,
        decision_id: str,
        verb: str,
        by: str = Form(..., min_length=1, max_length=128),
        reason: str = Form("", max_length=2_000),
    ) -> HTMLResponse:
        if verb not in ("approve", "reject"):
            raise HTTPException(404, f"no action '{verb}' (approve or reject)")
        waiting = store.get_review(decision_id)
        if waiting is None:
            raise HTTPException(404, f"no decision '{decision_id}' is in the review queue")
        error = ""
        if waiting["status"] != "pending":
            error = f"already {waiting['status']} by {waiting['decided_by']}"
        else:
            try:
                apply_verdict(engine, waiting, verb, by, reason, {})
            except LifecycleError as exc:
                error = str(exc)
        row = store.get_review(decision_id) or waiting
        return page(request, "_review_row.html", r=row, error=error)

    @router.post(
        "/ui/handoffs/{handoff_id:path}/{verb}",
        dependencies=[scope("act", session=True)],
        response_class=HTMLResponse,
    )
    def act(
        request: Request,
        handoff_id: str,
        verb: str,
        by: str = Form(..., min_length=1, max_length=128),
        reason: str = Form("", max_length=2_000),
    ) -> HTMLResponse:
        statuses: dict[str, HandoffStatus] = {
            "accept": "accepted",
            "resolve": "resolved",
            "reject": "rejected",
        }
        if verb not in statuses:
            raise HTTPException(404, f"no action '{verb}' (accept, resolve or reject)")
        found = store.get_handoff(handoff_id)
        if found is None:
            raise HTTPException(404, f"no handoff '{handoff_id}'")
        error = ""
        try:
            apply_handoff(engine, found["customer_id"], handoff_id, statuses[verb], by, reason)
        except LifecycleError as exc:
            error = str(exc)
        row = store.get_handoff(handoff_id) or found
        return page(request, "_handoff_row.html", h=row, error=error)

    return router


def _drift(engine: Engine) -> dict[str, Any]:
    from tactful.api.learning import drift_now

    return drift_now(engine, timedelta(hours=24), timedelta(days=7))
