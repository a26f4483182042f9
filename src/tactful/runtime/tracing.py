"""OpenTelemetry traces around ingest -> detect -> decide -> commit -> dispatch. Optional.

Off by default: :func:`span` returns one shared no-op context manager after a single
``is None`` check, so the engine pays a function call per batch and per delivery, and
nothing per event. On (``serve --trace`` / ``worker --trace``, or ``TACTFUL_TRACE=1``),
spans are exported over OTLP/HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the exporter's own
variable, default http://localhost:4318); the ``otel`` extra must be installed
(``pip install 'tactful[otel]'``), and this module imports nothing of OpenTelemetry until
:func:`enable` is called.

Privacy: spans carry ids, types, counts, rule ids and outcomes, never free text (a
message, a ticket's subject, a decision's params). Customer ids are hashed
(:func:`customer_hash`: pseudonymous, not anonymous) because they are often e-mail
addresses and traces usually leave the building.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

    from tactful.runtime.pipeline import Processed

__all__ = [
    "Attrs",
    "TracingUnavailable",
    "customer_hash",
    "decided",
    "disable",
    "enable",
    "enabled",
    "span",
    "start",
]

Attrs = Mapping[str, str | bool | int | float | Sequence[str] | Sequence[int]]


class TracingUnavailable(RuntimeError):
    """Tracing was asked for but the ``otel`` extra is not installed."""


class SpanLike(Protocol):
    def set_attribute(self, key: str, value: Any) -> None: ...


class _NoopSpan:
    """What :func:`span` and :func:`start` give when tracing is off: one shared instance."""

    __slots__ = ()

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def end(self) -> None:
        pass

    def __enter__(self) -> _NoopSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


NOOP = _NoopSpan()

_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def enabled() -> bool:
    return _tracer is not None


def enable(
    service_name: str = "tactful",
    exporter: SpanExporter | None = None,
    *,
    batch: bool = True,
) -> None:
    """Start tracing: spans to ``exporter`` (default: OTLP over HTTP, configured by the
    standard ``OTEL_EXPORTER_OTLP_*`` variables). ``batch=False`` exports each span as it
    ends (tests). Raises :class:`TracingUnavailable` without the ``otel`` extra."""
    global _tracer, _provider
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:
        raise TracingUnavailable(
            f"tracing needs the otel extra: pip install 'tactful[otel]' ({exc})"
        ) from None
    if exporter is None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise TracingUnavailable(
                f"tracing needs the otel extra: pip install 'tactful[otel]' ({exc})"
            ) from None
        exporter = OTLPSpanExporter()
    disable()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    _provider, _tracer = provider, provider.get_tracer("tactful")


def disable() -> None:
    """Stop tracing; spans still buffered are exported first."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def span(name: str, attrs: Attrs | None = None) -> AbstractContextManager[SpanLike]:
    """A span around a block (the current one's child), or the shared no-op when off. An
    exception leaving the block is recorded on it and sets its status to error."""
    if _tracer is None:
        return NOOP
    return _span(_tracer, name, attrs)


@contextmanager
def _span(tracer: Tracer, name: str, attrs: Attrs | None) -> Iterator[SpanLike]:
    with tracer.start_as_current_span(name, attributes=attrs) as s:
        yield s


def start(name: str, attrs: Attrs | None = None) -> Any:
    """A span started now and ended by the caller (``.end()``), a child of the current
    one but not made current; the no-op when off. For a stretch of code that cannot be
    indented under a ``with``."""
    if _tracer is None:
        return NOOP
    return _tracer.start_span(name, attributes=attrs)


def customer_hash(customer_id: str) -> str:
    """The customer id as spans carry it: 16 hex characters of its BLAKE2b. Compute it for
    a known customer to find their traces."""
    return hashlib.blake2b(customer_id.encode("utf-8", "replace"), digest_size=8).hexdigest()


def decided(decide: Any, batch: Sequence[Processed]) -> None:
    """End the per-batch ``tactful.decide`` span, one span event per processed event:
    its id, type, hashed customer, signal names and decisions (ids, kinds, rules)."""
    if decide is NOOP:
        return
    decisions = 0
    for p in batch:
        e = p.event
        decisions += len(p.decisions)
        decide.add_event(
            "tactful.event",
            {
                "tactful.event.id": e.event_id,
                "tactful.event.type": e.type,
                "tactful.customer.hash": customer_hash(e.customer_id),
                "tactful.event.late": p.late,
                "tactful.signals": [s.name for s in p.signals],
                "tactful.decision.ids": [d.decision_id for d in p.decisions],
                "tactful.decision.kinds": [d.kind for d in p.decisions],
                "tactful.decision.rules": [d.rule_id for d in p.decisions],
            },
        )
    decide.set_attribute("tactful.batch.events", len(batch))
    decide.set_attribute("tactful.batch.decisions", decisions)
    decide.end()
