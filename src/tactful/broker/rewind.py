"""`tactful rewind`: replay the stream from a time, after a store was restored from backup.

A restored PostgreSQL database lacks what was committed after its backup, but the
partitions' durable consumers have already been acknowledged past those events, so the
workers would never see them again. Rewinding recreates each partition's consumer to
deliver from a time before the backup (JetStream's ``deliver_policy: by_start_time``):
the workers then re-apply everything since, and the events the restored database already
holds are reported as duplicates and change nothing (ingest is idempotent by event id).
Events older than the stream's retention are gone from JetStream and must be re-sent by
their source.

Workers must be stopped while it runs: a worker bound to a consumer being recreated would
lose its subscription mid-batch. It refuses when PostgreSQL shows any partition owned.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from datetime import datetime

import psycopg
from nats.js import errors as js_errors
from nats.js.api import DeliverPolicy

from tactful.broker.nats import BrokerConfig, connect
from tactful.broker.ownership import ensure_tables, owners
from tactful.broker.worker import WorkerOptions, consumer_config

__all__ = ["WorkersRunning", "rewind"]


class WorkersRunning(RuntimeError):
    """Partitions are owned: stop the workers first."""


def check_no_workers(dsn: str, stream: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_tables(conn)
        held = owners(conn, stream)
    if held:
        names = ", ".join(sorted(set(held.values())))
        raise WorkersRunning(
            f"{len(held)} partitions of stream {stream} are owned by running workers "
            f"({names}): stop them before rewinding"
        )


async def rewind(
    config: BrokerConfig, dsn: str, since: datetime, options: WorkerOptions = WorkerOptions()
) -> dict[int, int]:
    """Recreate every partition's consumer to deliver from ``since``; returns, per
    partition, how many events it will deliver again. ``options``: the consumer settings
    the workers use (``--max-ack-pending``, ``--ack-wait``)."""
    check_no_workers(dsn, config.stream)
    nc = await connect(config.url, float(os.environ.get("TACTFUL_BROKER_WAIT", "10")))
    try:
        js = nc.jetstream()
        out: dict[int, int] = {}
        for p in range(config.partitions):
            name = config.durable(p)
            with contextlib.suppress(js_errors.NotFoundError):
                await js.delete_consumer(config.stream, name)
            wanted = replace(
                consumer_config(config, p, options),
                durable_name=name,
                name=name,
                deliver_policy=DeliverPolicy.BY_START_TIME,
                opt_start_time=since,
            )
            info = await js.add_consumer(config.stream, config=wanted)
            out[p] = int(info.num_pending or 0)
        return out
    finally:
        await nc.close()
