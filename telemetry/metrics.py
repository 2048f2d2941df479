"""Prometheus metrics for one instance, in a registry of its own (several instances may share
a process in tests). Job counts by state are read from Postgres at scrape time, and a scrape
with the database down simply leaves them out."""
from __future__ import annotations

import logging
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


class _JobsByState(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("kiebot_jobs", "Jobs in Postgres by state.", labels=["state"])
        try:
            counts = self._counts()
        except Exception:  # noqa: BLE001 - a scrape must never fail because the database is down
            log.debug("jobs by state unavailable for this scrape", exc_info=True)
            return
        for state, n in sorted(counts.items()):
            family.add_metric([state], n)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs_created = Counter("kiebot_jobs_created_total", "Jobs created, by model.", ["model"], registry=r)
        self.deliveries = Counter("kiebot_deliveries_total", "Job outcomes delivered to users, by outcome.",
                                  ["outcome"], registry=r)
        self.uncertain_deliveries = Counter(
            "kiebot_uncertain_deliveries_total", "Deliveries whose send outcome was unknown.", registry=r)
        self.callbacks = Counter("kiebot_callbacks_total", "KIE callbacks by outcome.", ["outcome"], registry=r)
        self.kie_calls = Counter("kiebot_kie_requests_total", "KIE requests by method and result.",
                                 ["method", "result"], registry=r)
        self.kie_alerts = Counter("kiebot_kie_alerts_total", "KIE answers that need an operator.", registry=r)
        self.telegram_updates = Counter("kiebot_telegram_updates_total", "Telegram updates by result.",
                                        ["result"], registry=r)
        self.telegram_requests = Counter("kiebot_telegram_requests_total",
                                         "Telegram Bot API requests by method and result.",
                                         ["method", "result"], registry=r)
        self.telegram_waits = Counter("kiebot_telegram_wait_seconds_total",
                                      "Seconds sends waited for Telegram's limits, by reason (chat, 429).",
                                      ["reason"], registry=r)
        self.telegram_queue = Gauge("kiebot_telegram_queue_depth", "Sends waiting for a sending slot.", registry=r)
        self.leader_active = Gauge("kiebot_leader_active", "1 while this instance leads.", registry=r)
        self.leader_epoch = Gauge("kiebot_leader_epoch", "The epoch this instance leads with (0 if passive).",
                                  registry=r)
        self.leadership_changes = Counter("kiebot_leadership_changes_total",
                                          "Times this instance became active or passive.", ["to"], registry=r)
        self.job_actors = Gauge("kiebot_job_actors", "JobActors alive on this instance.", registry=r)

    def watch_jobs(self, counts: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_JobsByState(counts))

    def render(self) -> bytes:
        return generate_latest(self.registry)
