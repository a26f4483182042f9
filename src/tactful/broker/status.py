"""`tactful status`: partitions, owners, lag, outbox depth, dead letters, in one dict."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tactful.broker.partition import SETTING
from tactful.state.store import is_postgres
from tactful.state.store.base import Store

__all__ = ["collect"]


def collect(store: Store, db: str, stream: str, broker: str | None) -> dict[str, Any]:
    stats = store.stats()
    report: dict[str, Any] = {
        "schema_version": store.schema_version,
        "events": stats.events,
        "outbox_pending": stats.outbox_pending,
        "dead_letters": stats.outbox_dead,
        "quarantined": stats.quarantined,
        "stream": stream,
        "partitions": [],
        "workers": [],
    }
    recorded = store.get_setting(SETTING)
    if recorded is None or recorded.get("stream") != stream:
        return report
    count = int(recorded["partitions"])
    owned: dict[int, str] = {}
    if is_postgres(db):
        import psycopg

        from tactful.broker.ownership import ensure_tables, owners
        from tactful.broker.worker import QUARANTINE_SOURCE

        with psycopg.connect(db, autocommit=True) as conn:
            ensure_tables(conn)
            owned = owners(conn, stream)
            poisoned = conn.execute(
                "SELECT count(*) FROM quarantine WHERE source = %s", (QUARANTINE_SOURCE,)
            ).fetchone()
            report["quarantined_by_workers"] = int(poisoned[0]) if poisoned else 0
            rows = conn.execute(
                "SELECT worker_id, host, pid, partitions, "
                "extract(epoch FROM now() - heartbeat_at)::float FROM broker_workers "
                "WHERE stream = %s ORDER BY worker_id",
                (stream,),
            ).fetchall()
        report["workers"] = [
            {
                "worker_id": w,
                "host": h,
                "pid": pid,
                "partitions": list(ps),
                "heartbeat_age_s": round(age, 2),
            }
            for w, h, pid, ps, age in rows
        ]
    lag: dict[int, tuple[int | None, int | None]] = {}
    if broker is not None:
        try:
            lag = asyncio.run(_lag(broker, stream, count))
        except Exception as exc:
            report["broker_error"] = f"{type(exc).__name__}: {exc}"
    report["partitions"] = [
        {
            "partition": p,
            "owner": owned.get(p),
            "pending": lag.get(p, (None, None))[0],
            "unacked": lag.get(p, (None, None))[1],
        }
        for p in range(count)
    ]
    return report


async def _lag(url: str, stream: str, count: int) -> dict[int, tuple[int | None, int | None]]:
    """Per partition: (events its consumer has not been sent yet, sent but not acked). A
    partition no worker has consumed yet counts every message on its subject."""
    import os

    from nats.js import errors as js_errors

    from tactful.broker.nats import BrokerConfig, connect

    config = BrokerConfig(url=url, stream=stream, partitions=count)
    nc = await connect(url, float(os.environ.get("TACTFUL_BROKER_WAIT", "10")))
    try:
        js = nc.jetstream()
        out: dict[int, tuple[int | None, int | None]] = {}
        subjects: dict[str, int] = {}
        with contextlib.suppress(js_errors.Error):
            info = await js.stream_info(stream, subjects_filter=f"{config.prefix}.*")
            subjects = dict(info.state.subjects or {})
        for p in range(count):
            try:
                ci = await js.consumer_info(stream, config.durable(p))
                out[p] = (ci.num_pending, ci.num_ack_pending)
            except js_errors.NotFoundError:
                out[p] = (subjects.get(config.subject(p), 0), 0)
        return out
    finally:
        await nc.close()
