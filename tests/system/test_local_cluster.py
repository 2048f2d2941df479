"""Real `kiebot run` processes spawned by the local cluster (sim/cluster.py), as the demo and the
benchmarks spawn them."""
from __future__ import annotations

from pathlib import Path

import pytest

from sim import cluster
from sim.kie import KieSim
from sim.telegram import TelegramSim


def test_a_spawned_instance_sees_only_its_own_environment_leads_and_stops_cleanly(
        database_url: str, kie: KieSim, telegram: TelegramSim, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's shell: values that would stop an instance (or point it elsewhere) if they leaked.
    monkeypatch.setenv("KIEBOT_MAX_ACTIVE_JOBS", "not-a-number")
    monkeypatch.setenv("PUBLIC_URL", "not a url")
    monkeypatch.setenv("HTTP_HOST", "203.0.113.1")
    port = cluster.free_port()
    env = cluster.instance_env(database_url, **cluster.sim_endpoints(kie, telegram), port=port,
                               instance_id="cluster-a")
    proc = cluster.spawn_kiebot("cluster-a", env, tmp_path / "cluster-a.log")
    try:
        leader = cluster.wait_for_leader([proc], 60, error=AssertionError)
        health = leader.health()
        assert health is not None and health["active"]
    finally:
        cluster.stop_all([proc], timeout=20)

    assert proc.proc.returncode == 0, proc.log()[-2000:]
