"""Prometheus metrics: request counts and latencies per route (the route's pattern, never the
raw path, so tokens in paths stay out of the labels), and the inbox's events and failures."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from core import inbox

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Metrics:
    """One registry per app, so tests can build many apps in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "salonbot_http_requests_total",
            "HTTP requests handled",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "salonbot_http_request_duration_seconds",
            "HTTP request handling time",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        # Read from the database at each scrape, so it is true whichever replica answers.
        self.inbox_events = Gauge(
            "salonbot_inbox_events",
            "Inbound webhook events in the inbox, by status",
            ["status"],
            registry=self.registry,
        )
        self.inbox_received = Counter(
            "salonbot_inbox_received_total",
            "Inbound webhook events accepted, duplicates included",
            ["source", "duplicate"],
            registry=self.registry,
        )
        self.inbox_processed = Counter(
            "salonbot_inbox_processed_total",
            "Inbox events handled by this process, by outcome (done, retry, dead)",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.inbox_failures = Counter(
            "salonbot_inbox_failures_total",
            "Inbox event handling attempts that failed",
            ["source"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def metrics_middleware(metrics: Metrics) -> Middleware:
    # The labelled children, looked up once per (method, route, status) rather than through
    # prometheus_client's locked lookup on every request.
    counted: dict[tuple[str, str, int], Callable[[], None]] = {}
    timed: dict[tuple[str, str], Callable[[float], None]] = {}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = _route_of(request)
            key = (request.method, route, status)
            count = counted.get(key)
            if count is None:
                count = counted[key] = metrics.requests.labels(*key[:2], str(status)).inc
            count()
            observe = timed.get(key[:2])
            if observe is None:
                observe = timed[key[:2]] = metrics.latency.labels(*key[:2]).observe
            observe(time.perf_counter() - started)

    return middleware


def metrics_handler(metrics: Metrics) -> Handler:
    """GET /metrics for the app that owns `metrics` (bound here, so this module needs no app
    keys and web.keys can import it without a cycle)."""

    async def handler(request: web.Request) -> web.Response:
        try:
            for status, n in (await inbox.counts()).items():
                metrics.inbox_events.labels(status).set(n)
        except Exception as exc:  # a scrape still answers with what it has
            log.warning("metrics: inbox counts unavailable: %s", exc)
        response = web.Response(body=metrics.render())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        response.charset = "utf-8"
        return response

    return handler
