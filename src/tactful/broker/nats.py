"""NATS JetStream: the stream, the connection (retried with backoff at start) and the API
side's publisher.

The stream holds ``<prefix>.<p>`` subjects, one per partition (``events.<p>`` for the
default stream), on file storage, with ``replicas`` copies, de-duplicating by the
``Nats-Msg-Id`` header (the event id) within ``duplicate_window``. At its limits
(``max_msgs`` / ``max_bytes``, discard=new) JetStream refuses a publish; the publisher
then raises :class:`BrokerBusy` and the API answers 503 with Retry-After instead of
buffering.

nats-py is asyncio; the API's handlers and the engine are threads, so the publisher runs
its own event loop in a background thread and callers wait on a future.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js import errors as js_errors
from nats.js.api import DiscardPolicy, StorageType, StreamConfig

from tactful.runtime.engine import Engine, IngestResult

__all__ = [
    "BrokerBusy",
    "BrokerConfig",
    "BrokerUnavailable",
    "Publisher",
    "connect",
    "ensure_stream",
    "shown",
]

T = TypeVar("T")

DEFAULT_STREAM = "TACTFUL"


class BrokerUnavailable(RuntimeError):
    """The broker could not be reached (at start, after retrying) or refused the stream."""


class BrokerBusy(RuntimeError):
    """JetStream did not take the events now (stream full, or no ack in time): retry."""

    def __init__(self, why: str, retry_after: int = 1) -> None:
        super().__init__(why)
        self.retry_after = retry_after


def shown(url: str) -> str:
    """The URL for messages: without a password or token."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    user, host = parts.netloc.rsplit("@", 1)
    name = user.split(":", 1)[0] if ":" in user else "***"
    masked = f"{name}:***" if ":" in user else name
    return urlunsplit(parts._replace(netloc=f"{masked}@{host}"))


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    url: str
    stream: str = DEFAULT_STREAM
    partitions: int = 8
    replicas: int = 1
    max_msgs: int = -1  # -1: no limit (the disk is)
    max_bytes: int = -1
    duplicate_window: timedelta = timedelta(minutes=2)
    publish_timeout: float = 5.0
    connect_wait: float = 10.0  # how long to retry an unreachable broker at start

    @property
    def prefix(self) -> str:
        """Subjects: ``events.<p>`` for the default stream; ``<stream>.events.<p>`` for
        another (streams may not share subjects)."""
        return "events" if self.stream == DEFAULT_STREAM else f"{self.stream.lower()}.events"

    def subject(self, partition: int) -> str:
        return f"{self.prefix}.{partition}"

    def durable(self, partition: int) -> str:
        """The one durable pull consumer of a partition (all workers share it)."""
        return f"{self.stream}_p{partition}"


async def _quiet(_: Exception) -> None:
    """nats-py's error callback: connection trouble is reported by our own retries."""


async def connect(
    url: str,
    wait: float,
    log: Callable[[str], None] | None = None,
    reconnected: Callable[[], Awaitable[None]] | None = None,
) -> NatsClient:
    """A connection to ``url``, retried with backoff (0.1 s doubling to 2 s) for ``wait``
    seconds; then :class:`BrokerUnavailable` naming the server. Once connected, the client
    reconnects by itself (forever) if the server goes away, then awaits ``reconnected``."""
    started = time.monotonic()
    delay = 0.1
    attempts = 0
    last = ""
    while True:
        attempts += 1
        left = wait - (time.monotonic() - started)
        client = NatsClient()
        try:
            # nats-py retries the first connection on its own without bound: one bounded
            # attempt at a time, and the backoff is ours.
            await asyncio.wait_for(
                client.connect(
                    url,
                    connect_timeout=1,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    error_cb=_quiet,
                    reconnected_cb=reconnected,
                ),
                timeout=min(2.0, max(left, 0.2)),
            )
            return client
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            last = f"{type(exc).__name__}: {exc}".rstrip(": ")
            with contextlib.suppress(Exception):
                await client.close()
        left = wait - (time.monotonic() - started)
        if left <= 0:
            raise BrokerUnavailable(
                f"cannot reach NATS at {shown(url)} (tried {attempts} times for "
                f"{wait:g}s; last error {last or 'timeout'}); is nats-server running with "
                f"-js? (TACTFUL_BROKER_WAIT sets how long to wait)"
            )
        if log is not None:
            log(f"NATS at {shown(url)} not reachable ({last or 'timeout'}); retrying")
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, 2.0)


def _stream_config(config: BrokerConfig) -> StreamConfig:
    return StreamConfig(
        name=config.stream,
        description=f"tactful events, {config.partitions} partitions by customer",
        subjects=[f"{config.prefix}.*"],
        storage=StorageType.FILE,
        num_replicas=config.replicas,
        max_msgs=config.max_msgs,
        max_bytes=config.max_bytes,
        discard=DiscardPolicy.NEW,
        duplicate_window=config.duplicate_window.total_seconds(),
    )


async def ensure_stream(js: JetStreamContext, config: BrokerConfig, update: bool = True) -> None:
    """Create the stream, or (``update``: the API, which owns its limits) bring an existing
    one to ``config``'s limits; workers only create it if missing. A configuration
    JetStream refuses raises :class:`BrokerUnavailable` saying why."""
    wanted = _stream_config(config)
    try:
        try:
            await js.stream_info(config.stream)
        except js_errors.NotFoundError:
            await js.add_stream(wanted)
            return
        if update:
            await js.update_stream(wanted)
    except js_errors.APIError as exc:
        raise BrokerUnavailable(
            f"JetStream at {shown(config.url)} refused stream {config.stream} "
            f"(replicas={config.replicas}, max_msgs={config.max_msgs}, "
            f"max_bytes={config.max_bytes}): {exc.description or exc}"
        ) from None


class _Loop:
    """An asyncio loop in a daemon thread, for sync callers."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.submit(coro).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


class Publisher:
    """The API side: validate like the engine does (parse, redact; the invalid quarantined
    in the store), publish the valid to their partition's subject with ``Nats-Msg-Id`` =
    event id, and report each event once JetStream acknowledged it."""

    def __init__(
        self,
        config: BrokerConfig,
        engine: Engine,
        log: Callable[[str], None] | None = None,
    ) -> None:
        """``engine``: its store (quarantine), policy (what to redact) and clock; it does
        not process here."""
        from tactful.broker.partition import partition_of

        self.config = config
        self.engine = engine
        self._partition_of = partition_of
        self._loop = _Loop("tactful-publisher")
        try:
            self._nc: NatsClient = self._loop.run(connect(config.url, config.connect_wait, log))
            self._js = self._nc.jetstream(timeout=config.publish_timeout)
            self._loop.run(ensure_stream(self._js, config))
        except BaseException:
            self._loop.stop()
            raise

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.run(self._nc.drain())
        self._loop.stop()

    def ingest(
        self, raws: Sequence[Any], source: str = "api", *, check_surrogates: bool = True
    ) -> list[IngestResult]:
        """Like :meth:`Engine.ingest`, but "accepted" means durably queued, not processed
        (and "duplicate": JetStream already holds that id, within its window). Raises
        :class:`BrokerBusy` when any event was refused; nothing is quarantined then, so a
        retried request (same ids: de-duplicated) leaves one copy of everything."""
        results, events, bad = self.engine.validate(
            raws, [source] * len(raws), [check_surrogates] * len(raws), self.engine.clock()
        )
        out: list[tuple[int, str, str, bytes]] = []  # (index, event id, subject, payload)
        for i, event in events:
            p = self._partition_of(event.customer_id, self.config.partitions)
            payload = event.model_dump_json().encode()
            out.append((i, event.event_id, self.config.subject(p), payload))
        if out:
            acks = self._loop.run(self._publish(out))
            for (i, *_), duplicate in zip(out, acks, strict=True):
                if duplicate:
                    results[i].status = "duplicate"
        if bad:
            self.engine.store.quarantine(bad)
        return results

    async def _publish(self, out: list[tuple[int, str, str, bytes]]) -> list[bool]:
        """Publish all at once and wait for every ack; whether each was a duplicate."""
        timeout = self.config.publish_timeout

        async def one(event_id: str, subject: str, payload: bytes) -> bool:
            ack = await self._js.publish(
                subject, payload, timeout=timeout, headers={"Nats-Msg-Id": event_id}
            )
            return bool(ack.duplicate)

        tasks = [asyncio.ensure_future(one(e, s, p)) for _, e, s, p in out]
        try:
            return list(await asyncio.gather(*tasks))
        except js_errors.ServiceUnavailableError as exc:
            # 10077 maximum messages exceeded, 10047 maximum bytes: discard=new refuses
            why = f"the stream {self.config.stream} is full ({exc.description})"
            raise BrokerBusy(why) from None
        except (TimeoutError, nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise BrokerBusy(
                f"JetStream did not acknowledge within {timeout:g}s ({type(exc).__name__})"
            ) from None
        except (nats.errors.ConnectionClosedError, nats.errors.OutboundBufferLimitError) as exc:
            raise BrokerBusy(f"not connected to NATS ({type(exc).__name__})", 2) from None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
