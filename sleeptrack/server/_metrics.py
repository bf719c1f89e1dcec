"""Prometheus metrics of one server (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "sleeptrack_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "sleeptrack_http_request_seconds",
            "Time to answer HTTP requests",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.uploads = Counter(
            "sleeptrack_uploads", "Chunk uploads by outcome", ["inference_type", "outcome"], registry=r
        )
        self.upload_bytes = Counter("sleeptrack_upload_bytes", "Bytes of accepted chunks", registry=r)
        self.sessions = Counter("sleeptrack_sessions", "Session state changes", ["state"], registry=r)
        self.jobs = Counter("sleeptrack_jobs", "Analysis jobs run", ["kind", "outcome"], registry=r)
        self.job_seconds = Histogram(
            "sleeptrack_job_seconds", "Time to run analysis jobs", ["kind"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("sleeptrack_job_queue_depth", "Jobs waiting for a worker", registry=r)
        self.jobs_running = Gauge("sleeptrack_jobs_running", "Jobs being run", registry=r)
        self.webhooks = Counter("sleeptrack_webhooks", "Webhook delivery attempts", ["event", "outcome"], registry=r)
        self.webhook_seconds = Histogram(
            "sleeptrack_webhook_seconds", "Time of webhook requests", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.outbox_pending = Gauge("sleeptrack_webhook_outbox_pending", "Webhooks not yet delivered", registry=r)
