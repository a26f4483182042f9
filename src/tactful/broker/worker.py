"""`tactful worker`: consume the partitions this worker owns and apply them with the
:class:`~tactful.runtime.engine.Engine`.

Per round: fetch a batch from each owned partition's durable pull consumer (concurrently),
then per partition: sort by event time, lock the batch's accounts, ``engine.ingest``
(validate, de-duplicate by event id, process, commit in one transaction), and only then
ack. A crash before the ack redelivers the batch (after ``ack_wait``), and the store
reports the committed events as duplicates: at-least-once delivery, exactly-once effects.

A batch that fails (the store down, a conflict) is kept and retried in order, with
backoff, while the worker still owns the partition; it is never acked uncommitted. A
batch that still fails after ``batch_retries`` tries, for a reason other than PostgreSQL
being unreachable, is applied one event at a time: the good events are committed, each
event that still fails (a poison event) is written to the store's quarantine (source
``worker``, the reason naming the exception, event id, partition and delivery count) and
acked, so the partition moves on and nothing is lost. A message JetStream has delivered
more than ``max_deliveries`` times (workers died or stopped holding it) is quarantined
the same way without being applied again (unless it was committed already).
NATS away (restarting) is waited out: fetches time out, acks wait in the client's buffer
(or, lost, mean redeliveries the store reports as duplicates), and a partition the
worker cannot bind to its consumer is let go and tried again at the next look.
Between rounds, every ``interval`` seconds: heartbeat, give back partitions beyond the
fair share, take free ones (dropping the engine's cached states: the partition's
customers may have moved on elsewhere); every ``sweep_interval`` seconds, end the holds
the clock ends for the customers of the owned partitions (in broker mode the workers
sweep, not the API process).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import nats.errors
import psycopg
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tactful.broker.nats import BrokerConfig, connect, ensure_stream
from tactful.broker.ownership import Ownership
from tactful.broker.partition import partition_of
from tactful.runtime.engine import Engine
from tactful.runtime.logs import Noted
from tactful.state.store.base import MAX_QUARANTINE_BYTES, QuarantineItem

__all__ = ["QUARANTINE_SOURCE", "WorkerOptions", "WorkerStats", "consumer_config", "run_worker"]

QUARANTINE_SOURCE = "worker"  # the quarantine rows a worker writes (poison events)


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    batch: int = 200  # messages per fetch, per partition
    max_ack_pending: int = 1000  # per partition's consumer: bounded in flight
    ack_wait: float = 10.0  # seconds before JetStream redelivers an unacked message
    fetch_wait: float = 0.2  # how long a fetch waits for the first message
    interval: float = 1.0  # heartbeat and rebalance period
    retry_max: float = 5.0  # backoff ceiling for a failing batch
    batch_retries: int = 3  # failed tries of a batch before it is applied event by event
    max_deliveries: int = 5  # deliveries of one message before it is quarantined unapplied
    sweep_interval: float = 30.0  # how often the holds of owned customers are swept (0: never)


@dataclass
class WorkerStats:
    batches: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    failures: int = 0
    quarantined: int = 0  # poison events (and worn-out messages) put in quarantine
    holds_ended: int = 0  # by the sweeps of owned customers' holds
    # set when the worker stopped because the store was migrated past its code's schema
    outdated: str | None = None
    taken: list[int] = field(default_factory=list)
    given: list[int] = field(default_factory=list)


def consumer_config(config: BrokerConfig, p: int, options: WorkerOptions) -> ConsumerConfig:
    """Partition ``p``'s durable pull consumer, as workers create it."""
    return ConsumerConfig(
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        max_ack_pending=options.max_ack_pending,
        ack_wait=options.ack_wait,
        filter_subject=config.subject(p),
    )


def _delivered(msg: Msg) -> int:
    """How many times JetStream has delivered this message (1 the first time)."""
    try:
        return int(msg.metadata.num_delivered)
    except Exception:
        return 1


def _transient(exc: BaseException) -> bool:
    """PostgreSQL unreachable (or the connection lost): the event is not at fault."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def _peek(raw: bytes, key: str) -> str | None:
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        value = json.loads(raw).get(key)
        if isinstance(value, str | int):
            return str(value)
    return None


def _sort_key(msg: Msg) -> tuple[str, int]:
    """Event time (as the published JSON has it: one format, so it sorts as text), then
    stream order."""
    seq = msg.metadata.sequence.stream if msg.reply else 0
    try:
        at = json.loads(msg.data).get("timestamp")
    except (ValueError, AttributeError):
        at = None
    if isinstance(at, str):
        with contextlib.suppress(ValueError):
            at = datetime.fromisoformat(at.replace("Z", "+00:00")).isoformat()
    return (at if isinstance(at, str) else "", seq)


class Worker:
    def __init__(
        self,
        config: BrokerConfig,
        engine: Engine,
        dsn: str,
        options: WorkerOptions,
        log: Callable[[str], None],
    ) -> None:
        self.config = config
        self.engine = engine
        self.dsn = dsn
        self.options = options
        self.log = log
        self.stats = WorkerStats()
        self.subs: dict[int, JetStreamContext.PullSubscription] = {}
        self.pending: dict[int, list[Msg]] = {}  # batches that failed, retried in order
        self.tries: dict[int, int] = {}  # failed tries of the pending batch
        self.wait_until: dict[int, float] = {}  # partitions waiting for redeliveries
        self.reconnects = 0  # NATS reconnections not yet answered by a wait (_round)
        self.stopping = asyncio.Event()
        self.nc: NatsClient | None = None
        self.js: JetStreamContext | None = None
        self.owner: Ownership | None = None
        self.schema = 0  # the store's schema version when this worker started

    async def run(self) -> WorkerStats:
        opts = self.options
        self.nc = await connect(
            self.config.url, self.config.connect_wait, self.log, self._reconnected
        )
        self.js = self.nc.jetstream(timeout=max(self.config.publish_timeout, 5.0))
        await ensure_stream(self.js, self.config, update=False)  # the API sets limits
        self.owner = await asyncio.to_thread(
            Ownership, self.dsn, self.config.stream, self.config.partitions, opts.interval
        )
        self.log(f"worker {self.owner.worker_id} on stream {self.config.stream}")
        # the schema this code writes; a store migrated past it (a newer version rolled
        # out) stops this worker rather than let it write rows the new schema may not mean
        self.schema = await asyncio.to_thread(lambda: self.engine.store.schema_version)
        try:
            next_look = 0.0
            next_sweep = time.monotonic() + opts.sweep_interval
            retry_delay = 0.1
            while not self.stopping.is_set():
                if time.monotonic() >= next_look:
                    if await self._outdated():
                        break
                    await self._rebalance()
                    next_look = time.monotonic() + opts.interval
                if opts.sweep_interval > 0 and time.monotonic() >= next_sweep:
                    await self._sweep()
                    next_sweep = time.monotonic() + opts.sweep_interval
                if not self.subs:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), opts.fetch_wait)
                    continue
                failed = await self._round()
                if failed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), retry_delay)
                    retry_delay = min(retry_delay * 2, opts.retry_max)
                else:
                    retry_delay = 0.1
        finally:
            for sub in self.subs.values():
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            with contextlib.suppress(Exception):
                await self.nc.drain()
            await asyncio.to_thread(self.owner.close)
        return self.stats

    async def _reconnected(self) -> None:
        self.reconnects += 1

    async def _round(self) -> bool:
        """Fetch from every owned partition, apply each batch; whether any failed."""
        owned = sorted(self.subs)
        if self.reconnects:
            # The connection to NATS dropped (nats-server restarted): what a pull request
            # delivered just before may have been lost with it, still unacked on the
            # server, and comes back only after ack_wait. Fetching newer events first
            # would apply a customer's events out of order (bench/crash.py --kill nats:
            # 17 of 250 customers decided differently), so wait for the redeliveries, as
            # a new owner does after a crash.
            self.reconnects = 0
            until = time.monotonic() + self.options.ack_wait + 0.1
            for p in owned:  # (a batch kept for a retry still goes first: _fetch)
                self.wait_until[p] = until
            self.log(
                f"reconnected to NATS: waiting {self.options.ack_wait:g}s for redeliveries "
                f"on partitions {owned}"
            )
        fetched = await asyncio.gather(*(self._fetch(p) for p in owned))
        assert self.owner is not None
        if any(fetched) and not await asyncio.to_thread(self.owner.holding):
            # The lock connection is gone: so are the locks. Another worker may own these
            # partitions now; nothing fetched is applied or acked (it will be redelivered).
            self.log("lost the PostgreSQL lock connection: giving back every partition")
            await self._drop_all()
            return True
        failed = False
        for p, msgs in zip(owned, fetched, strict=True):
            if msgs and not await self._apply(p, msgs):
                failed = True
        return failed

    async def _fetch(self, p: int) -> list[Msg]:
        if p in self.pending:
            return self.pending[p]
        if self.wait_until.get(p, 0.0) > time.monotonic():
            await asyncio.sleep(self.options.fetch_wait)
            return []
        self.wait_until.pop(p, None)
        try:
            return await self.subs[p].fetch(self.options.batch, timeout=self.options.fetch_wait)
        except (NatsTimeout, TimeoutError):
            return []

    async def _apply(self, p: int, msgs: list[Msg]) -> bool:
        assert self.owner is not None and self.nc is not None
        msgs = sorted(msgs, key=_sort_key)
        worn = [m for m in msgs if _delivered(m) > self.options.max_deliveries]
        if worn:
            retired = await self._retire(p, worn)
            msgs = [m for m in msgs if not any(m is r for r in retired)]
            if len(retired) < len(worn):  # PostgreSQL failed: keep the rest, retry
                self.pending[p] = msgs
                return False
            if not msgs:
                self.pending.pop(p, None)
                self.tries.pop(p, None)
                return True
        try:
            results = await self._ingest_msgs(msgs)
        except Exception as exc:
            self.stats.failures += 1
            tries = self.tries[p] = self.tries.get(p, 0) + 1
            if _transient(exc) or tries <= self.options.batch_retries:
                self.pending[p] = msgs
                self.log(
                    f"partition {p}: batch of {len(msgs)} not applied, will retry "
                    f"({type(exc).__name__}: {exc})"
                )
                for m in msgs:  # keep them ours while we retry
                    with contextlib.suppress(Exception):
                        await m.in_progress()
                return False
            self.log(
                f"partition {p}: batch of {len(msgs)} failed {tries} times "
                f"({type(exc).__name__}: {exc}); applying it event by event"
            )
            return await self._isolate(p, msgs)
        self.pending.pop(p, None)
        self.tries.pop(p, None)
        await self._ack(p, msgs)
        self.stats.batches += 1
        self._count(results)
        return True

    async def _ack(self, p: int, msgs: list[Msg]) -> None:
        """Ack messages whose effects are committed (or quarantined). With NATS away (the
        client reconnecting, a flush unanswered) the worker goes on: an ack that did not
        reach the server means a redelivery after ``ack_wait``, which the store reports
        as a duplicate."""
        assert self.nc is not None
        if not msgs:
            return
        try:
            for m in msgs:
                await m.ack()
            await self.nc.flush()
        except (nats.errors.Error, TimeoutError) as exc:
            self.log(
                f"partition {p}: {len(msgs)} applied, their acks not confirmed "
                f"({type(exc).__name__}); NATS redelivers what it missed, as duplicates"
            )

    async def _ingest_msgs(self, msgs: list[Msg]) -> list[Any]:
        raws = [m.data for m in msgs]
        customers, accounts = set(), set()
        for raw in raws:
            with contextlib.suppress(ValueError, AttributeError):
                doc = json.loads(raw)
                if isinstance(doc.get("customer_id"), str):
                    customers.add(doc["customer_id"])
                if isinstance(doc.get("account_id"), str):
                    accounts.add(doc["account_id"])
        return await asyncio.to_thread(self._ingest, raws, sorted(customers), accounts)

    def _count(self, results: list[Any]) -> None:
        for r in results:
            if r.status == "accepted":
                self.stats.accepted += 1
            elif r.status == "duplicate":
                self.stats.duplicates += 1
            else:
                self.stats.rejected += 1

    async def _isolate(self, p: int, msgs: list[Msg]) -> bool:
        """Apply a failing batch one event at a time, in order: commit and ack the good
        ones, quarantine and ack the ones that fail by themselves. Stops (keeping the rest
        pending) if PostgreSQL is what fails."""
        for i, m in enumerate(msgs):
            try:
                results = await self._ingest_msgs([m])
            except Exception as exc:
                if _transient(exc) or not await self._quarantine(p, m, exc):
                    await self._ack(p, msgs[:i])
                    self.pending[p] = msgs[i:]
                    self.log(
                        f"partition {p}: PostgreSQL failed while isolating a poison event "
                        f"({type(exc).__name__}: {exc}); will retry"
                    )
                    return False
            else:
                self._count(results)
        await self._ack(p, msgs)
        self.pending.pop(p, None)
        self.tries.pop(p, None)
        self.stats.batches += 1
        return True

    async def _retire(self, p: int, worn: list[Msg]) -> list[Msg]:
        """Messages delivered more than ``max_deliveries`` times: ack the ones already
        committed (duplicates), quarantine the rest unapplied (applying them again could
        take this worker down as it took the others). Returns those handled (and acked):
        fewer than given if PostgreSQL failed."""
        ids = [_peek(m.data, "event_id") for m in worn]
        try:
            seen = await asyncio.to_thread(self.engine.store.seen_event_ids, [i for i in ids if i])
        except Exception as exc:
            self.log(f"partition {p}: cannot check worn-out messages ({type(exc).__name__})")
            return []
        done: list[Msg] = []
        for m, event_id in zip(worn, ids, strict=True):
            if event_id is not None and event_id in seen:
                self.stats.duplicates += 1
            elif not await self._quarantine(p, m, None):
                break
            done.append(m)
        await self._ack(p, done)
        return done

    async def _quarantine(self, p: int, msg: Msg, exc: Exception | None) -> bool:
        """Write one message to the store's quarantine; False if PostgreSQL failed (then
        the failure was not the event's: it stays pending)."""
        event_id = _peek(msg.data, "event_id")
        n = _delivered(msg)
        if exc is None:
            why = (
                f"delivered {n} times, more than --max-deliveries "
                f"{self.options.max_deliveries}: the workers that took it never finished it "
                f"(crashed or stopped); not applied again; event {event_id}, partition {p}"
            )
        else:
            why = (
                f"the worker could not apply it: {type(exc).__name__}: {exc}; event "
                f"{event_id}, partition {p}, delivery {n}"
            )
        raw = msg.data[:MAX_QUARANTINE_BYTES].decode("utf-8", "replace")
        item = QuarantineItem(
            self.engine.clock(),
            QUARANTINE_SOURCE,
            [{"field": "event", "value": event_id, "why": why}],
            raw,
            event_id,
            _peek(msg.data, "customer_id"),
        )
        try:
            await asyncio.to_thread(self.engine.store.quarantine, [item])
        except Exception as qexc:
            self.log(f"partition {p}: cannot quarantine {event_id} ({type(qexc).__name__})")
            return False
        self.stats.quarantined += 1
        self.log(
            Noted(
                f"partition {p}: quarantined event {event_id}: {why}",
                partition=p,
                event_id=event_id,
                customer_id=item.customer_id,
            )
        )
        return True

    def _ingest(self, raws: list[bytes], customers: list[str], accounts: set[str]) -> list[Any]:
        assert self.owner is not None
        try:
            locked, written = self.owner.lock_accounts(customers, sorted(accounts))
            self.engine.forget_accounts(locked)  # read them again, under the lock
            self.engine.forget_stale(written)  # customers a person changed meanwhile
            return self.engine.ingest(raws, "broker")
        except Exception:
            # whatever was cached may be ahead of (or behind) what was committed
            self.engine.forget_cached()
            raise
        finally:
            with contextlib.suppress(Exception):
                self.owner.unlock_accounts()

    async def _outdated(self) -> bool:
        """Whether the store's schema moved past this worker's (another process migrated
        it): then stop, giving the partitions back, so the newer version takes over."""
        try:
            version = await asyncio.to_thread(lambda: self.engine.store.schema_version)
        except Exception:  # the store away: the heartbeat deals with that
            return False
        if version <= self.schema:
            return False
        self.stats.outdated = (
            f"the store was migrated to schema version {version}, newer than this worker's "
            f"({self.schema}): stopping; start the new version of tactful"
        )
        self.log(self.stats.outdated)
        await self._drop_all()
        return True

    async def _sweep(self) -> None:
        """End the holds the clock ends for the customers of the partitions this worker
        owns (the API process does not sweep in broker mode: it would write states the
        workers own). Between rounds, so no partition changes hands meanwhile; skipped
        when the lock connection is gone."""
        assert self.owner is not None
        owned = frozenset(self.subs)
        if not owned:
            return
        partitions = self.config.partitions

        def owns(customer_id: str) -> bool:
            return partition_of(customer_id, partitions) in owned

        def sweep() -> int:
            assert self.owner is not None
            if not self.owner.holding():
                return 0
            due = sorted({cid for _, cid in self.engine.store.active_holds(100_000) if owns(cid)})
            if not due:
                return 0
            try:  # under the customers' locks, as a batch: a person's change waits
                _, written = self.owner.lock_accounts(due, [])
                self.engine.forget_stale(written)
                return self.engine.sweep_holds(500, lambda cid: cid in set(due))
            finally:
                with contextlib.suppress(Exception):
                    self.owner.unlock_accounts()

        try:
            ended = await asyncio.to_thread(sweep)
        except Exception as exc:  # the store away: the next sweep tries again
            self.engine.forget_cached()
            self.log(f"hold sweep failed ({type(exc).__name__}: {exc}); trying again later")
            return
        self.stats.holds_ended += ended
        if ended:
            self.log(f"ended {ended} holds of partitions {sorted(owned)}")

    async def _rebalance(self) -> None:
        assert self.owner is not None and self.js is not None
        owner = self.owner
        try:
            live = await asyncio.to_thread(owner.beat)
        except Exception as exc:
            self.log(f"heartbeat failed ({type(exc).__name__}: {exc}); giving back partitions")
            await self._drop_all()
            return
        target = owner.target(live)
        extra = sorted(self.subs)[target:] if len(self.subs) > target else []
        for p in extra:
            try:
                await self._give_back(p)
            except psycopg.Error as exc:
                # PostgreSQL went between the heartbeat and the hand-over (bench/crash.py
                # --kill postgres: the worker died here, the error out of the rebalance):
                # the lock connection's locks went with it, so give up every partition
                # and compete again once it is back, as after a failed heartbeat.
                self.log(
                    f"PostgreSQL failed giving back partition {p} ({type(exc).__name__}); "
                    "giving back partitions"
                )
                await self._drop_all()
                return
        if len(self.subs) >= target:
            return
        for p in owner.candidates():
            if len(self.subs) >= target:
                break
            try:
                if not await asyncio.to_thread(owner.try_take, p):
                    continue
                await self._subscribe(p)
            except (nats.errors.Error, TimeoutError) as exc:
                # JetStream cannot answer for the consumer now (nats-server down or still
                # starting): let the partition go and try again at the next look.
                self.subs.pop(p, None)
                self.wait_until.pop(p, None)
                owner.owned.discard(p)
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(owner.give_back, p)
                self.log(
                    f"cannot take partition {p}: JetStream did not answer "
                    f"({type(exc).__name__}); trying again in {self.options.interval:g}s"
                )
                return
            except psycopg.Error as exc:  # PostgreSQL went between the heartbeat and now
                self.log(
                    f"PostgreSQL failed taking partition {p} ({type(exc).__name__}); "
                    "giving back partitions"
                )
                await self._drop_all()
                return
            self.stats.taken.append(p)
            self.log(
                Noted(f"took partition {p} ({len(self.subs)} of target {target})", partition=p)
            )

    async def _subscribe(self, p: int) -> None:
        """Bind to a just-taken partition's durable consumer."""
        assert self.owner is not None and self.js is not None
        # another worker may have applied this partition's customers meanwhile
        self.engine.forget_cached()
        sub = await self.js.pull_subscribe(
            self.config.subject(p),
            durable=self.config.durable(p),
            stream=self.config.stream,
            config=consumer_config(self.config, p, self.options),
        )
        try:
            info = await sub.consumer_info()
        except BaseException:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            raise
        self.subs[p] = sub
        clean = await asyncio.to_thread(self.owner.handed_over, p)
        if info.num_ack_pending and not clean:
            # A worker died holding these unacked: they come back after ack_wait, ahead
            # of newer events. Fetching newer ones before would apply a customer's
            # events out of order.
            self.wait_until[p] = time.monotonic() + self.options.ack_wait + 0.1
            self.log(
                f"partition {p}: {info.num_ack_pending} unacked by the previous "
                f"owner; waiting {self.options.ack_wait:g}s for their redelivery"
            )

    async def _give_back(self, p: int) -> None:
        """Hand a partition over between batches. What the last pull requests delivered
        but this worker has not taken from its client's buffer is nak'ed (JetStream
        redelivers it first, in order); if then nothing else of the partition is unacked,
        the hand-over is marked clean and the next owner starts at once, else it waits
        ``ack_wait`` for the redeliveries (as after a crash)."""
        assert self.owner is not None
        sub = self.subs.pop(p)
        self.pending.pop(p, None)  # unacked: redelivered to the next owner
        self.tries.pop(p, None)
        self.wait_until.pop(p, None)
        clean = False
        with contextlib.suppress(Exception):
            # the last pull request has expired once fetch_wait has passed
            await asyncio.sleep(self.options.fetch_wait + 0.05)
            await sub.unsubscribe()
            buffered = getattr(getattr(sub, "_sub", None), "_pending_queue", None)
            naked = 0
            while buffered is not None and not buffered.empty():
                msg = buffered.get_nowait()
                if msg.reply and msg.data:  # not a status message
                    await msg.nak()
                    naked += 1
            assert self.nc is not None
            await self.nc.flush()
            info = await sub.consumer_info()
            clean = buffered is not None and info.num_ack_pending == naked
        await asyncio.to_thread(self.owner.give_back, p, clean)
        self.stats.given.append(p)
        self.log(Noted(f"gave back partition {p}", partition=p))

    async def _drop_all(self) -> None:
        assert self.owner is not None
        for p in list(self.subs):
            sub = self.subs.pop(p)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self.pending.clear()
        self.tries.clear()
        self.wait_until.clear()
        self.engine.forget_cached()
        self.owner.owned.clear()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.owner.close)
        delay = 0.1
        while True:  # PostgreSQL away: wait for it (nothing is fetched meanwhile)
            try:
                self.owner = await asyncio.to_thread(
                    Ownership,
                    self.dsn,
                    self.config.stream,
                    self.config.partitions,
                    self.options.interval,
                    self.owner.worker_id,
                )
                return
            except Exception as exc:
                if self.stopping.is_set():
                    raise
                self.log(f"PostgreSQL not reachable ({type(exc).__name__}); retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                delay = min(delay * 2, self.options.retry_max)


def run_worker(
    config: BrokerConfig,
    engine: Engine,
    dsn: str,
    options: WorkerOptions,
    log: Callable[[str], None],
) -> WorkerStats:
    """Run until SIGTERM or SIGINT (the batch in hand is finished and acked first)."""
    worker = Worker(config, engine, dsn, options, log)

    async def main() -> WorkerStats:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stopping.set)
        return await worker.run()

    return asyncio.run(main())
