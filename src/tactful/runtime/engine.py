"""The imperative shell around the pure core: validate, dedupe, load, process, commit.

``Engine.ingest`` takes a batch of raw events (from HTTP, a file or a broker) and, in
order:

1. validates each one; a bad one is quarantined with its reason, never dropped;
2. drops repeats of an ``event_id`` already seen (in this batch or before): acknowledged
   as duplicates, no second effect;
3. loads the customers' states (a bounded cache in front of the store);
4. runs :func:`tactful.runtime.pipeline.process` on each event, in order;
5. commits every event's state, decisions, outbox actions and processed mark in one
   transaction; only then is the batch acknowledged.

One batch at a time per engine (a lock): per-customer order and the read-process-write
cycle stay consistent.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import threading
import time
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, runtime_checkable

from tactful.actions.lifecycle import Change, LifecycleError, due_releases
from tactful.actions.redact import redact
from tactful.detect import BehaviorConfig, TextScores, reply_text, scored_text
from tactful.events import Event, EventError, may_hold_surrogates, parse_event
from tactful.learn.metrics import Metrics
from tactful.policy.engine import PolicyEngine
from tactful.policy.incident import Incident
from tactful.policy.model import BUILTIN, TextField, load_policy
from tactful.runtime import logs, tracing
from tactful.runtime.pipeline import Processed, process
from tactful.state.account import AccountState
from tactful.state.conversation import DEFAULT_CONVERSATION, ConversationModel
from tactful.state.customer import CustomerState, MemoryConfig, too_late, with_message
from tactful.state.store.base import QuarantineItem, Store

__all__ = ["Engine", "IngestResult"]

Status = Literal["accepted", "duplicate", "rejected"]


class TextBatchScorer(Protocol):
    version: str

    def score_batch(
        self, texts: Sequence[str], histories: Sequence[Sequence[str]] | None = None
    ) -> list[TextScores]: ...


@runtime_checkable
class ReplyScorer(Protocol):
    """A text scorer that also reads bot and agent replies (the learned one): how likely
    each leaves the customer dissatisfied, and the weights that turn that and the
    customer's messages into the conversation's frustration now."""

    conversation: ConversationModel

    def score_replies(self, texts: Sequence[str]) -> list[float]: ...


@runtime_checkable
class ExchangeScorer(Protocol):
    """A text scorer that reads a customer message together with the reply it answers
    (the learned one, when its heads have an exchange head)."""

    @property
    def reads_exchanges(self) -> bool: ...

    def score_answering(
        self,
        texts: Sequence[str],
        histories: Sequence[Sequence[str]],
        replies: Sequence[str | None],
    ) -> tuple[list[TextScores], list[float | None]]: ...


@dataclass(slots=True)
class IngestResult:
    index: int
    status: Status
    event_id: str | None = None
    customer_id: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    processed: Processed | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.event_id is not None:
            out["event_id"] = self.event_id
        if self.errors:
            out["errors"] = self.errors
        if self.processed is not None:
            if self.processed.late:
                out["late"] = True
            out["signals"] = [s.name for s in self.processed.signals]
            out["decisions"] = [
                {"kind": d.kind, "rule_id": d.rule_id, "params": d.params}
                for d in self.processed.decisions
            ]
        return out


def _raw_text(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    try:
        return json.dumps(raw, default=str)
    except (TypeError, ValueError):
        return repr(raw)


def _peek(raw: Any, *keys: str) -> str | None:
    """The first of ``keys`` present as a string in a raw payload (for quarantine rows)."""
    if not isinstance(raw, dict):
        return None
    for key in keys:
        value = raw.get(key)
        if isinstance(value, str) and value:
            # as text SQLite can store, even if the id holds a lone surrogate
            return value[:128].encode("utf-8", "replace").decode("utf-8")
    return None


def canary_bucket(customer_id: str) -> float:
    """A customer's stable place in [0, 1): which policy a canary split gives them."""
    digest = hashlib.blake2b(customer_id.encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


HOUR = timedelta(hours=1)
INCIDENT_KEY = "incident"
INCIDENT_REFRESH_S = 2.0

_ID_KEYS = ("event_id", "messageId")  # native, Segment
_CUSTOMER_KEYS = ("customer_id", "userId", "anonymousId")


def _redacted(event: Event, fields: Mapping[TextField, Collection[str]]) -> Event:
    """The event with its free-text ``fields`` redacted, each of its kinds (see
    actions/redact.py): nothing after this point (scores, state, store, channels) sees
    what was removed."""
    changed: dict[str, str] = {}
    for name, kinds in fields.items():
        value = getattr(event, name, None)
        if isinstance(value, str) and value and kinds:
            clean = redact(value, kinds)
            if clean != value:
                changed[name] = clean
    return event.model_copy(update=changed) if changed else event


# Customer states kept in memory: about 20 KB each with full windows (6.5 KB as JSON), so
# 20,000 is ~400 MB at most; the rest are read from the store when they come back.
DEFAULT_CACHE = 20_000

# A group commit takes waiting calls until it holds this many events (at least one call).
GROUP_COMMIT_MAX = 5_000


@dataclass(slots=True)
class _Request:
    """One ingest call waiting for (or done by) a group commit."""

    raws: Sequence[Any]
    source: str
    check_surrogates: bool
    done: bool = False
    results: list[IngestResult] = field(default_factory=list)
    error: BaseException | None = None


class Engine:
    def __init__(
        self,
        store: Store,
        policy: PolicyEngine,
        metrics: Metrics | None = None,
        behavior: BehaviorConfig | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        cache_size: int = DEFAULT_CACHE,
        text_scorer: TextBatchScorer | None = None,
        memory: MemoryConfig | None = None,
        lateness: timedelta | None = None,
        canary: PolicyEngine | None = None,
        canary_share: float = 0.0,
        shadow: PolicyEngine | None = None,
    ) -> None:
        """``behavior`` and ``memory``: the detectors' parameters and how signals become
        trends; by default the policy file's ``detectors:`` and ``memory:`` sections (and
        they follow it when the policy is reloaded). ``lateness`` overrides the policy's."""
        self.store = store
        self._behavior_fixed = behavior
        self._memory_fixed = memory
        self._lateness = lateness
        self.policy = policy
        self.behavior, self.memory = self._configs(policy)
        if not 0.0 <= canary_share <= 1.0:
            raise ValueError(f"canary_share={canary_share}: must be between 0 and 1")
        # A candidate policy deciding for a stable share of customers (by customer id);
        # its decisions record its version. Detectors and memory follow the main policy.
        self.canary = canary
        self.canary_share = canary_share if canary is not None else 0.0
        # A candidate deciding alongside live traffic on the same states: its decisions
        # are recorded for `tactful shadow --live`, never acted on.
        self.shadow = shadow
        self._incident = Incident()
        self._incident_checked = -float("inf")
        # Handoff times per capped queue over the last hour (event time), for the policy's
        # queue_limits; seeded from the audit log on the first batch.
        self._handoffs: dict[str, list[datetime]] | None = None
        self.text_scorer = text_scorer  # None: the lexical tier scores text inside detect
        self.metrics = metrics or Metrics()
        self.metrics.watch_store(store.stats)
        self.clock = clock
        self._cache: OrderedDict[str, CustomerState] = OrderedDict()
        # when this engine last committed each cached customer (its clock's `now`, which
        # the store records): another process's write shows as a different time
        self._written: dict[str, datetime] = {}
        # Set where other processes apply this store's events (the API of `serve
        # --broker`): a person's change then holds the customer's lock the workers take
        # and reads the state from the store, never from this process's cache.
        self.customer_lock: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None
        self._accounts: OrderedDict[str, AccountState] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        # called after a commit that wrote actions (the dispatcher's wake-up)
        self.on_actions: list[Callable[[], None]] = []
        # calls waiting for the lock, committed together by whichever gets it (group commit)
        self._queue: deque[_Request] = deque()
        self._queue_lock = threading.Lock()

    def _configs(self, policy: PolicyEngine) -> tuple[BehaviorConfig, MemoryConfig]:
        behavior = self._behavior_fixed or policy.policy.detectors.config()
        memory = self._memory_fixed or policy.policy.memory.config()
        if self._lateness is not None:
            memory = replace(memory, lateness=self._lateness)
        return behavior, memory

    def swap_policy(self, policy: PolicyEngine) -> PolicyEngine:
        """Use ``policy`` from the next batch on (batches in flight finish on the old one);
        returns the old one. The caller validated it: loading is what refuses bad files."""
        configs = self._configs(policy)
        with self._lock:
            old, self.policy = self.policy, policy
            self.behavior, self.memory = configs
        return old

    def _seed_handoffs(self, at: datetime) -> None:
        """On the first batch that any policy in use caps queues: the last hour's handoffs
        from the audit log."""
        capped = self.policy.policy.queue_limits or (
            self.canary is not None and self.canary.policy.queue_limits
        )
        if self._handoffs is not None or not capped:
            return
        self._handoffs = defaultdict(list)
        for d in self.store.list_decisions(since=at - HOUR, limit=1_000_000):
            if d["kind"] == "escalate":
                when = datetime.fromisoformat(d["at"])
                bisect.insort(self._handoffs[d["params"]["queue"]], when)

    def _queue_load(
        self, policy: PolicyEngine, at: datetime, pending: list[tuple[str, datetime]]
    ) -> dict[str, int] | None:
        """Handoffs per capped queue in the hour up to ``at`` (event time, so late events
        are counted where they belong): committed ones and this batch's so far."""
        limits = policy.policy.queue_limits
        if not limits or self._handoffs is None:
            return None
        load = {}
        for queue in limits:
            times = self._handoffs[queue]
            lo = bisect.bisect_right(times, at - HOUR)
            hi = bisect.bisect_right(times, at)
            load[queue] = hi - lo + sum(1 for q, t in pending if q == queue and at - HOUR < t <= at)
        return load

    def _count_handoffs(self, committed: list[tuple[str, datetime]]) -> None:
        """After the batch is committed (a failed commit counts nothing): its handoffs;
        entries far older than the newest are dropped."""
        if self._handoffs is None or not committed:
            return
        for queue, at in committed:
            bisect.insort(self._handoffs[queue], at)
        newest = max(at for _, at in committed)
        for times in self._handoffs.values():
            cut = bisect.bisect_left(times, newest - 2 * HOUR)
            if cut:
                del times[:cut]

    def policy_for(self, customer_id: str) -> PolicyEngine:
        """The canary for its share of customers (the same customers, always), else the
        policy in force."""
        if self.canary is not None and canary_bucket(customer_id) < self.canary_share:
            return self.canary
        return self.policy

    def incident(self) -> Incident:
        """Incident mode as the store has it, re-read at most every few seconds (another
        process, e.g. `tactful incident on`, may have switched it)."""
        checked = time.monotonic()
        if checked - self._incident_checked > INCIDENT_REFRESH_S:
            stored = self.store.get_setting(INCIDENT_KEY)
            self._incident = Incident.from_json(stored) if stored else Incident()
            self._incident_checked = checked
        return self._incident

    def set_incident(self, on: bool, by: str, reason: str) -> Incident:
        """Switch incident mode; recorded with who and why (the store keeps every change)."""
        incident = Incident(on=on, since=self.clock(), by=by, reason=reason)
        self.store.set_setting(INCIDENT_KEY, incident.as_json(), self.clock())
        self._incident, self._incident_checked = incident, time.monotonic()
        return incident

    def reload_policy(self) -> PolicyEngine:
        """Load the policy in force again from its file and use it; returns the old one.
        Raises :class:`PolicyError` (and keeps the policy in force) if the file is invalid."""
        source = self.policy.policy.source
        fresh = PolicyEngine(load_policy(None if source in ("", BUILTIN) else source))
        return self.swap_policy(fresh)

    def ingest(
        self, raws: Sequence[Any], source: str = "api", *, check_surrogates: bool = True
    ) -> list[IngestResult]:
        """``check_surrogates=False``: the caller saw the JSON text these dicts came from and
        it had no escape that can produce a lone surrogate (raw text is checked here).

        Group commit: calls that arrive while another is being processed wait together,
        and the next of them to get the lock processes all of them as one batch, in one
        transaction (one fsync instead of one each). Each still gets only its own results,
        and none returns before its events are committed."""
        mine = _Request(raws, source, check_surrogates)
        with self._queue_lock:
            self._queue.append(mine)
        with self._lock:
            if not mine.done:
                with self._queue_lock:
                    group: list[_Request] = []
                    size = 0
                    while self._queue and (not group or size < GROUP_COMMIT_MAX):
                        size += len(self._queue[0].raws)
                        group.append(self._queue.popleft())
                self._ingest_group(group)
        if mine.error is not None:
            raise mine.error
        return mine.results

    def _ingest_group(self, group: list[_Request]) -> None:
        started = time.perf_counter()
        raws = [raw for r in group for raw in r.raws]
        sources = [r.source for r in group for _ in r.raws]
        scans = [r.check_surrogates for r in group for _ in r.raws]
        try:
            with tracing.span("tactful.ingest", {"tactful.batch.size": len(raws)}) as s:
                s.set_attribute("tactful.batch.source", sorted({r.source for r in group}))
                results = self._ingest(raws, sources, scans)
        except Exception as exc:  # every call in the group failed: none was committed
            for r in group:
                r.error, r.done = exc, True
            raise
        finally:
            self.metrics.batch_seconds.observe(time.perf_counter() - started)
        offset = 0
        for r in group:
            r.results = results[offset : offset + len(r.raws)]
            for res in r.results:
                res.index -= offset
            offset += len(r.raws)
            r.done = True

    def validate(
        self,
        raws: Sequence[Any],
        sources: Sequence[str],
        check_surrogates: Sequence[bool],
        now: datetime,
    ) -> tuple[list[IngestResult], list[tuple[int, Event]], list[QuarantineItem]]:
        """The boundary, for this engine and for the broker's publisher alike: each raw
        event parsed and redacted (accepted, with its index), or rejected with its reasons
        and a quarantine item (raw text redacted). Nothing is stored here."""
        results: list[IngestResult] = []
        events: list[tuple[int, Event]] = []
        bad: list[QuarantineItem] = []
        for i, raw in enumerate(raws):
            scan = check_surrogates[i]
            if isinstance(raw, str | bytes):
                scan = may_hold_surrogates(raw)
                # Decode here so a rejected event's id can be reported; parse_event
                # reports bad JSON.
                with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
                    raw = json.loads(raw)
            try:
                event = parse_event(raw, now=now, check_surrogates=scan)
            except EventError as exc:
                errors = [p.as_dict() for p in exc.problems]
                results.append(IngestResult(i, "rejected", _peek(raw, *_ID_KEYS), None, errors))
                bad.append(
                    QuarantineItem(
                        now,
                        sources[i],
                        errors,
                        redact(_raw_text(raw)),
                        _peek(raw, *_ID_KEYS),
                        _peek(raw, *_CUSTOMER_KEYS),
                    )
                )
                self.metrics.events.labels(str(_peek(raw, "type")), "rejected").inc()
                continue
            event = _redacted(event, self.policy.policy.privacy.redact)
            events.append((i, event))
            results.append(IngestResult(i, "accepted", event.event_id, event.customer_id))
        return results, events, bad

    def _ingest(
        self, raws: Sequence[Any], sources: Sequence[str], check_surrogates: Sequence[bool]
    ) -> list[IngestResult]:
        now = self.clock()
        results, events, bad = self.validate(raws, sources, check_surrogates, now)

        # Idempotency: the first occurrence of an event id wins, in this batch and ever.
        seen = self.store.seen_event_ids([e.event_id for _, e in events])
        fresh: list[tuple[int, Event]] = []
        for i, event in events:
            if event.event_id in seen:
                results[i].status = "duplicate"
                self.metrics.events.labels(event.type, "duplicate").inc()
                continue
            seen.add(event.event_id)
            fresh.append((i, event))

        incident = self.incident()
        if fresh:
            self._seed_handoffs(fresh[0][1].timestamp)
        handoffs: list[tuple[str, datetime]] = []
        working = self._load([e for _, e in fresh])
        accounts = self._load_accounts([e for _, e in fresh], working)
        with tracing.span("tactful.detect", {"tactful.batch.events": len(fresh)}):
            texts, exchanges = self._score_texts([e for _, e in fresh], working)
            replies = self._score_replies([e for _, e in fresh])
        reading = (
            self.text_scorer.conversation
            if isinstance(self.text_scorer, ReplyScorer)
            else DEFAULT_CONVERSATION
        )
        batch: list[Processed] = []
        decide = tracing.start("tactful.decide")
        for i, event in fresh:
            state = working[event.customer_id]
            account_id = event.account_id or state.account_id
            policy = self.policy_for(event.customer_id)
            out = process(
                event,
                state,
                policy,
                event.timestamp,
                self.behavior,
                texts.get(event.event_id),
                accounts.get(account_id) if account_id else None,
                self.memory,
                incident,
                self._queue_load(policy, event.timestamp, handoffs),
                self.shadow,
                replies.get(event.event_id),
                reading,
                exchanges.get(event.event_id),
            )
            handoffs.extend(
                (d.params["queue"], d.at) for d in out.decisions if d.kind == "escalate"
            )
            working[event.customer_id] = out.state
            if out.account is not None:
                accounts[out.account.account_id] = out.account
            results[i].processed = out
            batch.append(out)
        tracing.decided(decide, batch)

        # All or nothing, quarantine included; raises before the caches are touched.
        with tracing.span("tactful.commit", {"tactful.batch.quarantined": len(bad)}):
            self.store.commit(batch, now, bad)
        logs.quarantined(bad)
        logs.processed(batch)
        if any(p.actions for p in batch):
            self._actions_committed()
        self._count_handoffs(handoffs)
        for cid, state in working.items():
            self._remember(self._cache, cid, state)
            self._written[cid] = now
        if len(self._written) > 2 * self._cache_size:  # only cached customers matter
            self._written = {c: t for c, t in self._written.items() if c in self._cache}
        for aid, account in accounts.items():
            self._remember(self._accounts, aid, account)
        self._count(batch)
        return results

    def _score_texts(
        self, events: list[Event], states: dict[str, CustomerState]
    ) -> tuple[dict[str, TextScores], dict[str, float]]:
        """Score the batch's customer-written texts in one call to the text scorer, each
        with the customer's earlier messages as they will be when it is processed; and,
        when the scorer reads exchanges, each customer message with the reply it answers
        (the conversation's latest reply as it will be then)."""
        if self.text_scorer is None:
            return {}, {}
        pairs = isinstance(self.text_scorer, ExchangeScorer) and self.text_scorer.reads_exchanges
        histories = {cid: list(s.recent_messages) for cid, s in states.items()}
        latest = {cid: s.last_seen for cid, s in states.items()}
        talks = {cid: s.conversation for cid, s in states.items()}
        # (event id, the text, the earlier messages, the reply it answers)
        items: list[tuple[str, str, tuple[str, ...], str | None]] = []
        lateness = self.memory.lateness
        for event in events:
            cid, at = event.customer_id, event.timestamp
            seen = latest[cid]
            if too_late(seen, at, lateness):
                continue  # too late: not scored, not remembered (as process() will do)
            latest[cid] = max(seen, at) if seen is not None else at
            if pairs and (reply := reply_text(event)) is not None:
                talks[cid] = DEFAULT_CONVERSATION.replied(talks[cid], at, 0.0, reply)
            written = scored_text(event)
            if written is None:
                continue
            history = histories[cid]
            answered = None
            if event.type == "message":  # what remember() will keep
                histories[cid] = with_message(history, written)
                answered = talks[cid].answering(at) if pairs else None
            items.append((event.event_id, written, tuple(history), answered))
        if not items:
            return {}, {}
        texts, earlier = [i[1] for i in items], [i[2] for i in items]
        exchanges: dict[str, float] = {}
        if pairs and any(i[3] is not None for i in items):
            assert isinstance(self.text_scorer, ExchangeScorer)
            scores, read = self.text_scorer.score_answering(texts, earlier, [i[3] for i in items])
            exchanges = {item[0]: p for item, p in zip(items, read, strict=True) if p is not None}
        else:
            scores = self.text_scorer.score_batch(texts, earlier)
        return {item[0]: s for item, s in zip(items, scores, strict=True)}, exchanges

    def _score_replies(self, events: list[Event]) -> dict[str, float]:
        """The batch's bot and agent replies, each read by the scorer's reply head (when
        it has one): how likely it leaves the customer dissatisfied."""
        if not isinstance(self.text_scorer, ReplyScorer):
            return {}
        items = [(e.event_id, t) for e in events if (t := reply_text(e)) is not None]
        if not items:
            return {}
        risks = self.text_scorer.score_replies([t for _, t in items])
        return {event_id: risk for (event_id, _), risk in zip(items, risks, strict=True)}

    def _states(self, customer_ids: Sequence[str]) -> dict[str, CustomerState]:
        """The customers' states from the cache, else the store (the unknown left out)."""
        missing = [c for c in customer_ids if c not in self._cache]
        loaded = self.store.load_states(missing) if missing else {}
        found = {c: self._cache.get(c) or loaded.get(c) for c in customer_ids}
        return {c: s for c, s in found.items() if s is not None}

    def _load(self, events: list[Event]) -> dict[str, CustomerState]:
        known = self._states([e.customer_id for e in events])
        working: dict[str, CustomerState] = {}
        for event in events:
            cid = event.customer_id
            if cid not in working:
                working[cid] = known.get(cid) or CustomerState(
                    customer_id=cid, account_id=event.account_id
                )
        return working

    def _load_accounts(
        self, events: list[Event], states: dict[str, CustomerState]
    ) -> dict[str, AccountState]:
        """The batch's accounts: by each event's account id, else its customer's."""
        ids = {
            aid
            for e in events
            if (aid := e.account_id or states[e.customer_id].account_id) is not None
        }
        missing = [a for a in ids if a not in self._accounts]
        loaded = self.store.load_accounts(missing) if missing else {}
        return {
            a: self._accounts.get(a) or loaded.get(a) or AccountState(account_id=a) for a in ids
        }

    def change(self, customer_id: str, fn: Callable[[CustomerState, datetime], Change]) -> Change:
        """Apply what a person did to one customer (``fn`` is a pure function from
        actions/lifecycle.py) and commit it like an event's effects. Raises
        LifecycleError (404) for a customer never seen, or whatever ``fn`` refuses."""
        guard = self.customer_lock(customer_id) if self.customer_lock else contextlib.nullcontext()
        with guard, self._lock:
            if self.customer_lock is not None:
                self._cache.pop(customer_id, None)  # the workers own it: read it fresh
            state = self._states([customer_id]).get(customer_id)
            if state is None:
                raise LifecycleError(f"no customer '{customer_id}' has been seen", 404)
            now = self.clock()
            done = fn(state, now)
            self.store.commit_changes([done], now)
            self._remember(self._cache, customer_id, done.state)
            self._written[customer_id] = now
        self._count_changes([done])
        return done

    def forget_stale(self, written: Mapping[str, datetime]) -> None:
        """Drop the cached states another process wrote since this engine did (``written``:
        when the store last wrote each customer, read under the customers' locks)."""
        for cid, at in written.items():
            if self._written.get(cid) != at:
                self._cache.pop(cid, None)
                self._written.pop(cid, None)

    def erase(self, customer_id: str) -> dict[str, int]:
        """Forget a customer everywhere (store and caches); rows removed per table."""
        with self._lock:
            removed = self.store.erase_customer(customer_id)
            self._cache.pop(customer_id, None)
            self._accounts.clear()  # their aggregates may list the customer at risk
        return removed

    def forget_old_text(self) -> dict[str, int]:
        """Retention: free text older than the policy's ``privacy.keep_text`` removed (the
        cached states drop their copy of the latest messages too)."""
        privacy = self.policy.policy.privacy
        cutoff = self.clock() - privacy.keep_text
        with self._lock:
            changed = self.store.forget_text(cutoff, privacy.text_fields)
            for cid, state in list(self._cache.items()):
                if state.recent_messages and state.last_seen and state.last_seen < cutoff:
                    self._cache[cid] = state.model_copy(update={"recent_messages": []})
        return changed

    def sweep_holds(self, page: int = 500, owns: Callable[[str], bool] | None = None) -> int:
        """End the holds the clock ends: past their end, or (the policy's
        ``holds.auto_release``) the customer has recovered. Returns how many ended.
        ``owns``: only the customers this process applies (a broker worker's partitions);
        the others are left to whoever owns them."""
        ended = 0
        after = ""
        while True:
            found = self.store.active_holds(page, after)
            if not found:
                return ended
            after = found[-1][0]
            customers = list(dict.fromkeys(cid for _, cid in found))
            if owns is not None:
                customers = [cid for cid in customers if owns(cid)]
            with self._lock:
                now = self.clock()
                changes = []
                for cid, state in self._states(customers).items():
                    policy = self.policy_for(cid).policy
                    done = due_releases(state, now, policy, self.memory.trend)
                    if done is not None:
                        changes.append(done)
                self.store.commit_changes(changes, now)
                for done in changes:
                    self._remember(self._cache, done.state.customer_id, done.state)
                    self._written[done.state.customer_id] = now
            self._count_changes(changes)
            ended += sum(len(c.decisions) for c in changes)

    def _actions_committed(self) -> None:
        for callback in self.on_actions:
            callback()

    def _count_changes(self, changes: Sequence[Change]) -> None:
        if any(c.actions for c in changes):
            self._actions_committed()
        for c in changes:
            for d in c.decisions:
                self.metrics.decisions.labels(d.kind, d.rule_id).inc()
            for o in c.outcomes:
                self.metrics.outcomes.labels(o.kind).inc()

    def forget_accounts(self, account_ids: Sequence[str]) -> None:
        """Drop cached accounts (after an accounts file changed them in the store)."""
        for aid in account_ids:
            self._accounts.pop(aid, None)

    def forget_cached(self) -> None:
        """Drop every cached customer state and account: the next batch reads them from
        the store (a broker worker that takes over a partition: another worker may have
        advanced its customers meanwhile)."""
        with self._lock:
            self._cache.clear()
            self._written.clear()
            self._accounts.clear()

    def _remember(self, cache: OrderedDict[str, Any], key: str, value: object) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self._cache_size:
            cache.popitem(last=False)

    def _count(self, batch: list[Processed]) -> None:
        """Sum per batch, then touch each Prometheus series once."""
        events = Counter(p.event.type for p in batch)
        signals = Counter(s.name for p in batch for s in p.signals)
        decisions = Counter((d.kind, d.rule_id) for p in batch for d in p.decisions)
        outcomes = Counter(o.kind for p in batch for o in p.outcomes)
        m = self.metrics
        for type_, n in events.items():
            m.events.labels(type_, "accepted").inc(n)
        for name, n in signals.items():
            m.signals.labels(name).inc(n)
        for (kind, rule), n in decisions.items():
            m.decisions.labels(kind, rule).inc(n)
        for kind, n in outcomes.items():
            m.outcomes.labels(kind).inc(n)
