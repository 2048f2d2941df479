"""Prometheus metrics for one instance, in a registry of its own (several instances may share
a process in tests). Database-derived gauges (jobs by state, inbox backlogs, oldest unfinished
job) are read at scrape time; a scrape with the database down simply leaves them out.

Every labelled counter starts at 0 for the label values it is known to take (`KNOWN`): a
series that appears only at its first increment is invisible to `increase()` and `rate()`
over that increment, so an alert on failures would read 0 % while jobs fail. The registry
also carries the process and platform collectors and `kiebot_build_info`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from config.catalogue import load_catalogue
from telemetry import build
from telemetry.results import RequestResult, kie_result, telegram_result

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
JOB_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)

RESULTS = tuple(r.value for r in RequestResult)
# The label values each counter is known to take, from the code that increments it. A value
# not listed here still works; it just appears at its first increment.
KNOWN: dict[str, dict[str, tuple[str, ...]]] = {
    "kiebot_jobs_finished": {"outcome": ("success", "failure", "delivery_unknown", "undeliverable")},
    "kiebot_deliveries": {"outcome": ("success", "failure")},
    # actors.ports.SendOutcome's values (tests/unit/test_metrics.py keeps them in step)
    "kiebot_delivery_errors": {"outcome": ("retry_after", "retry", "unknown", "undeliverable", "rejected",
                                           "deposed")},
    "kiebot_duplicates_suppressed": {"kind": ("callback", "update", "button")},
    "kiebot_callbacks": {"outcome": ("stored", "accepted", "duplicate", "forged", "invalid", "unknown_job")},
    "kiebot_kie_requests": {"method": ("createTask", "recordInfo", "upload", "credit"), "result": RESULTS},
    "kiebot_telegram_updates": {"result": ("stored", "duplicate", "processed", "failed", "refused",
                                           "intake_error")},
    "kiebot_telegram_requests": {"method": ("sendMessage", "sendPhoto", "sendVideo", "sendAudio", "sendDocument",
                                            "sendMediaGroup", "editMessageText", "answerCallbackQuery",
                                            "sendInvoice", "answerPreCheckoutQuery", "refundStarPayment",
                                            "getStarTransactions"),
                                 "result": RESULTS},
    "kiebot_telegram_wait_seconds": {"reason": ("chat", "global", "429")},
    "kiebot_leadership_changes": {"to": ("active", "passive")},
    # storage.retention.Prunable's values
    "kiebot_retention_removed": {"table": ("telegram_updates", "callback_inbox", "job_events")},
    # money (actors/treasurer.py and bot/): why a job met a short KIE balance; what became of a
    # Stars payment, a refund call, an operator page
    "kiebot_kie_no_credit": {"reason": ("402", "balance")},
    "kiebot_star_payments": {"result": ("credited", "duplicate", "declined")},
    "kiebot_star_refunds": {"result": ("refunded", "already_refunded", "retry", "failed")},
    "kiebot_operator_pages": {"alert": ("kie_no_credit", "payment_discrepancy")},
}


@dataclass(frozen=True)
class DatabaseGauges:
    """What the scrape-time collector reads from Postgres."""

    jobs_by_state: dict[str, int]
    callback_backlog: int
    update_backlog: int
    oldest_unfinished_age_s: float


class _FromDatabase(Collector):
    def __init__(self, read: Callable[[], DatabaseGauges]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            g = self._read()
        except Exception:  # a scrape must never fail because the database is down
            log.debug("database gauges unavailable for this scrape", exc_info=True)
            return
        jobs = GaugeMetricFamily(
            "kiebot_jobs", "Unfinished jobs in Postgres by state (finished ones: kiebot_jobs_finished_total).",
            labels=["state"])
        for state, n in sorted(g.jobs_by_state.items()):
            jobs.add_metric([state], n)
        backlog = GaugeMetricFamily("kiebot_inbox_backlog", "Stored, unprocessed inbox rows.", labels=["inbox"])
        backlog.add_metric(["callbacks"], g.callback_backlog)
        backlog.add_metric(["updates"], g.update_backlog)
        oldest = GaugeMetricFamily("kiebot_oldest_unfinished_job_age_seconds",
                                   "Age of the oldest job not yet in a final state (0 if none).")
        oldest.add_metric([], g.oldest_unfinished_age_s)
        yield from (jobs, backlog, oldest)


def _offered_models() -> list[str]:
    """The ids of the offered models (the catalogue is loaded once and cached)."""
    return [m.id for m in load_catalogue() if m.offered]


class Metrics:
    def __init__(self, models: Iterable[str] | None = None) -> None:
        """`models`: the model ids whose job counters start at 0 (default: the offered ones)."""
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        r.register(GC_COLLECTOR)
        self.build_info = Gauge("kiebot_build_info", "Always 1; the labels say what is running.",
                                ["version", "python"], registry=r)
        self.build_info.labels(build.version(), build.python_version()).set(1)
        # jobs
        self.jobs_created = Counter("kiebot_jobs_created_total", "Jobs created, by model.", ["model"], registry=r)
        self.jobs_finished = Counter("kiebot_jobs_finished_total", "Jobs that reached a final state.",
                                     ["model", "outcome"], registry=r)
        self.job_duration = Histogram("kiebot_job_duration_seconds", "From job creation to delivery.",
                                      ["model"], buckets=JOB_BUCKETS, registry=r)
        self.callback_to_delivery = Histogram(
            "kiebot_callback_to_delivery_seconds", "From a callback stored to the result delivered.",
            buckets=LATENCY_BUCKETS, registry=r)
        self.job_actors = Gauge("kiebot_job_actors", "JobActors alive on this instance.", registry=r)
        self.job_actors_waiting = Gauge(
            "kiebot_job_actors_waiting", "JobActors with a message waiting for a work slot (KIEBOT_JOB_SLOTS).",
            registry=r)
        self.job_actor_restarts = Counter("kiebot_job_actor_restarts_total", "JobActors restarted after a crash.",
                                          registry=r)
        # deliveries
        self.deliveries = Counter("kiebot_deliveries_total", "Job outcomes delivered to users, by outcome.",
                                  ["outcome"], registry=r)
        self.delivery_errors = Counter("kiebot_delivery_errors_total", "Failed delivery attempts, by send outcome.",
                                       ["outcome"], registry=r)
        self.uncertain_deliveries = Counter(
            "kiebot_uncertain_deliveries_total", "Deliveries whose send outcome was unknown.", registry=r)
        self.duplicates_suppressed = Counter(
            "kiebot_duplicates_suppressed_total", "Repeated callbacks, updates or presses that did nothing.",
            ["kind"], registry=r)
        # callbacks
        self.callbacks = Counter("kiebot_callbacks_total", "KIE callbacks by outcome.", ["outcome"], registry=r)
        # KIE
        self.kie_calls = Counter("kiebot_kie_requests_total", "KIE requests by method and result.",
                                 ["method", "result"], registry=r)
        self.kie_latency = Histogram("kiebot_kie_request_seconds", "KIE request latency.", ["method"],
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.kie_alerts = Counter("kiebot_kie_alerts_total", "KIE answers that need an operator.", registry=r)
        # Telegram
        self.telegram_updates = Counter("kiebot_telegram_updates_total", "Telegram updates by result.",
                                        ["result"], registry=r)
        self.telegram_requests = Counter("kiebot_telegram_requests_total",
                                         "Telegram Bot API requests by method and result.",
                                         ["method", "result"], registry=r)
        self.telegram_latency = Histogram("kiebot_telegram_request_seconds", "Telegram request latency.",
                                          ["method"], buckets=LATENCY_BUCKETS, registry=r)
        self.telegram_429 = Counter("kiebot_telegram_429_total", "429 answers from Telegram.", registry=r)
        self.telegram_waits = Counter("kiebot_telegram_wait_seconds_total",
                                      "Seconds sends waited for Telegram's limits, by reason (chat, global, 429).",
                                      ["reason"], registry=r)
        self.telegram_queue = Gauge("kiebot_telegram_queue_depth", "Sends waiting for a sending slot.", registry=r)
        # leadership
        self.leader_active = Gauge("kiebot_leader_active", "1 while this instance leads.", registry=r)
        self.leader_epoch = Gauge("kiebot_leader_epoch", "The epoch this instance leads with (0 if passive).",
                                  registry=r)
        self.leadership_changes = Counter("kiebot_leadership_changes_total",
                                          "Times this instance became active or passive.", ["to"], registry=r)
        # money
        self.kie_credits_quoted = Counter(
            "kiebot_kie_credits_quoted_total",
            "KIE credits our price data expected for jobs KIE charged, by model (drift: consumed / quoted).",
            ["model"], registry=r)
        self.kie_credits_consumed = Counter(
            "kiebot_kie_credits_consumed_total", "KIE credits KIE said it charged (creditsConsumed), by model.",
            ["model"], registry=r)
        self.kie_no_credit = Counter(
            "kiebot_kie_no_credit_total",
            "Jobs refused because the operator's KIE balance was short (402, or known low before createTask).",
            ["reason"], registry=r)
        self.kie_balance = Gauge("kiebot_kie_balance_credits",
                                 "The operator's KIE balance as last read by the leader (NaN: not read yet).",
                                 registry=r)
        self.kie_balance.set(float("nan"))
        self.payments = Counter("kiebot_star_payments_total", "Telegram Stars payments, by result.",
                                ["result"], registry=r)
        self.refunds = Counter("kiebot_star_refunds_total", "Stars refund calls, by result.", ["result"],
                               registry=r)
        self.payment_discrepancies = Gauge(
            "kiebot_payment_discrepancies",
            "Stars payments the last reconciliation found on one side only (Telegram or the ledger).", registry=r)
        self.operator_pages = Counter("kiebot_operator_pages_total", "Messages sent to ADMIN_IDS, by alert.",
                                      ["alert"], registry=r)
        # maintenance
        self.retention_removed = Counter("kiebot_retention_removed_total",
                                         "Rows deleted by the retention duty, by table.", ["table"], registry=r)

        self._start_at_zero(list(_offered_models() if models is None else models))

    def _start_at_zero(self, models: list[str]) -> None:
        """Create every known series of every labelled counter, at 0 (see the module docstring)."""
        counters = {"kiebot_jobs_finished": self.jobs_finished, "kiebot_deliveries": self.deliveries,
                    "kiebot_delivery_errors": self.delivery_errors,
                    "kiebot_duplicates_suppressed": self.duplicates_suppressed, "kiebot_callbacks": self.callbacks,
                    "kiebot_kie_requests": self.kie_calls, "kiebot_telegram_updates": self.telegram_updates,
                    "kiebot_telegram_requests": self.telegram_requests,
                    "kiebot_telegram_wait_seconds": self.telegram_waits,
                    "kiebot_leadership_changes": self.leadership_changes,
                    "kiebot_retention_removed": self.retention_removed,
                    "kiebot_kie_no_credit": self.kie_no_credit, "kiebot_star_payments": self.payments,
                    "kiebot_star_refunds": self.refunds, "kiebot_operator_pages": self.operator_pages}
        for name, counter in counters.items():
            labels = dict(KNOWN[name])
            if name == "kiebot_jobs_finished":      # labelled (model, outcome)
                labels = {"model": tuple(models), **labels}
            for values in _combinations(list(labels.values())):
                counter.labels(*values)
        for model in models:
            self.jobs_created.labels(model)
            self.kie_credits_quoted.labels(model)
            self.kie_credits_consumed.labels(model)

    def observe_kie_request(self, method: str, seen: str, seconds: float) -> None:
        """KieClient's `observe`: count one request under the shared result vocabulary."""
        self.kie_calls.labels(method, kie_result(seen).value).inc()
        self.kie_latency.labels(method).observe(seconds)

    def observe_telegram_request(self, endpoint: str, seen: str, seconds: float) -> None:
        """FloodControl's `on_request`: count one Bot API request under the shared vocabulary."""
        self.telegram_requests.labels(endpoint, telegram_result(seen).value).inc()
        self.telegram_latency.labels(endpoint).observe(seconds)

    def watch_database(self, read: Callable[[], DatabaseGauges]) -> None:
        self.registry.register(_FromDatabase(read))

    def render(self) -> bytes:
        """The Prometheus text format."""
        return generate_latest(self.registry)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The body and Content-Type for a scrape: OpenMetrics when the Accept header asks for
        it, else the Prometheus text format."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type


def _combinations(choices: list[tuple[str, ...]]) -> Iterator[tuple[str, ...]]:
    """Every tuple taking one value from each choice (itertools.product, typed for labels)."""
    if not choices:
        yield ()
        return
    for first in choices[0]:
        for rest in _combinations(choices[1:]):
            yield (first, *rest)
