"""The end-to-end score in CI (a short run of ``benchmarks/e2e_score.py``, same code:
``camera_hub.e2e``): the real processes on the demo city for two simulated minutes, then the
alerts against the simulator's ground truth and the coverage against the cameras it serves.

40 live community cameras (the demo's default) plus the 4 lookouts, 120 s: their loop offsets put
5 vending and 4 crowding episodes in the scored window (after the first 10 s, early enough for
the latency limit to pass before the end); one camera is cut off at +20 s (the demo's outage)."""

from __future__ import annotations

from pathlib import Path

import pytest
from systemkit import processes_left

from camera_hub.e2e import format_report, run_e2e

CAMERAS, SECONDS = 40, 120
MIN_EPISODES = 3  # scored episodes of each of vending and crowding, at least


@pytest.mark.slow
@pytest.mark.timeout(480)
async def test_alerts_and_coverage_match_the_simulators_ground_truth(tmp_path: Path, redis_server: str) -> None:
    data = tmp_path / "e2e"
    result = await run_e2e(CAMERAS, SECONDS, data_dir=data)
    report = format_report(result)
    print(report)
    for kind in ("vending", "crowding"):
        s = result["scores"][kind]
        assert s["tp"] + s["fn"] >= MIN_EPISODES, f"only {s['tp'] + s['fn']} scored {kind} episodes\n{report}"
        assert s["precision"] is not None and s["precision"] >= 0.95, f"{kind} precision\n{report}"
        assert s["recall"] >= 0.95, f"{kind} recall\n{report}"
        assert s["latency_p95_s"] <= s["latency_target_s"], f"{kind} onset latency\n{report}"
    clips = result["clips"]  # issue #13: a clip that plays ≥ 10 s and covers the ground-truth onset
    assert clips["eligible"] >= 2 and clips["share"] >= 0.95, report
    cov = result["coverage"]
    assert cov["cameras_serving"] == result["cameras_live"] - 1, report  # all but the one cut off
    assert cov["cameras_up_api"] == cov["cameras_serving"], report
    assert cov["city_covered"] == cov["expected_covered"], report
    assert 0 < cov["city_covered"] < cov["grids"], report
    assert processes_left(data) == "", "children left running"
