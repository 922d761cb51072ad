"""Prometheus metrics (``GET /metrics``), one registry per application.

No label ever carries a phone number, a CallSid or a token: only routes, purposes,
actions, channels and error kinds, so the metrics are safe to scrape anywhere inside.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["LATENCY_BUCKETS", "Metrics"]

# Twilio allows 15 s; callers notice dead air well before. Buckets resolve both ends.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhook_seconds = Histogram(
            "ivr_webhook_seconds",
            "Time to answer a Twilio webhook",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.call_steps = Histogram(
            "ivr_call_step_seconds",
            "Time to move a call one step: menu (session only) or commit (evidence stored first)",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "ivr_decisions_total",
            "Consent decisions committed",
            ["purpose", "action", "channel"],
            registry=self.registry,
        )
        self.signature_failures = Counter(
            "ivr_signature_failures_total", "Webhooks refused for a bad or missing signature", registry=self.registry
        )
        self.system_errors = Counter(
            "ivr_system_errors_total", "Callers told nothing could be recorded", ["reason"], registry=self.registry
        )
        self.twilio_rest_errors = Counter(
            "ivr_twilio_rest_errors_total",
            "Twilio REST calls that failed, by what failed",
            ["failure"],
            registry=self.registry,
        )
        # Alerts for staff sign-in: refusals say someone is being slowed (reason: which
        # limit), failures say someone is guessing, even spread over many addresses.
        self.sign_in_throttled = Counter(
            "ivr_sign_in_throttled_total",
            "Staff sign-ins refused for a limit: address_rate (too many from one address) "
            "or user_delay (one username from one address still waiting after failures)",
            ["reason"],
            registry=self.registry,
        )
        self.sign_in_failures = Counter(
            "ivr_sign_in_failures_total", "Staff sign-ins that failed, by method", ["method"], registry=self.registry
        )
        # An alert: PIN entry on an account locked until staff restore it (ten wrong PINs
        # in a day, twenty in all): someone is guessing, or a customer needs a call back.
        self.pin_hard_locks = Counter(
            "ivr_pin_hard_locks_total",
            "Accounts whose PIN entry was locked until staff restore it (ivr customers unlock)",
            registry=self.registry,
        )
        self.recording_backlog = Gauge(
            "ivr_recording_fetch_backlog", "Recordings waiting to be fetched", registry=self.registry
        )
        # An alert: revocations past their honor-by date not applied by every subscription owed them.
        self.revocations_overdue = Gauge(
            "ivr_revocations_overdue",
            "Revocations past their honor-by date that a subscribed system has not said it applied",
            registry=self.registry,
        )
        self.pool_in_use = Gauge("ivr_pg_pool_in_use", "Postgres connections in use", registry=self.registry)
        self.pool_size = Gauge("ivr_pg_pool_size", "Postgres connections open", registry=self.registry)
