"""Process metrics (Prometheus): what happens in this process, counted where it happens.

Figures read from the database (outbox depth, open cases, overdue) are computed when
/metrics is scraped (griddesk/http/metrics.py), not kept here."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

UPDATES = Counter("griddesk_updates_total", "Telegram updates handled, by kind", ["kind"], registry=REGISTRY)
HANDLER_SECONDS = Histogram(
    "griddesk_handler_seconds",
    "Time to handle one Telegram update",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
TELEGRAM_429 = Counter("griddesk_telegram_429_total", "Bot API answers 'too many requests' (429)", registry=REGISTRY)
WEBHOOKS_DELIVERED = Counter(
    "griddesk_webhooks_delivered_total", "Webhook events delivered, by outcome", ["outcome"], registry=REGISTRY
)
HTTP_REQUESTS = Counter(
    "griddesk_http_requests_total", "HTTP requests served, by route and status", ["route", "status"], registry=REGISTRY
)
