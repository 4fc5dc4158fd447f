"""Many clients, random cancels and disconnects, deadlines loose to impossible: nothing is lost."""
from __future__ import annotations

from tools.harness.stress import stress


def test_every_request_not_abandoned_gets_exactly_one_terminal_frame(make_server):
    server = make_server(rate_per_s=float("inf"), max_queue=64)
    report = stress(server.endpoint, clients=4, requests=10, timeout_s=60)
    assert report["missing_terminal"] == 0 and report["duplicate_terminal"] == 0, report
    assert report["terminal_frames"] + report["abandoned_by_client"] == report["requests"] == 40
    with server.client() as c:
        assert c.health()["status"] == "ok"
