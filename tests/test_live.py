"""The live view: a self-contained page of running studies, rewritten while they run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from squeezelab.results import Store
from squeezelab.studies.live import LiveView, render, sparkline

from .conftest import run_cli, store_builtin


def _store_with_a_running_run(tmp_path: Path) -> tuple[Path, str]:
    """The batchnorm study (lr x momentum x batch norm) with its runs finished at made-up
    accuracies, but one still training (two of its three epochs in its metrics.jsonl)."""
    db = tmp_path / "s.db"
    runs = store_builtin(db, "batchnorm", lambda c: 40.0 + 20.0 * c.batch_norm + 100 * c.lr)
    running = runs[0]
    run_dir = tmp_path / "runs" / running.key()
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text(
        "\n".join(json.dumps({"epoch": e, "val_acc": 20.0 + 10 * e}) for e in (1, 2)) + "\n"
    )
    with Store(db) as store:
        store.conn.execute(
            "UPDATE runs SET status='running', val_acc=NULL, test_acc=NULL, run_dir=?, "
            "owner='me', heartbeat=? WHERE key=?",
            (str(run_dir), time.time(), running.key()),
        )
        store.conn.execute("DELETE FROM metrics WHERE key=?", (running.key(),))
        store.conn.commit()
    return db, running.key()


def test_the_page_shows_progress_curves_so_far_the_grid_and_interim_claims(tmp_path) -> None:
    db, _ = _store_with_a_running_run(tmp_path)
    page = render(db, every=7)
    assert "<meta http-equiv='refresh' content='7'>" in page
    assert "29 of 30 runs finished" in page and "1 running" in page
    # the running run's curve comes from its own metrics.jsonl: 2 of its epochs so far
    row = re.search(r"<tr><td>[^<]*</td><td>running</td><td class='num'>(\d+)/(\d+)</td>", page)
    assert row is not None and row.group(1) == "2"
    assert page.count("<svg") == 30
    assert "The grid so far" in page and "Mean validation accuracy" in page
    assert "(interim)" in page and "Interim: 1 run(s) of the study have not finished" in page


def test_a_sparkline_scales_the_curve_over_the_runs_epochs() -> None:
    svg = sparkline([0.0, 50.0, 100.0], epochs=5, width=100, height=20)
    assert 'points="0.0,20.0 25.0,10.0 50.0,0.0"' in svg
    assert sparkline([], 3) == ""


def test_a_run_ending_shows_within_seconds_and_a_study_keeps_its_page(tmp_path) -> None:
    db, key = _store_with_a_running_run(tmp_path)
    view = LiveView(db, tmp_path / "live.html", every=60.0)  # its own period: a minute
    try:
        assert "1 running" in (tmp_path / "live.html").read_text()
        with Store(db) as store:
            store.finish_run(key, {"val_acc": 55.0, "test_acc": 55.0, "epochs": 3,
                                   "diverged": False}, [{"epoch": 3, "val_acc": 55.0}])  # fmt: skip
        view.poke()  # what the runner does when a run ends
        deadline = time.monotonic() + 10
        while "30 of 30 runs finished" not in (tmp_path / "live.html").read_text():
            assert time.monotonic() < deadline, "the page did not show the run within 10 s"
            time.sleep(0.1)
    finally:
        view.close()
    assert view.writes >= 3 and view.error is None
    # what it costs: the whole page of a 30-run study in a few hundredths of a second
    assert view.seconds / view.writes < 1.0


def test_watch_writes_the_page_for_a_study_started_elsewhere(tmp_path) -> None:
    db, _ = _store_with_a_running_run(tmp_path)
    out = tmp_path / "w.html"
    proc = run_cli("watch", "--db", str(db), "--out", str(out), "--once")
    assert proc.returncode == 0 and "29 of 30 runs finished" in out.read_text()
    assert (
        run_cli("watch", "--db", str(tmp_path / "none.db"), "--once", check=False).returncode == 2
    )
    default = run_cli("watch", "--db", str(db), "--once")
    assert (tmp_path / "s-live.html").is_file() and "s-live.html" in default.stderr


@pytest.mark.slow
def test_the_live_page_updates_while_a_study_runs_in_a_browser(tmp_path) -> None:
    """A real study with --live: the page changes while it runs, and headless Chromium lays
    the last one out without errors (skipped without Chromium)."""
    browser = shutil.which("chromium") or shutil.which("google-chrome")
    study = tmp_path / "tiny.toml"
    study.write_text(
        'seeds = [0, 1]\n[base]\ndata = "synthetic:400"\nimage_size = 32\nepochs = 3\n'
        "[axes]\nbatch_norm = [false, true]\nlr = [0.01, 0.02]\n"
    )
    live = tmp_path / "live.html"
    proc = subprocess.Popen(
        [sys.executable, "-m", "squeezelab", "study", "run", str(study), "--db",
         str(tmp_path / "s.db"), "--live", str(live)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    seen: set[str] = set()
    while proc.poll() is None:
        if live.is_file():
            text = live.read_text()  # written atomically: always a whole page
            assert text.endswith("</html>")
            seen.add(re.search(r"(\d+) of 8 runs finished", text).group(1))
        time.sleep(0.2)
    assert proc.returncode == 0
    assert "8" in re.search(r"(\d+) of 8 runs finished", live.read_text()).group(1)
    assert len(seen) >= 3, seen  # it moved while the study ran
    if browser is None:
        pytest.skip("no chromium on the PATH: the page's layout was not checked")
    shot = tmp_path / "live.png"
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
         "--dump-dom", live.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "8 of 8 runs finished" in dom.stdout and dom.stdout.count("<svg") == 8
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
         f"--screenshot={shot}", live.as_uri()],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert shot.stat().st_size > 10_000
