"""Prometheus metrics for one instance, in a registry of its own (several instances may share
a process in tests). Database-derived gauges (jobs by state, inbox backlogs, oldest unfinished
job) are read at scrape time; a scrape with the database down simply leaves them out."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
JOB_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)


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
        except Exception:  # noqa: BLE001 - a scrape must never fail because the database is down
            log.debug("database gauges unavailable for this scrape", exc_info=True)
            return
        jobs = GaugeMetricFamily("kiebot_jobs", "Jobs in Postgres by state.", labels=["state"])
        for state, n in sorted(g.jobs_by_state.items()):
            jobs.add_metric([state], n)
        backlog = GaugeMetricFamily("kiebot_inbox_backlog", "Stored, unprocessed inbox rows.", labels=["inbox"])
        backlog.add_metric(["callbacks"], g.callback_backlog)
        backlog.add_metric(["updates"], g.update_backlog)
        oldest = GaugeMetricFamily("kiebot_oldest_unfinished_job_age_seconds",
                                   "Age of the oldest job not yet in a final state (0 if none).")
        oldest.add_metric([], g.oldest_unfinished_age_s)
        yield from (jobs, backlog, oldest)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
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
                                      "Seconds sends waited for Telegram's limits, by reason (chat, 429).",
                                      ["reason"], registry=r)
        self.telegram_queue = Gauge("kiebot_telegram_queue_depth", "Sends waiting for a sending slot.", registry=r)
        # leadership
        self.leader_active = Gauge("kiebot_leader_active", "1 while this instance leads.", registry=r)
        self.leader_epoch = Gauge("kiebot_leader_epoch", "The epoch this instance leads with (0 if passive).",
                                  registry=r)
        self.leadership_changes = Counter("kiebot_leadership_changes_total",
                                          "Times this instance became active or passive.", ["to"], registry=r)

    def watch_database(self, read: Callable[[], DatabaseGauges]) -> None:
        self.registry.register(_FromDatabase(read))

    def render(self) -> bytes:
        return generate_latest(self.registry)
