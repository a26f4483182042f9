"""The scale-out edges (issue 9): API processes publish validated events to NATS
JetStream (``nats.py``), partitioned by customer (``partition.py``); worker processes own
partitions through PostgreSQL advisory locks (``ownership.py``) and run the same
:class:`~tactful.runtime.engine.Engine` on them (``worker.py``). See docs/scale.md."""
