"""sim.cluster.free_port: the ports the tests, the demo and the benchmarks give their instances are
never ones an outgoing connection could take as its source port meanwhile, nor ones anyone holds."""
from __future__ import annotations

import socket

from sim import cluster


def test_ports_come_from_below_the_ephemeral_range_and_never_twice() -> None:
    low, _ = cluster.ephemeral_port_range()
    ports = [cluster.free_port() for _ in range(500)]
    assert all(cluster.PORT_FLOOR <= p < low for p in ports)
    assert len(set(ports)) == len(ports)


def test_a_port_someone_holds_is_never_handed_out() -> None:
    low, _ = cluster.ephemeral_port_range()
    holders = []
    try:
        # Hold every port of a slice of the range; free_port's picks land in it often enough to show.
        for port in range(cluster.PORT_FLOOR, cluster.PORT_FLOOR + 2000):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            holders.append(s)
        held = {s.getsockname()[1] for s in holders}
        picks = [cluster.free_port() for _ in range(300)]
        assert not held & set(picks)
        assert all(p < low for p in picks)
    finally:
        for s in holders:
            s.close()
