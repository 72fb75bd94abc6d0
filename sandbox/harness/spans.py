"""Spans for the traffic model's simulated requests, sent to the sandbox's Jaeger over OTLP.

Each simulated request becomes one trace: a single SERVER span named ``<method> <route>``
whose start and end are the request's, with the serving pod's version and name, the route
and the status code as attributes; a 5xx is an error span. The service name (resource
``service.name``) is the Helm release's name (``app`` for the sandbox's own release, which is
what the runbook's ``tracing_service`` defaults to), ``service.namespace`` its namespace.
Sampling is head-based on the trace id (``TraceIdRatioBased``), so it never draws from the
model's seeded random stream: the metrics and logs of a run are the same with tracing on or off.
"""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode

__all__ = ["SERVICE_NAME", "RequestSpans"]

SERVICE_NAME = "app"


class RequestSpans:
    """One tracer for the whole model; ``record`` turns a request into a finished span."""

    def __init__(
        self,
        *,
        endpoint: str = "",
        sample_ratio: float = 1.0,
        service: str = SERVICE_NAME,
        namespace: str = "default",
        exporter: SpanExporter | None = None,
    ) -> None:
        if not 0.0 <= sample_ratio <= 1.0:
            raise ValueError(f"trace sample ratio {sample_ratio} is not within 0..1")
        resource = Resource.create({"service.name": service, "service.namespace": namespace})
        self.provider = TracerProvider(resource=resource, sampler=TraceIdRatioBased(sample_ratio))
        chosen = exporter or OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
        # Batches keep the request loop free of network calls; a Jaeger that is down only
        # costs dropped spans (the queue is bounded), never a stalled model.
        self.provider.add_span_processor(
            BatchSpanProcessor(chosen, max_queue_size=8192, schedule_delay_millis=500)
        )
        self.tracer = self.provider.get_tracer("runbook_sandbox.traffic_model")

    def record(
        self,
        *,
        version: str,
        pod: str,
        method: str,
        route: str,
        code: str,
        start_ns: int,
        end_ns: int,
    ) -> None:
        span = self.tracer.start_span(
            f"{method} {route}",
            kind=SpanKind.SERVER,
            start_time=start_ns,
            attributes={
                "service.version": version,
                "k8s.pod.name": pod,
                "http.request.method": method,
                "http.route": route,
                "http.response.status_code": int(code),
            },
        )
        if code.startswith("5"):
            span.set_status(Status(StatusCode.ERROR, f"HTTP {code}"))
        span.end(end_time=end_ns)

    def shutdown(self) -> None:
        """Flush what is queued (bounded by the exporter's timeout) and stop."""
        self.provider.shutdown()
