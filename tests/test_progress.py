"""The study's progress: counts, work-weighted ETA, skipped runs leave the ETA."""

from __future__ import annotations

import pytest

from squeezelab.studies.progress import Progress, clock


def test_the_eta_weighs_runs_by_their_work_not_their_count(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("squeezelab.studies.progress.time.perf_counter", lambda: now[0])
    p = Progress("grid", {"small": 1.0, "big": 9.0, "other": 10.0})
    assert p.total == 3 and p.eta_s is None
    assert p.start("small", "model=a") == "[1/3] grid model=a (elapsed 0m00s)"
    now[0] += 60.0
    p.finish("small")
    # one unit of work took 60 s; 19 units are left
    assert p.eta_s == pytest.approx(19 * 60.0)
    assert p.start("big", "model=b").endswith("(elapsed 1m00s, ETA 19m00s)")
    p.skip("other")  # another process trains it: its work is no longer ours to wait for
    assert p.eta_s == pytest.approx(9 * 60.0)
    now[0] += 540.0
    p.finish("big", failed=True)
    assert (p.started, p.done, p.failed, p.skipped, p.work_left) == (3, 1, 1, 1, 0.0)
    assert p.eta_s == 0.0


def test_clock_reads_minutes_then_hours():
    assert (clock(5), clock(65), clock(3 * 3600 + 7 * 60)) == ("0m05s", "1m05s", "3h07m")
